"""Small Block Kit builders that keep every text within Slack's limits (SLACK.md)."""

from __future__ import annotations

from typing import Any

Block = dict[str, Any]

TITLE_MAX = 24  # modal title, submit and close
OPTION_TEXT_MAX = 75
OPTION_VALUE_MAX = 150
SECTION_TEXT_MAX = 3000
MAX_BLOCKS = 100


def clip(text: str, limit: int) -> str:
    """``text`` cut to ``limit`` characters, with an ellipsis when something was cut."""
    return text if len(text) <= limit else text[: limit - 1] + "…"


def plain(text: str, limit: int = SECTION_TEXT_MAX, emoji: bool = True) -> dict[str, Any]:
    return {"type": "plain_text", "text": clip(text, limit) or " ", "emoji": emoji}


def mrkdwn(text: str, limit: int = SECTION_TEXT_MAX) -> dict[str, Any]:
    return {"type": "mrkdwn", "text": clip(text, limit) or " "}


def escape(text: str) -> str:
    """Escape user or metadata text for mrkdwn (Slack's three control characters)."""
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def section(text: str, *, block_id: str | None = None, accessory: dict[str, Any] | None = None) -> Block:
    block: Block = {"type": "section", "text": mrkdwn(text)}
    if block_id:
        block["block_id"] = block_id
    if accessory:
        block["accessory"] = accessory
    return block


def context(text: str) -> Block:
    return {"type": "context", "elements": [mrkdwn(text)]}


def header(text: str) -> Block:
    return {"type": "header", "text": plain(text, 150)}


def divider() -> Block:
    return {"type": "divider"}


def button(
    text: str, action_id: str, value: str = "", *, style: str | None = None, url: str | None = None
) -> dict[str, Any]:
    element: dict[str, Any] = {"type": "button", "text": plain(text, 75), "action_id": action_id}
    if value:
        element["value"] = value[:2000]
    if style:
        element["style"] = style
    if url:
        element["url"] = url
    return element


def actions(block_id: str, *elements: dict[str, Any]) -> Block:
    return {"type": "actions", "block_id": block_id, "elements": list(elements)}


def option(text: str, value: str, description: str = "") -> dict[str, Any]:
    result: dict[str, Any] = {
        "text": plain(text, OPTION_TEXT_MAX),
        "value": value[:OPTION_VALUE_MAX],
    }
    if description:
        result["description"] = plain(description, OPTION_TEXT_MAX)
    return result


def input_block(
    block_id: str,
    label: str,
    element: dict[str, Any],
    *,
    optional: bool = False,
    hint: str = "",
    dispatch_action: bool = False,
) -> Block:
    block: Block = {
        "type": "input",
        "block_id": block_id,
        "label": plain(label, 2000),
        "element": element,
        "optional": optional,
    }
    if hint:
        block["hint"] = plain(hint, 2000)
    if dispatch_action:
        block["dispatch_action"] = True
    return block


def text_input(
    action_id: str,
    *,
    initial: str = "",
    placeholder: str = "",
    multiline: bool = False,
    max_length: int = 3000,
) -> dict[str, Any]:
    element: dict[str, Any] = {
        "type": "plain_text_input",
        "action_id": action_id,
        "multiline": multiline,
        "max_length": max_length,
    }
    if initial:
        element["initial_value"] = initial[:max_length]
    if placeholder:
        element["placeholder"] = plain(placeholder, 150)
    return element


def modal(
    title: str,
    blocks: list[Block],
    *,
    callback_id: str,
    private_metadata: str = "",
    submit: str | None = None,
    close: str = "Cancel",
    external_id: str | None = None,
) -> dict[str, Any]:
    view: dict[str, Any] = {
        "type": "modal",
        "callback_id": callback_id,
        "title": plain(title, TITLE_MAX),
        "close": plain(close, TITLE_MAX),
        "blocks": blocks[:MAX_BLOCKS],
        "private_metadata": private_metadata,
    }
    if submit:
        view["submit"] = plain(submit, TITLE_MAX)
    if external_id:
        view["external_id"] = external_id
    return view
