"""Block Kit as Slack enforces it: the limits the Web API checks and the state the client keeps.

Pure functions over JSON dicts, shared by the fake Web API (what `views.*` and `chat.*` refuse) and
the driver (what the Slack client sends for a user's input, and what it accepts from the app).
Problems read like Slack's own `response_metadata.messages`: `[ERROR] ... [json-pointer:/view/...]`.
"""

from __future__ import annotations

import copy
import json
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

Json = dict[str, Any]

MAX_VIEW_BLOCKS = 100
MAX_MESSAGE_BLOCKS = 50
MAX_MESSAGE_TEXT = 40_000
MAX_VIEW_BYTES = 250_000
MAX_TITLE = 24
MAX_PRIVATE_METADATA = 3000
MAX_ID = 255
MAX_SELECT_OPTIONS = 100
MAX_OPTION_GROUPS = 100
MAX_CHOICE_OPTIONS = 10
MAX_OPTION_TEXT = 75
MAX_OPTION_VALUE = 150
MAX_TEXT_INPUT = 3000
MAX_FILE_INPUT_FILES = 10
DEFAULT_MIN_QUERY_LENGTH = 3

EXTERNAL_SELECTS = frozenset({"external_select", "multi_external_select"})
_STATIC_SELECTS = frozenset({"static_select", "multi_static_select"})
_CHOICES = frozenset({"checkboxes", "radio_buttons"})

# Element type -> (key of its entry in view.state.values, key of its initial value in the view).
_STATE_KEYS: dict[str, tuple[str, str | None]] = {
    "plain_text_input": ("value", "initial_value"),
    "email_text_input": ("value", "initial_value"),
    "url_text_input": ("value", "initial_value"),
    "number_input": ("value", "initial_value"),
    "static_select": ("selected_option", "initial_option"),
    "external_select": ("selected_option", "initial_option"),
    "radio_buttons": ("selected_option", "initial_option"),
    "multi_static_select": ("selected_options", "initial_options"),
    "multi_external_select": ("selected_options", "initial_options"),
    "checkboxes": ("selected_options", "initial_options"),
    "users_select": ("selected_user", "initial_user"),
    "multi_users_select": ("selected_users", "initial_users"),
    "conversations_select": ("selected_conversation", "initial_conversation"),
    "multi_conversations_select": ("selected_conversations", "initial_conversations"),
    "channels_select": ("selected_channel", "initial_channel"),
    "multi_channels_select": ("selected_channels", "initial_channels"),
    "datepicker": ("selected_date", "initial_date"),
    "timepicker": ("selected_time", "initial_time"),
    "datetimepicker": ("selected_date_time", "initial_date_time"),
    "file_input": ("files", None),
}
# Elements an input block may hold (all that keep state, and rich text); the others (buttons,
# overflow menus, images) live in section accessories and actions blocks.
INPUT_ELEMENTS = frozenset({*_STATE_KEYS, "rich_text_input"})
_OPTION_STATES = frozenset({"selected_option", "selected_options"})
_LIST_STATES = frozenset(
    {"selected_options", "selected_users", "selected_conversations", "selected_channels", "files"}
)


class _Findings:
    """Collects problems with the JSON pointer of the offending field, as Slack reports them."""

    def __init__(self) -> None:
        self.messages: list[str] = []

    def add(self, pointer: str, problem: str) -> None:
        self.messages.append(f"[ERROR] {problem} [json-pointer:{pointer}]")

    def string(self, pointer: str, value: Any, limit: int) -> None:
        if value is None:
            return
        if not isinstance(value, str):
            self.add(pointer, "must be a string")
        elif len(value) > limit:
            self.add(pointer, f"must be less than {limit + 1} characters")

    def items(self, pointer: str, value: Any, limit: int, *, minimum: int = 0) -> list[Any]:
        if not isinstance(value, list):
            self.add(pointer, "must be an array")
            return []
        if len(value) > limit:
            self.add(pointer, f"must provide no more than {limit} items")
        if len(value) < minimum:
            self.add(pointer, f"must provide at least {minimum} items")
        return value

    def text(
        self, pointer: str, value: Any, *, limit: int, plain: bool = False, required: bool = True
    ) -> None:
        if value is None:
            if required:
                self.add(pointer, "must provide an object")
            return
        if not isinstance(value, Mapping) or value.get("type") not in ("plain_text", "mrkdwn"):
            self.add(pointer, "must be a text object of type plain_text or mrkdwn")
            return
        if plain and value["type"] != "plain_text":
            self.add(f"{pointer}/type", "must be plain_text")
        text = value.get("text")
        if not isinstance(text, str) or not text:
            self.add(f"{pointer}/text", "must be more than 0 characters")
        elif len(text) > limit:
            self.add(f"{pointer}/text", f"must be less than {limit + 1} characters")


