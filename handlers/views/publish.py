"""The publish DM (progress, then the result) and the "How to use" modal: pure functions.

The DM is one message edited in place: generating -> building -> publishing -> published, or
failed with the reason. Texts that come from users or metadata (application names, README
paragraphs) are escaped for mrkdwn; the publisher's reasons are our own sentences and may
mention users (``<@U…>``), so they are shown as they are.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from typing import Any, Final

from handlers.views.blocks import (
    SECTION_TEXT_MAX,
    Block,
    actions,
    button,
    context,
    escape,
    header,
    modal,
    section,
)
from handlers.views.integrations import Message, connect_button

PUBLISH_STATES: Final = ("generating", "building", "publishing", "published")
HOW_TO_USE_ACTION: Final = "publish_how_to_use"  # value: {"module", "version"}
HOW_TO_USE_CALLBACK: Final = "ib_how_to_use"
HOW_TO_USE_TITLE: Final = "How to use"
PACKAGE_FILES_TITLE: Final = "Download application package"
_STEP_LABELS: Final = {
    "generating": "Generating",
    "building": "Building",
    "publishing": "Publishing",
    "published": "Published",
}
# A modal holds 100 blocks and 250 kB; a README of hundreds of objects is cut well before that.
_HOW_TO_USE_BLOCKS: Final = 95
_HOW_TO_USE_CHARS: Final = 120_000
_SERVICE_IMPORT = re.compile(r"^from (\w+)\.service import (search_\w+)$", re.MULTILINE)


def sentence(text: str) -> str:
    """A one-line reason as a sentence: capital first letter, final full stop."""
    text = text.strip()
    return text[:1].upper() + text[1:] + ("" if text.endswith((".", "?", "!")) else ".")


def _title(application_name: str, module: str) -> str:
    return f"*{escape(application_name)}* (`{module}`)"


def _steps(state: str) -> str:
    reached = PUBLISH_STATES.index(state) if state in PUBLISH_STATES else -1
    marks = []
    for index, step in enumerate(PUBLISH_STATES):
        if index < reached or step == state == "published":
            mark = ":white_check_mark:"
        elif index == reached:
            mark = ":hourglass_flowing_sand:"
        else:
            mark = ":white_circle:"
        marks.append(f"{mark} {_STEP_LABELS[step]}")
    return "   ".join(marks)


def progress_message(*, application_name: str, module: str, environment: str, state: str) -> Message:
    """The DM while a job runs; ``state`` is generating, building or publishing."""
    return Message(
        f"Publishing {module} to {environment}: {state}…",
        [
            section(f"Publishing {_title(application_name, module)} to `{environment}`…"),
            context(_steps(state)),
        ],
    )


def usage_snippet(readme: str) -> str:
    """A few lines calling the first object's search through ``service``, taken from the
    package's README (so the names are the ones generated); "" when no object is searchable."""
    match = _SERVICE_IMPORT.search(readme)
    if match is None:
        return ""
    module, action = match.groups()
    return "\n".join(
        [
            f"from {module}.service import {action}",
            "",
            f"page = {action}(top=5)",
            "for record in page:",
            "    print(record)",
        ]
    )


def published_message(
    *,
    application_name: str,
    module: str,
    version: str,
    environment: str,
    install_line: str,
    manager_url: str,
    snippet: str,
) -> Message:
    """The DM once published: version, the pip line, a snippet, Go to connections and How to use."""
    title = _title(application_name, module)
    blocks: list[Block] = [
        section(f":white_check_mark: {title} *{version}* is published to `{environment}`."),
        context(_steps("published")),
        section(f"*Install it* (with a runtime token of `{environment}`):\n```{escape(install_line)}```"),
    ]
    if snippet:
        blocks.append(
            section(
                f"*Call it from an app* with `IB_MANAGER_URL={escape(manager_url)}` and "
                f"`IB_RUNTIME_TOKEN` (a runtime token of `{environment}`) set:\n```{escape(snippet)}```"
            )
        )
    blocks.append(
        actions(
            "publish_next",
            connect_button(module, environment, "Go to connections"),
            button(HOW_TO_USE_TITLE, HOW_TO_USE_ACTION, json.dumps({"module": module, "version": version})),
        )
    )
    return Message(f"Published {module} {version} to {environment}", blocks)


def failed_message(
    *, application_name: str, module: str, environment: str, reason: str, attached: bool
) -> Message:
    """The DM of a failed job; ``attached``: the package files follow in the DM."""
    blocks = [
        section(
            f":x: Publishing {_title(application_name, module)} to `{environment}` failed. {sentence(reason)}"
        )
    ]
    if attached:
        blocks.append(
            context(
                f"*{PACKAGE_FILES_TITLE}*: the wheel and the source package are attached below, "
                "to install by hand."
            )
        )
    return Message(f"Publishing {module} to {environment} failed: {sentence(reason)}", blocks)


def package_files_comment(module: str, version: str | None) -> str:
    built = f"{module} {version}" if version else module
    return f"{PACKAGE_FILES_TITLE}: {built} (wheel and sdist)"


# How to use: the package's README as a modal


def _readme_parts(readme: str, install_line: str) -> Iterator[tuple[str, str]]:
    """(kind, text) of the README: ``heading``, ``text`` (mrkdwn, escaped) or ``code``. Tables are
    left out (they do not fit a modal); the plain ``pip install`` is replaced by ``install_line``."""
    paragraph: list[str] = []
    code: list[str] | None = None
    for line in readme.splitlines():
        if code is not None:
            if line.startswith("```"):
                text = "\n".join(code)
                yield "code", install_line if text.startswith("pip install ") else text
                code = None
            else:
                code.append(line)
            continue
        if line.startswith("```") or line.startswith("#") or not line.strip() or line.startswith("|"):
            if paragraph:
                yield "text", escape(" ".join(paragraph))
                paragraph = []
        if line.startswith("```"):
            code = []
        elif line.startswith("### "):
            yield "text", f"*{escape(line[4:])}*"
        elif line.startswith("#"):
            yield "heading", line.lstrip("#").strip()
        elif line.strip() and not line.startswith("|"):
            paragraph.append(line.strip())
    if paragraph:
        yield "text", escape(" ".join(paragraph))


def how_to_use_view(*, module: str, version: str, install_line: str, readme: str) -> dict[str, Any]:
    """The package's README (install line with the index, examples, objects and actions)."""
    blocks: list[Block] = []
    pending: list[str] = []
    total = 0

    def flush() -> None:
        if pending:
            blocks.append(section("\n".join(pending)))
            pending.clear()

    parts = list(_readme_parts(readme, install_line))
    for index, (kind, text) in enumerate(parts):
        if len(blocks) >= _HOW_TO_USE_BLOCKS - 2 or total >= _HOW_TO_USE_CHARS:
            flush()
            blocks.append(
                context(f"README.md in the package has the rest ({len(parts) - index} more parts).")
            )
            break
        total += len(text)
        if kind == "heading":
            flush()
            blocks.append(header(text) if not blocks else section(f"*{escape(text)}*"))
            continue
        piece = f"```{escape(text)}```" if kind == "code" else text
        if sum(map(len, pending)) + len(piece) + len(pending) > SECTION_TEXT_MAX:
            flush()
        pending.append(piece)
    else:
        flush()
    return modal(
        HOW_TO_USE_TITLE,
        blocks or [section(f"`{module}` {version}")],
        callback_id=HOW_TO_USE_CALLBACK,
        close="Close",
    )
