"""`/ib connections` and admin requests: pure functions from connection summaries to Block Kit.

One modal, updated in place: the integration's connection in one environment (pick one and
Associate; new, edit, test, delete), the connection form, "Ask an administrator", and the form
the addressed administrator fills from their DM. Plus the DMs of an admin request.

Secrets never appear in a view or message: secret inputs get no ``initial_value`` and
``private_metadata`` holds names only (:class:`ModalContext`). Slack's client keeps what was typed
while a view is updated with the same block and action ids, which is how a form whose test failed
stays filled, secrets included, without the service keeping them anywhere.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from handlers.connections_service import (
    AdminRequestSummary,
    AssociationSummary,
    CompletedRequest,
    ConnectionSummary,
)
from handlers.views.blocks import (
    MAX_BLOCKS,
    SECTION_TEXT_MAX,
    Block,
    actions,
    button,
    context,
    escape,
    input_block,
    modal,
    option,
    plain,
    section,
    text_input,
)
from providers.base import ConnectionField
from providers.certificates import CERTIFICATE_FIELD, PRIVATE_KEY_FIELD

CALLBACK_ID = "ib_connections"  # every view of the modal has a callback_id "ib_connections:<kind>"
TITLE = "Connections"
ADMIN_TITLE = "Connection details"

OPEN_ACTION = "connections_open"  # value: {"module": ..., "env": ...} (rendered by other handlers too)
PICK_ACTION = "connections_pick"
ENV_ACTION = "connections_env"
BACK_ACTION = "connections_back"
NEW_ACTION = "connection_new"
EDIT_ACTION = "connection_edit"
RETEST_ACTION = "connection_retest"
DELETE_ACTION = "connection_delete"
ASK_ACTION = "connection_ask"
TEST_ACTION = "connection_test"
ADMIN_OPEN_ACTION = "admin_request_open"  # value: the request id
CANCEL_REQUEST_ACTION = "admin_request_cancel"  # value: the request id

CONNECTION_BLOCK = "connection"  # the select of the connection to associate (block and action id)
NAME_BLOCK = "connection_name"
ADMIN_BLOCK = "admin"
NOTE_BLOCK = "note"
STATUS_BLOCK = "status"
FIELD_BLOCK_PREFIX = "field_"
NAME_MAX = 64
NOTE_MAX = 1000
STATIC_OPTIONS_MAX = 100
SECRET_HINT = "Slack shows what you type here. It is stored encrypted and never shown again."  # noqa: S105
# Slack messages hold at most 50 blocks; the fixed ones around the instructions take a few.
_MESSAGE_TEXT_BLOCKS = 40


_CONTEXT_KEYS = {
    "module": "m",
    "environment": "e",
    "provider": "p",
    "connection": "c",
    "secrets_set": "s",
    "request": "r",
    "channel": "ch",
    "ts": "ts",
}


@dataclass(frozen=True, slots=True)
class ModalContext:
    """What a view of the modal is about; its JSON is the view's ``private_metadata`` (names only,
    never a value a user typed into a secret field)."""

    module: str = ""
    environment: str = ""
    provider: str = ""
    connection: str = ""  # the connection being edited ("" on a new one)
    secrets_set: tuple[str, ...] = ()  # names of the edited connection's secret fields holding a value
    request: str = ""  # the admin request the administrator answers
    channel: str = ""  # where the administrator's DM with the request is, to mark it done
    ts: str = ""

    def to_json(self) -> str:
        data = {short: getattr(self, name) for name, short in _CONTEXT_KEYS.items() if getattr(self, name)}
        return json.dumps(data, separators=(",", ":"))

    @classmethod
    def from_json(cls, text: str) -> ModalContext:
        try:
            data = json.loads(text) if text else {}
        except json.JSONDecodeError:
            return cls()
        if not isinstance(data, dict):
            return cls()
        values: dict[str, Any] = {}
        for name, short in _CONTEXT_KEYS.items():
            raw = data.get(short)
            if name == "secrets_set":
                values[name] = tuple(str(item) for item in raw) if isinstance(raw, list) else ()
            elif raw is not None:
                values[name] = str(raw)
        return cls(**values)


@dataclass(frozen=True, slots=True)
class Status:
    """A line at the top of a view: the outcome of the last action (``ok`` None: still working).
    ``field`` names the connection field the message is about, to repeat it under that input."""

    text: str
    ok: bool | None = None
    field: str | None = None

    def block(self) -> Block:
        icon = {True: ":white_check_mark:", False: ":warning:", None: ":hourglass_flowing_sand:"}[self.ok]
        return section(f"{icon} {self.text}", block_id=STATUS_BLOCK)


@dataclass(frozen=True, slots=True)
class IntegrationScreen:
    """What the modal's main view shows: one integration in one environment."""

    association: AssociationSummary
    provider_title: str
    environments: tuple[str, ...]  # where the integration is deployed
    connections: tuple[ConnectionSummary, ...]  # of its provider, in the environment
    can_manage: bool