def view_problems(view: Any, *, surface: str) -> list[str]:
    """What Slack refuses in a view for `surface` ("modal" or "home") with `invalid_arguments`."""
    findings = _Findings()
    if not isinstance(view, Mapping):
        findings.add("/view", "must provide an object")
        return findings.messages
    if view.get("type") != surface:
        findings.add("/view/type", f"must be {surface}")
    blocks = view.get("blocks")
    if surface == "modal":
        has_inputs = isinstance(blocks, list) and any(
            isinstance(block, Mapping) and block.get("type") == "input" for block in blocks
        )
        findings.text("/view/title", view.get("title"), limit=MAX_TITLE, plain=True)
        # The client has nothing to submit input blocks with unless the view names a submit button.
        findings.text("/view/submit", view.get("submit"), limit=MAX_TITLE, plain=True, required=has_inputs)
        findings.text("/view/close", view.get("close"), limit=MAX_TITLE, plain=True, required=False)
    findings.string("/view/private_metadata", view.get("private_metadata"), MAX_PRIVATE_METADATA)
    findings.string("/view/callback_id", view.get("callback_id"), MAX_ID)
    findings.string("/view/external_id", view.get("external_id"), MAX_ID)
    _check_blocks(findings, "/view/blocks", blocks, limit=MAX_VIEW_BLOCKS)
    return findings.messages


def is_view_too_large(view: Mapping[str, Any]) -> bool:
    """Slack answers `view_too_large` past 250 kB of view JSON."""
    encoded = json.dumps(view, separators=(",", ":"), ensure_ascii=False).encode()
    return len(encoded) > MAX_VIEW_BYTES


def message_block_problems(blocks: Any) -> list[str]:
    """What `chat.postMessage` / `chat.update` refuse in `blocks` with `invalid_blocks`."""
    findings = _Findings()
    _check_blocks(findings, "/blocks", blocks, limit=MAX_MESSAGE_BLOCKS)
    return findings.messages


def options_answer_problems(answer: Any) -> list[str]:
    """What makes the Slack client show "no result" for an answer to a `block_suggestion`."""
    findings = _Findings()
    if not isinstance(answer, Mapping) or not ("options" in answer or "option_groups" in answer):
        findings.add("/", "must provide options or option_groups")
        return findings.messages
    if "options" in answer:
        _check_options(findings, "/options", answer["options"], limit=MAX_SELECT_OPTIONS, plain=True)
    else:
        _check_option_groups(findings, "/option_groups", answer["option_groups"])
    return findings.messages


def _check_blocks(findings: _Findings, pointer: str, blocks: Any, *, limit: int) -> None:
    block_ids: set[str] = set()
    for index, block in enumerate(findings.items(pointer, blocks, limit)):
        at = f"{pointer}/{index}"
        if not isinstance(block, Mapping):
            findings.add(at, "must provide an object")
            continue
        block_id = block.get("block_id")
        if block_id is not None:
            findings.string(f"{at}/block_id", block_id, MAX_ID)
            if block_id in block_ids:
                findings.add(f"{at}/block_id", f"block_id {block_id!r} is already used in this view")
            block_ids.add(block_id)
        check = _BLOCK_CHECKS.get(block.get("type"))
        if check is None:
            findings.add(f"{at}/type", f"unknown block type {block.get('type')!r}")
        else:
            check(findings, at, block)


def _check_section(findings: _Findings, at: str, block: Mapping[str, Any]) -> None:
    if block.get("text") is None and block.get("fields") is None:
        findings.add(at, "must provide text or fields")
    findings.text(f"{at}/text", block.get("text"), limit=3000, required=False)
    if block.get("fields") is not None:
        for index, field in enumerate(findings.items(f"{at}/fields", block["fields"], 10)):
            findings.text(f"{at}/fields/{index}", field, limit=2000)
    if block.get("accessory") is not None:
        _check_element(findings, f"{at}/accessory", block["accessory"], in_input=False)


