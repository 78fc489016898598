"""My integrations (`/ib list` and the App Home tab): integration x environment -> version and
connection, with Connect, Deploy and Download buttons. Pure functions of summaries.

A message holds at most 50 blocks and a Home tab 100, so the list is cut into pages that fit,
with Previous/Next buttons.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from handlers.views.blocks import (
    Block,
    actions,
    button,
    context,
    escape,
    header,
    modal,
    section,
)

CONNECTIONS_ACTION = "connections_open"  # handled by handlers/connections.py
DEPLOY_OPEN_ACTION = "deploy_open"  # value: {"module", "version", "target"?}
DOWNLOAD_ACTION = "integration_download"  # value: {"module", "version"}
PAGE_ACTIONS = ("integrations_previous", "integrations_next")  # value: the page number to show
HOME_MAX_BLOCKS = 100
MESSAGE_MAX_BLOCKS = 50
# Blocks every page spends besides the integrations: a title, an explanation, the page buttons.
_FRAME_BLOCKS = 3
HOME_TITLE = "My integrations"


@dataclass(frozen=True, slots=True)
class EnvironmentRow:
    environment: str
    version: str
    connection: str | None  # None: nobody picked a connection there yet


@dataclass(frozen=True, slots=True)
class IntegrationSummary:
    module_name: str
    application_name: str
    provider_title: str
    open: bool
    latest_version: str | None
    environments: tuple[EnvironmentRow, ...]  # where it is deployed, in environment order


@dataclass(frozen=True, slots=True)
class Message:
    """A message's notification text (also what clients without blocks show) and its blocks."""

    text: str
    blocks: list[Block]


def connect_button(module: str, environment: str, label: str = "Connect") -> dict[str, Any]:
    """The button that opens the connections of ``module`` in ``environment``."""
    return button(label, CONNECTIONS_ACTION, json.dumps({"module": module, "env": environment}))


def notice_modal(title: str, text: str, *, callback_id: str) -> dict[str, Any]:
    """A modal with one text and only a Close button (loading, results, refusals)."""
    return modal(title, [section(text)], callback_id=callback_id, close="Close")


def _environment_blocks(summary: IntegrationSummary, row: EnvironmentRow) -> list[Block]:
    module = summary.module_name
    if row.connection is None:
        connection = ":warning: no connection yet"
    else:
        connection = f":link: connection *{escape(row.connection)}*"
    text = f"`{row.environment}` · version *{row.version}* · {connection}"
    value = json.dumps({"module": module, "version": row.version})
    buttons = [
        connect_button(module, row.environment, "Connect" if row.connection is None else "Change connection"),
        button("Deploy", DEPLOY_OPEN_ACTION, value),
        button("Download", DOWNLOAD_ACTION, value),
    ]
    return [section(text), actions(f"env:{module}:{row.environment}", *buttons)]


def _integration_blocks(summary: IntegrationSummary, max_blocks: int) -> list[Block]:
    title = (
        f"*{escape(summary.application_name)}* (`{summary.module_name}`) · {escape(summary.provider_title)}"
    )
    if summary.open:
        title += " · open integration"
    if summary.latest_version is None:
        title += "\n_Not published yet._"
    blocks = [section(title, block_id=f"integration:{summary.module_name}")]
    rows = summary.environments
    # An integration deployed to more environments than a page holds shows the first ones.
    shown = rows[: max(1, (max_blocks - _FRAME_BLOCKS - 2) // 2)]
    for row in shown:
        blocks += _environment_blocks(summary, row)
    if len(shown) < len(rows):
        blocks.append(context(f"…and {len(rows) - len(shown)} more environments"))
    return blocks


def paginate(integrations: Sequence[IntegrationSummary], max_blocks: int) -> list[list[IntegrationSummary]]:
    """``integrations`` cut into pages whose blocks fit ``max_blocks`` (at least one page)."""
    budget = max_blocks - _FRAME_BLOCKS
    pages: list[list[IntegrationSummary]] = [[]]
    used = 0
    for summary in integrations:
        size = len(_integration_blocks(summary, max_blocks))
        if pages[-1] and used + size > budget:
            pages.append([])
            used = 0
        pages[-1].append(summary)
        used += size
    return pages


def integrations_blocks(
    integrations: Sequence[IntegrationSummary], page: int, *, max_blocks: int
) -> list[Block]:
    """The blocks of page ``page`` (clamped to the pages there are)."""
    pages = paginate(integrations, max_blocks)
    page = min(max(page, 0), len(pages) - 1)
    blocks: list[Block] = [header(HOME_TITLE)]
    if not integrations:
        blocks.append(
            section(
                "You have no integrations yet. Create one with `/ib new` or the *Create integration* "
                "shortcut; it shows up here once it is published."
            )
        )
        return blocks
    summary = f"{len(integrations)} integration{'s' if len(integrations) != 1 else ''}"
    if len(pages) > 1:
        summary += f" · page {page + 1} of {len(pages)}"
    blocks.append(context(f"{summary} · each environment with its version and connection"))
    for shown in pages[page]:
        blocks += _integration_blocks(shown, max_blocks)
    turns = []
    if page > 0:
        turns.append(button("Previous", PAGE_ACTIONS[0], str(page - 1)))
    if page < len(pages) - 1:
        turns.append(button("Next", PAGE_ACTIONS[1], str(page + 1)))
    if turns:
        blocks.append(actions("integrations_pages", *turns))
    return blocks


def integrations_message(integrations: Sequence[IntegrationSummary], page: int = 0) -> Message:
    """`/ib list`: one page of the list, as a message only the user sees."""
    count = len(integrations)
    text = f"{HOME_TITLE}: {count} integration{'s' if count != 1 else ''}"
    return Message(text, integrations_blocks(integrations, page, max_blocks=MESSAGE_MAX_BLOCKS))


def home_view(integrations: Sequence[IntegrationSummary], page: int = 0) -> dict[str, Any]:
    """The App Home tab."""
    return {
        "type": "home",
        "callback_id": "ib_home",
        "blocks": integrations_blocks(integrations, page, max_blocks=HOME_MAX_BLOCKS),
    }


def package_comment(module: str, version: str, sha256: str, wheel_filename: str) -> str:
    """What goes with a package posted to a DM (a Download click)."""
    return (
        f"Application package of *{module}* {version} (sha256 `{sha256[:12]}…`): "
        f"install it by hand with `pip install ./{escape(wheel_filename)}`."
    )