def callback_id(kind: str) -> str:
    return f"{CALLBACK_ID}:{kind}"


def kind_of(view_callback_id: str) -> str:
    """The kind of a connections view ("screen", "form", "ask", "admin", ...); "" for other views."""
    prefix, colon, kind = view_callback_id.partition(":")
    return kind if prefix == CALLBACK_ID and colon else ""


def target_value(module: str, environment: str) -> str:
    """The value of a button or option that opens the modal on ``module`` in ``environment``."""
    return json.dumps({"module": module, "env": environment}, separators=(",", ":"))


def parse_target(value: str) -> tuple[str, str]:
    """(module, environment) from :func:`target_value`'s JSON; blanks for anything else."""
    try:
        data = json.loads(value)
    except (json.JSONDecodeError, TypeError):
        return "", ""
    if not isinstance(data, dict):
        return "", ""
    return str(data.get("module") or ""), str(data.get("env") or "")


def slack_date(moment: datetime) -> str:
    """A date Slack shows in the reader's time zone (the fallback text is UTC)."""
    return f"<!date^{int(moment.timestamp())}^{{date_short_pretty}} at {{time}}|{moment:%Y-%m-%d %H:%M} UTC>"


def _modal(
    kind: str, blocks: list[Block], ctx: ModalContext, *, submit: str | None = None, title: str = TITLE
) -> dict[str, Any]:
    return modal(
        title,
        blocks,
        callback_id=callback_id(kind),
        private_metadata=ctx.to_json(),
        submit=submit,
        close="Cancel" if submit else "Close",
    )


def loading_view(
    text: str = "Loading…", ctx: ModalContext | None = None, *, title: str = TITLE
) -> dict[str, Any]:
    """The cheap view opened at once (a trigger lives 3 s) or shown while work runs; ``text`` is mrkdwn."""
    return _modal(
        "loading", [section(f":hourglass_flowing_sand: {text}")], ctx or ModalContext(), title=title
    )


def notice_view(text: str, *, ok: bool | None = None, title: str = TITLE) -> dict[str, Any]:
    """A last word (mrkdwn): done, refused, gone."""
    icon = {True: ":white_check_mark: ", False: ":warning: ", None: ""}[ok]
    return _modal("notice", [section(icon + text)], ModalContext(), title=title)


def picker_view(choices: Sequence[AssociationSummary]) -> dict[str, Any]:
    """Which integration and environment, when `/ib connections` named none."""
    if not choices:
        return notice_view("There is no integration in this workspace yet. Create one with `/ib new`.")
    options = [
        option(
            f"{choice.module_name} · {choice.environment}",
            target_value(choice.module_name, choice.environment),
            f"uses {choice.connection}" if choice.connection else "no connection yet",
        )
        for choice in choices[:STATIC_OPTIONS_MAX]
    ]
    blocks = [
        section("Which integration, in which environment?"),
        actions(
            "pick",
            {
                "type": "static_select",
                "action_id": PICK_ACTION,
                "placeholder": plain("Integration · environment"),
                "options": options,
            },
        ),
    ]
    if len(choices) > STATIC_OPTIONS_MAX:
        blocks.append(
            context(
                f"The first {STATIC_OPTIONS_MAX} of {len(choices)}. `/ib connections <integration> <env>` "
                "opens any of them."
            )
        )
    return _modal("pick", blocks, ModalContext())