def _check_header(findings: _Findings, at: str, block: Mapping[str, Any]) -> None:
    findings.text(f"{at}/text", block.get("text"), limit=150, plain=True)


def _check_context(findings: _Findings, at: str, block: Mapping[str, Any]) -> None:
    findings.items(f"{at}/elements", block.get("elements"), 10, minimum=1)


def _check_actions(findings: _Findings, at: str, block: Mapping[str, Any]) -> None:
    action_ids: set[str] = set()
    for index, element in enumerate(findings.items(f"{at}/elements", block.get("elements"), 25, minimum=1)):
        _check_element(findings, f"{at}/elements/{index}", element, in_input=False)
        action_id = element.get("action_id") if isinstance(element, Mapping) else None
        if action_id is not None:
            if action_id in action_ids:
                findings.add(f"{at}/elements/{index}/action_id", f"action_id {action_id!r} is already used")
            action_ids.add(action_id)


def _check_input(findings: _Findings, at: str, block: Mapping[str, Any]) -> None:
    findings.text(f"{at}/label", block.get("label"), limit=2000, plain=True)
    findings.text(f"{at}/hint", block.get("hint"), limit=2000, plain=True, required=False)
    element = block.get("element")
    if not isinstance(element, Mapping):
        findings.add(f"{at}/element", "must provide an object")
    elif element.get("type") not in INPUT_ELEMENTS:
        findings.add(f"{at}/element/type", f"{element.get('type')!r} is not allowed in an input block")
    else:
        _check_element(findings, f"{at}/element", element, in_input=True)


def _check_image(findings: _Findings, at: str, block: Mapping[str, Any]) -> None:
    if block.get("image_url") is None and block.get("slack_file") is None:
        findings.add(at, "must provide image_url or slack_file")
    findings.string(f"{at}/alt_text", block.get("alt_text"), 2000)
    if block.get("alt_text") is None:
        findings.add(f"{at}/alt_text", "must provide a string")


def _no_check(findings: _Findings, at: str, block: Mapping[str, Any]) -> None:
    """Block types the app may send but whose inner rules the fake does not model."""


_BLOCK_CHECKS: dict[Any, Callable[[_Findings, str, Mapping[str, Any]], None]] = {
    "section": _check_section,
    "header": _check_header,
    "context": _check_context,
    "actions": _check_actions,
    "input": _check_input,
    "image": _check_image,
    "divider": _no_check,
    "rich_text": _no_check,
    "markdown": _no_check,
    "file": _no_check,
    "video": _no_check,
}


def _check_element(findings: _Findings, at: str, element: Any, *, in_input: bool) -> None:
    if not isinstance(element, Mapping):
        findings.add(at, "must provide an object")
        return
    kind = element.get("type")
    if kind == "file_input" and not in_input:
        findings.add(f"{at}/type", "file_input is only allowed in an input block")
    findings.string(f"{at}/action_id", element.get("action_id"), MAX_ID)
    findings.text(f"{at}/placeholder", element.get("placeholder"), limit=150, plain=True, required=False)
    if kind == "button":
        findings.text(f"{at}/text", element.get("text"), limit=75, plain=True)
        findings.string(f"{at}/value", element.get("value"), 2000)
        findings.string(f"{at}/url", element.get("url"), 3000)
    elif kind in _STATIC_SELECTS:
        _check_static_select(findings, at, element)
    elif kind in EXTERNAL_SELECTS:
        minimum = element.get("min_query_length", DEFAULT_MIN_QUERY_LENGTH)
        if not isinstance(minimum, int) or isinstance(minimum, bool) or minimum < 0:
            findings.add(f"{at}/min_query_length", "must be an integer of at least 0")
    elif kind in _CHOICES:
        _check_options(findings, f"{at}/options", element.get("options"), limit=MAX_CHOICE_OPTIONS)
        _check_initial(findings, at, element)
    elif kind == "overflow":
        findings.items(f"{at}/options", element.get("options"), 5, minimum=2)
    elif kind == "plain_text_input":
        findings.string(f"{at}/initial_value", element.get("initial_value"), MAX_TEXT_INPUT)
        for bound in ("min_length", "max_length"):
            value = element.get(bound)
            if value is not None and (not isinstance(value, int) or not 0 <= value <= MAX_TEXT_INPUT):
                findings.add(f"{at}/{bound}", f"must be an integer between 0 and {MAX_TEXT_INPUT}")
    elif kind == "file_input":
        value = element.get("max_files")
        if value is not None and (not isinstance(value, int) or not 1 <= value <= MAX_FILE_INPUT_FILES):
            findings.add(f"{at}/max_files", f"must be an integer between 1 and {MAX_FILE_INPUT_FILES}")


