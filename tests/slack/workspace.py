"""The fake Slack workspace: Slack's server-side state and rules, without HTTP.

The Web API (fake_api.py) and the simulated Slack client (driver.py) act on the same workspace, so
the modal an app opened with `views.open` is the one the driver's user types into and submits, and
a DM the app posted is the one whose button the user clicks.
"""

from __future__ import annotations

import itertools
import secrets
import time
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from tests.slack.blockkit import (
    MAX_MESSAGE_TEXT,
    Json,
    errors_answer_problems,
    fill_missing_ids,
    is_view_too_large,
    iter_elements,
    message_block_problems,
    view_problems,
)

TRIGGER_LIFETIME = 3.0
MAX_VIEW_STACK = 3
RESPONSE_URL_USES = 5
RESPONSE_URL_LIFETIME = 30 * 60.0
MAX_USER_FILE_BYTES = 10 * 1024 * 1024


class Refusal(Exception):
    """Slack's `{"ok": false, "error": ...}`, with `response_metadata.messages` where Slack gives them."""

    def __init__(self, error: str, messages: Sequence[str] = ()) -> None:
        super().__init__(": ".join([error, *messages]))
        self.error = error
        self.messages = tuple(messages)


@dataclass(frozen=True)
class SlackUser:
    id: str
    name: str
    real_name: str
    is_admin: bool = False
    tz: str = "UTC"


DEVELOPER = SlackUser("U0DEV00001", "dana", "Dana Developer", tz="Europe/Berlin")
ADMIN = SlackUser("U0ADM00001", "adam", "Adam Admin", is_admin=True, tz="America/New_York")
BYSTANDER = SlackUser("U0BYS00001", "bea", "Bea Bystander", tz="Asia/Tokyo")
DEFAULT_USERS = (DEVELOPER, ADMIN, BYSTANDER)


@dataclass
class FakeMessage:
    """A message as the channel shows it now; `edits` holds its earlier versions, oldest first.

    An ephemeral message names the only user who sees it in `visible_to`.
    """

    channel: str
    ts: str
    text: str | None
    blocks: list[Json] | None
    attachments: list[Json] | None = None
    thread_ts: str | None = None
    files: list[str] = field(default_factory=list)
    edits: list[Json] = field(default_factory=list)
    visible_to: str | None = None

    @property
    def versions(self) -> list[Json]:
        """Every version the user saw, the current one last."""
        return [*self.edits, {"text": self.text, "blocks": self.blocks}]


@dataclass
class FakeFile:
    id: str
    filename: str
    title: str
    length: int
    owner: str
    mimetype: str = "application/octet-stream"
    content: bytes | None = None
    channels: list[str] = field(default_factory=list)
    completed: bool = False


@dataclass
class _Trigger:
    user_id: str
    issued_at: float
    used: bool = False


@dataclass
class _Channel:
    id: str
    name: str
    members: set[str]
    bot_is_member: bool


@dataclass
class _ResponseUrl:
    user_id: str
    channel_id: str
    original: FakeMessage | None
    issued_at: float
    uses_left: int = RESPONSE_URL_USES