def _test_state(connection: ConnectionSummary) -> str:
    if connection.last_test_ok is None:
        return "not tested"
    return "test passed" if connection.last_test_ok else "last test failed"


def _connection_option(connection: ConnectionSummary) -> dict[str, Any]:
    used = f" · used by {', '.join(connection.used_by)}" if connection.used_by else ""
    return option(connection.name, connection.name, f"{_test_state(connection)}{used}")


def connection_select(connections: Sequence[ConnectionSummary], current: str | None) -> dict[str, Any]:
    """A static select of the connections, or a searched one when there are more than Slack lists."""
    options = [_connection_option(connection) for connection in connections]
    initial = next((o for o in options if o["value"] == current), None)
    element: dict[str, Any] = {
        "type": "static_select",
        "action_id": CONNECTION_BLOCK,
        "placeholder": plain("Choose a connection"),
    }
    if len(options) > STATIC_OPTIONS_MAX:
        element.update(type="external_select", min_query_length=0)
    else:
        element["options"] = options
    if initial is not None:
        element["initial_option"] = initial
    return element


def connection_options(connections: Sequence[ConnectionSummary], query: str) -> list[dict[str, Any]]:
    """What the searched select offers for ``query``: names containing it, at most 100."""
    wanted = query.strip().lower()
    found = [c for c in connections if wanted in c.name.lower()]
    return [_connection_option(connection) for connection in found[:STATIC_OPTIONS_MAX]]


def integration_view(screen: IntegrationScreen, status: Status | None = None) -> dict[str, Any]:
    """The modal's main view: which connection the integration uses in one environment, and what
    the user may do about it (everything with connection_admin there; else ask an administrator)."""
    association = screen.association
    env = association.environment
    ctx = ModalContext(module=association.module_name, environment=env, provider=association.provider)
    blocks: list[Block] = [
        section(
            f"*{escape(association.application_name)}* (`{association.module_name}`), "
            f"a {escape(screen.provider_title)} integration."
        )
    ]
    if len(screen.environments) > 1:
        env_options = [option(name, name) for name in screen.environments[:STATIC_OPTIONS_MAX]]
        blocks.append(
            actions(
                "environment",
                {
                    "type": "static_select",
                    "action_id": ENV_ACTION,
                    "options": env_options,
                    "initial_option": next(o for o in env_options if o["value"] == env),
                },
            )
        )
    current = next((c for c in screen.connections if c.name == association.connection), None)
    if association.connection:
        state = f" ({_test_state(current)})" if current is not None else ""
        blocks.append(
            section(f"In *{env}* it uses the connection `{escape(association.connection)}`{state}.")
        )
    else:
        blocks.append(
            section(
                f":warning: No connection in *{env}* yet: apps there get an error until one is associated."
            )
        )
    if status is not None:
        blocks.append(status.block())
    ask = button("Ask an administrator", ASK_ACTION)
    submit = None
    if screen.can_manage:
        if screen.connections:
            blocks.append(
                input_block(
                    CONNECTION_BLOCK,
                    f"{screen.provider_title} connections in {env}",
                    connection_select(screen.connections, association.connection),
                    hint=f"Associate: {association.module_name} uses this connection in {env}.",
                )
            )
            blocks.append(
                actions(
                    "manage",
                    button("New connection", NEW_ACTION),
                    button("Edit", EDIT_ACTION),
                    button("Test", RETEST_ACTION),
                    _delete_button(),
                    ask,
                )
            )
            submit = "Associate"
        else:
            blocks.append(section(f"There is no {escape(screen.provider_title)} connection in *{env}* yet."))
            blocks.append(actions("manage", button("New connection", NEW_ACTION, style="primary"), ask))
    else:
        blocks.append(
            section(
                f"Creating or changing connections in *{env}* needs the connection_admin role there. "
                f"If you do not have the credentials either, ask the administrator of the "
                f"{escape(screen.provider_title)} system: they get a DM with what to set up and a button "
                "only they can use to enter the details."
            )
        )
        if screen.connections:
            names = ", ".join(f"`{escape(c.name)}`" for c in screen.connections)
            blocks.append(context(f"Connections in {env}: {names}"))
        blocks.append(actions("manage", button("Ask an administrator", ASK_ACTION, style="primary")))
    return _modal("screen", blocks, ctx, submit=submit)