def _check_static_select(findings: _Findings, at: str, element: Mapping[str, Any]) -> None:
    if ("options" in element) == ("option_groups" in element):
        findings.add(at, "must provide exactly one of options or option_groups")
    elif "options" in element:
        _check_options(findings, f"{at}/options", element["options"], limit=MAX_SELECT_OPTIONS, plain=True)
    else:
        _check_option_groups(findings, f"{at}/option_groups", element["option_groups"])
    _check_initial(findings, at, element)


def _check_option_groups(findings: _Findings, at: str, groups: Any) -> None:
    for index, group in enumerate(findings.items(at, groups, MAX_OPTION_GROUPS, minimum=1)):
        if not isinstance(group, Mapping):
            findings.add(f"{at}/{index}", "must provide an object")
            continue
        findings.text(f"{at}/{index}/label", group.get("label"), limit=MAX_OPTION_TEXT, plain=True)
        _check_options(
            findings, f"{at}/{index}/options", group.get("options"), limit=MAX_SELECT_OPTIONS, plain=True
        )


def _check_options(findings: _Findings, at: str, options: Any, *, limit: int, plain: bool = False) -> None:
    for index, option in enumerate(findings.items(at, options, limit, minimum=1)):
        if not isinstance(option, Mapping):
            findings.add(f"{at}/{index}", "must provide an object")
            continue
        findings.text(f"{at}/{index}/text", option.get("text"), limit=MAX_OPTION_TEXT, plain=plain)
        findings.text(
            f"{at}/{index}/description", option.get("description"), limit=MAX_OPTION_TEXT, required=False
        )
        findings.string(f"{at}/{index}/value", option.get("value"), MAX_OPTION_VALUE)
        if option.get("value") is None:
            findings.add(f"{at}/{index}/value", "must provide a string")


def _check_initial(findings: _Findings, at: str, element: Mapping[str, Any]) -> None:
    """Slack refuses an initial option that is not one of the element's options."""
    values = {option.get("value") for option in options_of(element)}
    for option in _initial_options(element):
        if not isinstance(option, Mapping) or option.get("value") not in values:
            findings.add(f"{at}/initial_option", "must match one of the provided options")


def _initial_options(element: Mapping[str, Any]) -> list[Any]:
    if element.get("initial_option") is not None:
        return [element["initial_option"]]
    return list(element.get("initial_options") or [])


def options_of(element: Mapping[str, Any]) -> list[Json]:
    """The options of a static element, flattened out of option groups."""
    if "option_groups" in element:
        return [option for group in element["option_groups"] for option in group.get("options", [])]
    return list(element.get("options") or [])


@dataclass(frozen=True)
class ElementRef:
    """One interactive element of a view or message, with the ids Slack reports it under."""

    block_id: str
    action_id: str
    element: Mapping[str, Any]
    block: Mapping[str, Any]

    @property
    def type(self) -> str:
        return str(self.element.get("type"))

    @property
    def in_input(self) -> bool:
        return self.block.get("type") == "input"

    @property
    def is_stateful(self) -> bool:
        return self.type in _STATE_KEYS


def iter_elements(blocks: Sequence[Mapping[str, Any]]) -> Iterator[ElementRef]:
    for block in blocks:
        if block.get("type") == "actions":
            elements = list(block.get("elements") or [])
        elif block.get("type") == "input":
            elements = [block["element"]]
        elif block.get("accessory") is not None:
            elements = [block["accessory"]]
        else:
            elements = []
        for element in elements:
            block_id, action_id = str(block.get("block_id", "")), str(element.get("action_id", ""))
            yield ElementRef(block_id, action_id, element, block)