class Workspace:
    """One Slack workspace with the app installed: users, channels, messages, modals, files."""

    team_id = "T0FAKE0001"
    team_domain = "fake-workspace"
    app_id = "A0FAKE0001"
    bot_user_id = "U0BOT00001"
    bot_id = "B0FAKE0001"

    def __init__(self, users: Iterable[SlackUser] = DEFAULT_USERS) -> None:
        self._serial = itertools.count(1)
        self.base_url = ""
        self.users: dict[str, SlackUser] = {user.id: user for user in users}
        self._channels: dict[str, _Channel] = {}
        self._dms: dict[str, str] = {}
        self._messages: dict[str, list[FakeMessage]] = {}
        self._ephemerals: dict[str, list[FakeMessage]] = {}
        self.views: dict[str, Json] = {}
        self._view_owners: dict[str, str] = {}
        self._stacks: dict[str, list[str]] = {}
        self._homes: dict[str, str] = {}
        self._external_ids: dict[str, str] = {}
        self._triggers: dict[str, _Trigger] = {}
        self._response_urls: dict[str, _ResponseUrl] = {}
        self.files: dict[str, FakeFile] = {}

    def _new_id(self, prefix: str) -> str:
        return f"{prefix}{next(self._serial):09d}"

    def _new_ts(self) -> str:
        return f"{int(time.time())}.{next(self._serial):06d}"

    # Users and channels

    def add_user(self, name: str, *, is_admin: bool = False, tz: str = "UTC") -> SlackUser:
        user = SlackUser(self._new_id("U"), name, name.title(), is_admin=is_admin, tz=tz)
        self.users[user.id] = user
        return user

    def user(self, user_id: str) -> SlackUser:
        if user_id not in self.users:
            raise Refusal("user_not_found")
        return self.users[user_id]

    def add_channel(
        self, name: str, *, members: Iterable[str] | None = None, bot_is_member: bool = True
    ) -> str:
        """A public channel; everyone in the directory is a member unless `members` says otherwise."""
        everyone = self.users if members is None else members
        channel = _Channel(self._new_id("C"), name, set(everyone), bot_is_member)
        self._channels[channel.id] = channel
        self._messages[channel.id] = []
        return channel.id

    def dm_channel(self, user_id: str) -> str:
        """The app's DM channel with a user: one stable D id per user."""
        self.user(user_id)
        if user_id not in self._dms:
            channel = _Channel(self._new_id("D"), user_id, {user_id}, bot_is_member=True)
            self._channels[channel.id] = channel
            self._messages[channel.id] = []
            self._dms[user_id] = channel.id
        return self._dms[user_id]

    def _channel(self, channel_id: str) -> _Channel:
        """A conversation by its C/D/G id; a user id is not a conversation."""
        if channel_id not in self._channels:
            raise Refusal("channel_not_found")
        return self._channels[channel_id]

    def _posting_channel(self, channel: str) -> _Channel:
        """chat.postMessage also takes a user id and posts to the app's DM with that user."""
        if channel in self.users:
            return self._channels[self.dm_channel(channel)]
        found = self._channel(channel)
        if not found.bot_is_member:
            raise Refusal("not_in_channel")
        return found

    # Messages

    def post_message(
        self,
        channel: str,
        text: str | None,
        blocks: list[Json] | None,
        *,
        attachments: list[Json] | None = None,
        thread_ts: str | None = None,
    ) -> FakeMessage:
        target = self._posting_channel(channel)
        _check_content(text, blocks, attachments)
        message = FakeMessage(
            target.id, self._new_ts(), text, self._with_ids(blocks), attachments, thread_ts=thread_ts
        )
        self._messages[target.id].append(message)
        return message

    def update_message(
        self,
        channel: str,
        ts: str,
        text: str | None,
        blocks: list[Json] | None,
        attachments: list[Json] | None = None,
    ) -> FakeMessage:
        message = self.message(channel, ts)
        self._edit(message, text, blocks, attachments)
        return message

    def _edit(
        self,
        message: FakeMessage,
        text: str | None,
        blocks: list[Json] | None,
        attachments: list[Json] | None,
    ) -> None:
        _check_content(text, blocks, attachments)
        message.edits.append({"text": message.text, "blocks": message.blocks})
        message.text, message.attachments = text, attachments
        if blocks is not None:  # Slack keeps the previous blocks unless the update sends some (or [])
            message.blocks = self._with_ids(blocks)

    def message(self, channel: str, ts: str) -> FakeMessage:
        for message in self._messages[self._channel(channel).id]:
            if message.ts == ts:
                return message
        raise Refusal("message_not_found")

    def post_ephemeral(self, channel: str, user_id: str, text: str | None, blocks: list[Json] | None) -> str:
        target = self._posting_channel(channel)
        self.user(user_id)
        if user_id not in target.members:
            raise Refusal("user_not_in_channel")
        _check_content(text, blocks, None)
        message = FakeMessage(target.id, self._new_ts(), text, self._with_ids(blocks), visible_to=user_id)
        self._ephemerals.setdefault(user_id, []).append(message)
        return message.ts

    def messages_in(self, channel_id: str) -> list[FakeMessage]:
        return list(self._messages[self._channel(channel_id).id])

    def messages_for(self, user_id: str) -> list[FakeMessage]:
        """The app's DM history with a user, oldest first, each message as it reads now."""
        return self.messages_in(self.dm_channel(user_id))

    def ephemerals_for(self, user_id: str) -> list[FakeMessage]:
        """Messages only this user saw: chat.postEphemeral, response_url answers, slash command acks."""
        return list(self._ephemerals.get(user_id, []))

    def message_object(self, message: FakeMessage) -> Json:
        """A message as the Web API and interaction payloads show it."""
        shown: Json = {
            "type": "message",
            "text": message.text or "",
            "user": self.bot_user_id,
            "bot_id": self.bot_id,
            "app_id": self.app_id,
            "team": self.team_id,
            "ts": message.ts,
        }
        if message.blocks is not None:
            shown["blocks"] = message.blocks
        if message.thread_ts:
            shown["thread_ts"] = message.thread_ts
        if message.files:
            shown["files"] = [self.file_object(self.files[file_id]) for file_id in message.files]
        return shown

    def _with_ids(self, blocks: list[Json] | None) -> list[Json] | None:
        return None if blocks is None else fill_missing_ids(blocks, self._block_id)

    def _block_id(self) -> str:
        return secrets.token_urlsafe(4)

    # Response URLs (slash commands and message actions)

    def new_response_url(self, user_id: str, channel_id: str, original: FakeMessage | None = None) -> str:
        """A response_url for an interaction by `user_id`, from the `original` message if it came from one."""
        key = secrets.token_urlsafe(12)
        self._response_urls[key] = _ResponseUrl(user_id, channel_id, original, time.monotonic())
        return key

    def respond(self, key: str, body: Mapping[str, Any]) -> None:
        """What Slack does with a POST to a response_url."""
        response_url = self._response_urls.get(key)
        if response_url is None or time.monotonic() - response_url.issued_at > RESPONSE_URL_LIFETIME:
            raise Refusal("expired_url")
        if response_url.uses_left == 0:
            raise Refusal("used_url")
        response_url.uses_left -= 1
        text, blocks, original = body.get("text"), body.get("blocks"), response_url.original
        if original is not None and (body.get("delete_original") or body.get("replace_original")):
            shown_in = (
                self._ephemerals[original.visible_to]
                if original.visible_to
                else self._messages[original.channel]
            )
            if original not in shown_in:
                raise Refusal("message_not_found")
            if body.get("delete_original"):
                shown_in.remove(original)
            else:
                self._edit(original, text, blocks, body.get("attachments"))
        elif body.get("response_type") == "in_channel":
            self.post_message(response_url.channel_id, text, blocks, thread_ts=body.get("thread_ts"))
        else:
            self.post_ephemeral(response_url.channel_id, response_url.user_id, text, blocks)

    # Modals and App Home

    def issue_trigger(self, user_id: str, *, age: float = 0.0) -> str:
        """A trigger_id as Slack hands one out with a user's interaction; `age` backdates it."""
        self.user(user_id)
        trigger_id = f"{next(self._serial)}.{secrets.token_hex(8)}"
        self._triggers[trigger_id] = _Trigger(user_id, time.monotonic() - age)
        return trigger_id

    def _exchange(self, trigger_id: str | None) -> _Trigger:
        trigger = self._triggers.get(trigger_id or "")
        if trigger is None:
            raise Refusal("invalid_trigger_id")
        if trigger.used:
            raise Refusal("exchanged_trigger_id")
        if time.monotonic() - trigger.issued_at > TRIGGER_LIFETIME:
            raise Refusal("expired_trigger_id")
        trigger.used = True
        return trigger

    def open_view(self, trigger_id: str | None, view: Any) -> Json:
        _check_view(view, "modal")
        self._check_external_id(view, None)
        trigger = self._exchange(trigger_id)
        self.close_all(trigger.user_id)
        view_id = self._new_id("V")
        self._stacks[trigger.user_id] = [view_id]
        return self._store(view_id, view, trigger.user_id, root_view_id=view_id, previous_view_id=None)

    def push_view(self, trigger_id: str | None, view: Any) -> Json:
        _check_view(view, "modal")
        self._check_external_id(view, None)
        trigger = self._exchange(trigger_id)
        return self._push(trigger.user_id, view)

    def _push(self, user_id: str, view: Mapping[str, Any]) -> Json:
        stack = self._stacks.setdefault(user_id, [])
        if len(stack) >= MAX_VIEW_STACK:
            raise Refusal("push_limit_reached")
        view_id = self._new_id("V")
        previous = stack[-1] if stack else None
        stack.append(view_id)
        return self._store(view_id, view, user_id, root_view_id=stack[0], previous_view_id=previous)

    def update_view(
        self,
        view: Any,
        *,
        view_id: str | None = None,
        external_id: str | None = None,
        hash: str | None = None,
    ) -> Json:
        if not view_id and not external_id:
            problem = "[ERROR] must provide view_id or external_id [json-pointer:/]"
            raise Refusal("invalid_arguments", [problem])
        target = view_id or self._external_ids.get(external_id or "", "")
        if target not in self.views:
            raise Refusal("not_found")
        _check_view(view, self.views[target]["type"])
        self._check_external_id(view, target)
        if hash is not None and hash != self.views[target]["hash"]:
            raise Refusal("hash_conflict")
        return self._replace(target, view)

    def publish_home(self, user_id: str, view: Any, hash: str | None = None) -> Json:
        self.user(user_id)
        _check_view(view, "home")
        current = self._homes.get(user_id)
        if current is None:
            current = self._homes[user_id] = self._new_id("V")
            return self._store(current, view, user_id, root_view_id=None, previous_view_id=None)
        if hash is not None and hash != self.views[current]["hash"]:
            raise Refusal("hash_conflict")
        return self._replace(current, view)

    def view_stack(self, user_id: str) -> list[Json]:
        return [self.views[view_id] for view_id in self._stacks.get(user_id, [])]

    def top_view(self, user_id: str) -> Json | None:
        stack = self._stacks.get(user_id)
        return self.views[stack[-1]] if stack else None

    def home_view(self, user_id: str) -> Json | None:
        view_id = self._homes.get(user_id)
        return self.views[view_id] if view_id else None

    def view(self, view_id: str) -> Json:
        if view_id not in self.views:
            raise Refusal("not_found")
        return self.views[view_id]

    def view_owner(self, view_id: str) -> str:
        return self._view_owners[view_id]

    def type_into(self, view_id: str, values: Mapping[str, Mapping[str, Json]]) -> None:
        """Keep what the user typed or picked, as the Slack client does until the view changes ids."""
        state = self.view(view_id)["state"]["values"]
        for block_id, entries in values.items():
            state.setdefault(block_id, {}).update(entries)

    def answer_submission(self, view_id: str, answer: Any) -> None:
        """What the Slack client does with the app's answer (JSON) to a view_submission of `view_id`."""
        user_id = self.view_owner(view_id)
        if answer is not None and not isinstance(answer, Mapping):
            raise Refusal("invalid_response_action", ["the answer must be a JSON object"])
        action = answer.get("response_action") if answer else None
        if answer is None or action is None:
            self.close_view(view_id)
        elif action == "errors":
            problems = errors_answer_problems(self.views[view_id], answer.get("errors"))
            if problems:
                raise Refusal("invalid_response_action", problems)
        elif action == "update":
            _check_view(answer.get("view"), "modal")
            self._replace(view_id, answer["view"])
        elif action == "push":
            _check_view(answer.get("view"), "modal")
            self._push(user_id, answer["view"])
        elif action == "clear":
            self.close_all(user_id)
        else:
            raise Refusal("invalid_response_action", [f"unknown response_action {action!r}"])

    def close_view(self, view_id: str) -> None:
        """Close a modal view: the view under it shows again; with clear_on_close, the whole modal goes."""
        user_id = self.view_owner(view_id)
        if self.views[view_id].get("clear_on_close"):
            self.close_all(user_id)
            return
        self._stacks[user_id].remove(view_id)
        self._forget(view_id)

    def close_all(self, user_id: str) -> None:
        for view_id in self._stacks.pop(user_id, []):
            self._forget(view_id)

    def _forget(self, view_id: str) -> None:
        view = self.views.pop(view_id)
        self._view_owners.pop(view_id)
        self._external_ids.pop(view.get("external_id") or "", None)

    def _check_external_id(self, view: Mapping[str, Any], view_id: str | None) -> None:
        external_id = view.get("external_id")
        if external_id and self._external_ids.get(external_id, view_id) != view_id:
            raise Refusal("duplicate_external_id")

    def _replace(self, view_id: str, view: Mapping[str, Any]) -> Json:
        current = self.views[view_id]
        self._external_ids.pop(current.get("external_id") or "", None)
        return self._store(
            view_id,
            view,
            self.view_owner(view_id),
            root_view_id=current["root_view_id"],
            previous_view_id=current["previous_view_id"],
            typed=current["state"]["values"],
        )

    def _store(
        self,
        view_id: str,
        view: Mapping[str, Any],
        user_id: str,
        *,
        root_view_id: str | None,
        previous_view_id: str | None,
        typed: Mapping[str, Mapping[str, Json]] | None = None,
    ) -> Json:
        """Keep a view as Slack returns it, with a fresh hash on every change."""
        blocks = fill_missing_ids(view.get("blocks", []), self._block_id)
        stored: Json = {
            "id": view_id,
            "team_id": self.team_id,
            "type": view["type"],
            "blocks": blocks,
            "private_metadata": view.get("private_metadata", ""),
            "callback_id": view.get("callback_id", ""),
            "state": {"values": _kept_state(typed or {}, blocks)},
            "hash": f"{int(time.time())}.{secrets.token_hex(4)}",
            "title": view.get("title"),
            "submit": view.get("submit"),
            "close": view.get("close"),
            "clear_on_close": bool(view.get("clear_on_close", False)),
            "notify_on_close": bool(view.get("notify_on_close", False)),
            "previous_view_id": previous_view_id,
            "root_view_id": root_view_id,
            "app_id": self.app_id,
            "external_id": view.get("external_id", ""),
            "app_installed_team_id": self.team_id,
            "bot_id": self.bot_id,
        }
        self.views[view_id] = stored
        self._view_owners[view_id] = user_id
        if stored["external_id"]:
            self._external_ids[stored["external_id"]] = view_id
        return stored

    # Files

    def reserve_upload(self, filename: str, length: int) -> FakeFile:
        if not filename:
            raise Refusal("invalid_arguments", ["[ERROR] must provide filename [json-pointer:/filename]"])
        if length < 1:
            raise Refusal("invalid_arguments", ["[ERROR] length must be positive [json-pointer:/length]"])
        upload = FakeFile(self._new_id("F"), filename, filename, length, owner=self.bot_user_id)
        self.files[upload.id] = upload
        return upload

    def complete_upload(
        self,
        files: Sequence[Mapping[str, Any]],
        channel_id: str | None,
        initial_comment: str | None = None,
        thread_ts: str | None = None,
    ) -> list[FakeFile]:
        channel = None
        if channel_id:
            if not channel_id.startswith(("C", "G", "D")):
                raise Refusal("invalid_channel")
            channel = self._channel(channel_id)
        completed = [self._uploaded(entry) for entry in files]
        if not completed:
            raise Refusal("invalid_arguments", ["[ERROR] must provide at least 1 file [json-pointer:/files]"])
        for upload in completed:
            upload.completed = True
        if channel is not None:
            message = FakeMessage(
                channel.id,
                self._new_ts(),
                initial_comment,
                None,
                thread_ts=thread_ts,
                files=[upload.id for upload in completed],
            )
            self._messages[channel.id].append(message)
            for upload in completed:
                upload.channels.append(channel.id)
        return completed

    def _uploaded(self, entry: Mapping[str, Any]) -> FakeFile:
        upload = self.files.get(str(entry.get("id")))
        if upload is None or upload.completed:
            raise Refusal("file_not_found", [f"[ERROR] no pending upload {entry.get('id')!r}"])
        if upload.content is None:
            raise Refusal("file_not_found", [f"[ERROR] the bytes of {upload.id} were never uploaded"])
        if len(upload.content) != upload.length:
            raise Refusal(
                "file_not_found",
                [f"[ERROR] {len(upload.content)} bytes uploaded for {upload.id}, {upload.length} declared"],
            )
        upload.title = str(entry.get("title") or upload.filename)
        return upload

    def add_user_file(self, user_id: str, filename: str, content: bytes, mimetype: str) -> Json:
        """A file the user picked in a file_input; answers the file object the view_submission carries."""
        self.user(user_id)
        if len(content) > MAX_USER_FILE_BYTES:
            raise ValueError(f"{filename}: Slack refuses files over 10 MB in a file_input")
        upload = FakeFile(
            self._new_id("F"),
            filename,
            filename,
            len(content),
            owner=user_id,
            mimetype=mimetype,
            content=content,
            completed=True,
        )
        self.files[upload.id] = upload
        return self.file_object(upload)

    def file_object(self, upload: FakeFile) -> Json:
        url = f"{self.base_url}/files-pri/{self.team_id}-{upload.id}/{upload.filename}"
        return {
            "id": upload.id,
            "name": upload.filename,
            "title": upload.title,
            "mimetype": upload.mimetype,
            "filetype": upload.filename.rsplit(".", 1)[-1] if "." in upload.filename else "binary",
            "size": upload.length,
            "user": upload.owner,
            "url_private": url,
            "url_private_download": f"{url}?download=1",
            "channels": list(upload.channels),
        }


def _check_content(text: str | None, blocks: list[Json] | None, attachments: list[Json] | None) -> None:
    """What chat.postMessage / chat.update refuse as the content of a message."""
    if not text and not blocks and not attachments:
        raise Refusal("no_text")
    if text and len(text) > MAX_MESSAGE_TEXT:
        raise Refusal("msg_too_long")
    if blocks is not None:
        problems = message_block_problems(blocks)
        if problems:
            raise Refusal("invalid_blocks", problems)


def _check_view(view: Any, surface: str) -> None:
    if isinstance(view, Mapping) and is_view_too_large(view):
        raise Refusal("view_too_large")
    problems = view_problems(view, surface=surface)
    if problems:
        raise Refusal("invalid_arguments", problems)


def _kept_state(typed: Mapping[str, Mapping[str, Json]], blocks: list[Json]) -> dict[str, dict[str, Json]]:
    """Typed values survive an update only where the block_id, action_id and element type stay."""
    kept: dict[str, dict[str, Json]] = {}
    for ref in iter_elements(blocks):
        entry = typed.get(ref.block_id, {}).get(ref.action_id)
        if entry is not None and entry.get("type") == ref.type:
            kept.setdefault(ref.block_id, {})[ref.action_id] = entry
    return kept