def _delete_button() -> dict[str, Any]:
    element = button("Delete", DELETE_ACTION, style="danger")
    element["confirm"] = {
        "title": plain("Delete the connection?", 100),
        "text": plain("The chosen connection and its stored credentials are deleted.", 300),
        "confirm": plain("Delete", 30),
        "deny": plain("Keep it", 30),
        "style": "danger",
    }
    return element


def field_block_id(name: str) -> str:
    return FIELD_BLOCK_PREFIX + name


def _field_element(connection_field: ConnectionField, value: str) -> dict[str, Any]:
    if connection_field.kind == "choice":
        options = [option(label, key) for key, label in connection_field.choices]
        element: dict[str, Any] = {
            "type": "static_select",
            "action_id": connection_field.name,
            "options": options,
        }
        initial = next((o for o in options if o["value"] == (value or connection_field.default)), None)
        if initial is not None:
            element["initial_option"] = initial
        return element
    multiline = connection_field.kind == "multiline"
    if connection_field.secret:
        # Never an initial_value: a stored secret is not sent back to Slack.
        return text_input(connection_field.name, multiline=multiline)
    if connection_field.kind == "url":
        element = {"type": "url_text_input", "action_id": connection_field.name}
        if value or connection_field.default:
            element["initial_value"] = value or connection_field.default
        return element
    return text_input(connection_field.name, initial=value or connection_field.default, multiline=multiline)


def _field_blocks(
    fields: Sequence[ConnectionField],
    values: Mapping[str, str],
    *,
    stored_secrets: Sequence[str] = (),
    generated: bool = False,
    status: Status | None = None,
) -> list[Block]:
    """One input per field. ``stored_secrets``: secret fields an edit may leave blank;
    ``generated``: the certificate fields the service fills for an admin request."""
    blocks = []
    for connection_field in fields:
        hints = []
        if status is not None and status.field == connection_field.name:
            hints.append(f"⚠ {status.text}")
        optional = not connection_field.required
        if connection_field.secret:
            hints.append(SECRET_HINT)
            if connection_field.name in stored_secrets:
                hints.append("Leave it blank to keep the stored value.")
                optional = True
        if generated and connection_field.name in (CERTIFICATE_FIELD, PRIVATE_KEY_FIELD):
            hints.append("Leave it blank to use the certificate generated for this request.")
            optional = True
        if connection_field.hint:
            hints.append(connection_field.hint)
        blocks.append(
            input_block(
                field_block_id(connection_field.name),
                connection_field.label,
                _field_element(connection_field, values.get(connection_field.name, "")),
                optional=optional,
                hint=" ".join(hints),
            )
        )
    return blocks


def _name_block(name: str, environment: str) -> Block:
    return input_block(
        NAME_BLOCK,
        "Connection name",
        text_input(NAME_BLOCK, initial=name, max_length=NAME_MAX),
        hint=f"Unique in {environment}: letters, digits, spaces, '.', '_' or '-'. "
        "Other integrations of the same system can use it too.",
    )


def form_view(
    ctx: ModalContext,
    fields: Sequence[ConnectionField],
    *,
    provider_title: str,
    values: Mapping[str, str],
    name: str,
    status: Status | None = None,
) -> dict[str, Any]:
    """New connection (``ctx.connection`` blank) or edit of ``ctx.connection``; ``values`` are the
    non-secret values to show (what is stored, or what was typed)."""
    env = ctx.environment
    if ctx.connection:
        intro = (
            f"Edit the {escape(provider_title)} connection `{escape(ctx.connection)}` in *{env}*. "
            "It is tested before it is saved."
        )
    else:
        purpose = f" for `{ctx.module}`" if ctx.module else ""
        intro = (
            f"New {escape(provider_title)} connection in *{env}*{purpose}. It is tested before it is saved."
        )
    blocks: list[Block] = [section(intro)]
    if status is not None:
        blocks.append(status.block())
    if not ctx.connection:
        blocks.append(_name_block(name, env))
    blocks += _field_blocks(fields, values, stored_secrets=ctx.secrets_set, status=status)
    blocks.append(
        actions("form_actions", button("Test connection", TEST_ACTION), button("Back", BACK_ACTION))
    )
    submit = "Save and associate" if ctx.module else "Save"
    return _modal("form", blocks, ctx, submit=submit)