def fill_missing_ids(blocks: Sequence[Mapping[str, Any]], new_id: Callable[[], str]) -> list[Json]:
    """A copy of `blocks` with the ids Slack generates where the app gave none.

    Slack makes up a fresh block_id on every update, which is why typed input survives a
    `views.update` only when the app sets its own block_id/action_id.
    """
    filled: list[Json] = copy.deepcopy(list(blocks))  # type: ignore[arg-type]
    for block in filled:
        block.setdefault("block_id", new_id())
    for ref in iter_elements(filled):
        if ref.type != "image":
            ref.element.setdefault("action_id", new_id())  # type: ignore[attr-defined]
    return filled


def state_key(element: Mapping[str, Any]) -> str:
    return _STATE_KEYS[str(element.get("type"))][0]


def initial_state(element: Mapping[str, Any]) -> Json:
    """The state entry of an element the user has not touched: its initial value, or empty."""
    key, initial_key = _STATE_KEYS[str(element.get("type"))]
    empty: Any = [] if key in _LIST_STATES else None
    initial = element.get(initial_key, empty) if initial_key else empty
    return {"type": element["type"], key: copy.deepcopy(initial)}


def chosen_state(element: Mapping[str, Any], choice: Any, offered: Sequence[Mapping[str, Any]] = ()) -> Json:
    """The state entry after the user chose `choice` (a value, or a list of values, as the user sees them).

    Options are given by their `value`; a static element offers its own options, an external
    select only what the app answered to `block_suggestion` (`offered`) or its initial options.
    Raises ValueError when the Slack client would not let a user make that choice.
    """
    kind = str(element.get("type"))
    if kind not in _STATE_KEYS:
        raise ValueError(f"a {kind} keeps no state: nothing to type or choose")
    key = state_key(element)
    if key not in _OPTION_STATES:
        return {"type": kind, key: choice}
    available = [
        *(list(offered) if kind in EXTERNAL_SELECTS else options_of(element)),
        *_initial_options(element),
    ]
    by_value = {option["value"]: option for option in available}
    wanted = list(choice) if key == "selected_options" else [choice]
    missing = [value for value in wanted if value not in by_value]
    if missing:
        raise ValueError(f"{kind} {element.get('action_id')!r} offers no option with value {missing}")
    picked = [copy.deepcopy(by_value[value]) for value in wanted]
    return {"type": kind, key: picked if key == "selected_options" else picked[0]}


def submission_problems(view: Mapping[str, Any], values: Mapping[str, Mapping[str, Json]]) -> list[str]:
    """Why the Slack client would not submit `view` with state `values` (required, length, count)."""
    problems: list[str] = []
    if view.get("submit") is None:
        problems.append("the view has no submit button")
    for ref in iter_elements(view.get("blocks", [])):
        if not (ref.in_input and ref.is_stateful):
            continue
        entry = values.get(ref.block_id, {}).get(ref.action_id, {})
        current = entry.get(state_key(ref.element))
        label = f"input {ref.block_id!r}"
        if current in (None, "", []):
            if not ref.block.get("optional", False):
                problems.append(f"{label} is required and empty")
            continue
        if ref.type == "plain_text_input":
            if len(current) > ref.element.get("max_length", MAX_TEXT_INPUT):
                problems.append(f"{label} is longer than its max_length")
            if len(current) < ref.element.get("min_length", 0):
                problems.append(f"{label} is shorter than its min_length")
        if ref.type == "file_input" and len(current) > ref.element.get("max_files", MAX_FILE_INPUT_FILES):
            problems.append(f"{label} holds more files than its max_files")
    return problems


def errors_answer_problems(view: Mapping[str, Any], errors: Any) -> list[str]:
    """`response_action: errors` may only name input blocks of the submitted view."""
    if not isinstance(errors, Mapping) or not errors:
        return ["errors must be a non-empty object of block_id -> message"]
    inputs = {ref.block_id for ref in iter_elements(view.get("blocks", [])) if ref.in_input}
    return [
        f"errors names {block_id!r}, which is not an input block of the view"
        for block_id in errors
        if block_id not in inputs
    ]