def ask_view(
    ctx: ModalContext,
    provider_title: str,
    *,
    admin: str = "",
    note: str = "",
    kept_for_days: int = 7,
    status: Status | None = None,
) -> dict[str, Any]:
    """Ask an administrator of the external system for the connection of ``ctx.module``."""
    blocks: list[Block] = [
        section(
            f"Ask the administrator of the {escape(provider_title)} system for the connection of "
            f"`{ctx.module}` in *{ctx.environment}*. They get a DM with what to set up there and a "
            "*Provide connection details* button only they can use; you get a DM when it is done. "
            f"The request expires after {kept_for_days} days."
        )
    ]
    if status is not None:
        blocks.append(status.block())
    users_select: dict[str, Any] = {"type": "users_select", "action_id": ADMIN_BLOCK}
    if admin:
        users_select["initial_user"] = admin
    blocks.append(input_block(ADMIN_BLOCK, "Administrator", users_select))
    blocks.append(
        input_block(
            NOTE_BLOCK,
            "Note",
            text_input(NOTE_BLOCK, initial=note, multiline=True, max_length=NOTE_MAX),
            optional=True,
            hint="Shown to the administrator with the request. Never put a password here.",
        )
    )
    blocks.append(actions("ask_actions", button("Back", BACK_ACTION)))
    return _modal("ask", blocks, ctx, submit="Send request")


def _asks(request: AdminRequestSummary, *, you: str) -> str:
    return (
        f"<@{request.requester}> asks {you} for the connection of *{escape(request.application_name)}* "
        f"(`{request.module_name}`) in *{request.environment}* to {escape(request.provider_title)}."
    )


def _note(request: AdminRequestSummary) -> list[Block]:
    if not request.note:
        return []
    quoted = "\n".join(f">{line}" for line in escape(request.note).splitlines())
    return [section(f"Note from <@{request.requester}>:\n{quoted}")]


def admin_form_view(
    ctx: ModalContext,
    request: AdminRequestSummary,
    fields: Sequence[ConnectionField],
    *,
    values: Mapping[str, str],
    name: str,
    status: Status | None = None,
) -> dict[str, Any]:
    """The addressed administrator's form: tested on submit, then saved and associated."""
    blocks: list[Block] = [section(_asks(request, you="you")), *_note(request)]
    blocks.append(
        context(
            "Slack shows what you type in these fields. The connection is tested before it is saved; "
            "secret values are stored encrypted and never shown again."
        )
    )
    if status is not None:
        blocks.insert(1, status.block())
    blocks.append(_name_block(name, request.environment))
    blocks += _field_blocks(fields, values, generated=bool(request.instructions.files), status=status)
    return _modal("admin", blocks, ctx, submit="Save and connect", title=ADMIN_TITLE)


def with_status(shown: Mapping[str, Any], status: Status) -> dict[str, Any]:
    """The view the user submitted, as it was, with ``status`` as its status line: answered in the
    ack while the slow work runs, it keeps every block and action id, so Slack's client keeps what
    was typed (secrets included) without the service holding it."""
    blocks = [dict(block) for block in shown.get("blocks", []) if block.get("block_id") != STATUS_BLOCK]
    blocks.insert(1 if blocks else 0, status.block())
    view: dict[str, Any] = {
        key: shown[key]
        for key in ("type", "callback_id", "title", "submit", "close", "private_metadata")
        if shown.get(key) is not None
    }
    view["blocks"] = blocks[:MAX_BLOCKS]
    return view


# Messages (DMs)


def _text_sections(text: str) -> list[Block]:
    """mrkdwn ``text`` in sections of at most Slack's 3000 characters, cut at line ends."""
    chunks: list[str] = []
    current = ""
    for line in text.splitlines():
        while len(line) > SECTION_TEXT_MAX:
            if current:
                chunks.append(current)
                current = ""
            chunks.append(line[:SECTION_TEXT_MAX])
            line = line[SECTION_TEXT_MAX:]
        candidate = f"{current}\n{line}" if current else line
        if len(candidate) > SECTION_TEXT_MAX:
            chunks.append(current)
            current = line
        else:
            current = candidate
    if current:
        chunks.append(current)
    return [section(chunk) for chunk in chunks[:_MESSAGE_TEXT_BLOCKS]]


def admin_request_message(request: AdminRequestSummary) -> tuple[str, list[Block]]:
    """The administrator's DM: who asks for what, what to set up, and the only button that opens
    the form (for them alone)."""
    blocks: list[Block] = [section(":key: " + _asks(request, you="you")), *_note(request)]
    blocks += _text_sections(request.instructions.text)
    if request.instructions.files:
        names = ", ".join(f"`{escape(name)}`" for name, _ in request.instructions.files)
        blocks.append(context(f"Attached below: {names}. The private key never leaves Integration Builder."))
    blocks.append(
        context(f"Only you can provide the details. This request expires {slack_date(request.expires_at)}.")
    )
    blocks.append(
        actions(
            "admin_request",
            button("Provide connection details", ADMIN_OPEN_ACTION, request.id, style="primary"),
        )
    )
    return f"<@{request.requester}> asks you for the connection of {request.module_name}", blocks


def admin_request_done_message(request: AdminRequestSummary, connection: str) -> tuple[str, list[Block]]:
    text = (
        f":white_check_mark: You provided the connection `{escape(connection)}` for "
        f"*{escape(request.application_name)}* (`{request.module_name}`) in *{request.environment}*. "
        f"<@{request.requester}> has been told."
    )
    return f"You provided the connection of {request.module_name} in {request.environment}", [section(text)]


def admin_request_cancelled_message(request: AdminRequestSummary) -> tuple[str, list[Block]]:
    text = (
        f"<@{request.requester}> cancelled the request for the connection of `{request.module_name}` in "
        f"*{request.environment}*: there is nothing to do, and its button no longer works."
    )
    return f"Request for {request.module_name} in {request.environment} cancelled", [section(text)]


def requester_message(request: AdminRequestSummary) -> tuple[str, list[Block]]:
    """The requester's DM, with the Cancel button."""
    cancel = button("Cancel request", CANCEL_REQUEST_ACTION, request.id, style="danger")
    cancel["confirm"] = {
        "title": plain("Cancel the request?", 100),
        "text": plain("The administrator's button stops working.", 300),
        "confirm": plain("Cancel request", 30),
        "deny": plain("Keep it", 30),
    }
    blocks = [
        section(
            f"You asked <@{request.admin}> for the connection of *{escape(request.application_name)}* "
            f"(`{request.module_name}`) in *{request.environment}*. I will tell you here when it is set up."
        ),
        context(f"The request expires {slack_date(request.expires_at)}."),
        actions("admin_request", cancel),
    ]
    return f"You asked <@{request.admin}> for the connection of {request.module_name}", blocks


def requester_cancelled_message(request: AdminRequestSummary) -> tuple[str, list[Block]]:
    text = (
        f"You cancelled your request to <@{request.admin}> for the connection of `{request.module_name}` "
        f"in *{request.environment}*."
    )
    return text, [section(text)]


def requester_expired_message(request: AdminRequestSummary) -> tuple[str, list[Block]]:
    """What the requester hears when the administrator did not answer in time."""
    text = (
        f"Your request to <@{request.admin}> for the connection of *{escape(request.application_name)}* "
        f"(`{request.module_name}`) in *{request.environment}* expired {slack_date(request.expires_at)} "
        f"without an answer; its button no longer works. To ask again: "
        f"`/ib connections {request.module_name} {request.environment}`."
    )
    return f"Your request for the connection of {request.module_name} in {request.environment} expired", [
        section(text)
    ]


def connection_ready_message(completed: CompletedRequest) -> tuple[str, list[Block]]:
    """What the requester hears once the administrator's connection passed its test and was saved."""
    request = completed.request
    text = (
        f":white_check_mark: <@{request.admin}> set up the connection `{escape(completed.connection.name)}` "
        f"for *{escape(request.application_name)}* (`{request.module_name}`) in *{request.environment}*. "
        f"The connection test passed and `{request.module_name}` uses it there now."
    )
    return f"The connection of {request.module_name} in {request.environment} is ready", [section(text)]
