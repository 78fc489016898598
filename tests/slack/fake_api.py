"""A strict fake of Slack's Web API: an aiohttp server on 127.0.0.1 in front of a Workspace.

Point slack_sdk at it with `AsyncWebClient(token=fake.bot_token, base_url=fake.api_url)`. It answers
in Slack's shapes (`{"ok": true, ...}` / `{"ok": false, "error": ...}` with HTTP 200, 429 with
Retry-After), refuses what Slack refuses, records every call, and answers `method_not_supported`
for any method it does not implement, so a missing method fails a test instead of passing silently.
"""

from __future__ import annotations

import io
import json
import math
import secrets
import time
import zipfile
from collections import Counter, deque
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from types import TracebackType
from typing import Any
from zoneinfo import ZoneInfo

from aiohttp import web

from tests.slack.blockkit import Json
from tests.slack.workspace import FakeFile, FakeMessage, Refusal, SlackUser, Workspace

# Slack's per-minute tiers for the methods the app uses (Tier 3: 50+, Tier 4: 100+); chat.postMessage
# is limited per channel instead, at about one message a second.
_PER_MINUTE = {
    "chat.update": 50,
    "conversations.open": 50,
    "users.info": 100,
    "chat.postEphemeral": 100,
    "views.open": 100,
    "views.push": 100,
    "views.update": 100,
    "views.publish": 100,
    "files.getUploadURLExternal": 100,
    "files.completeUploadExternal": 100,
    "files.info": 100,
}
_POSTS_PER_CHANNEL_MINUTE = 60
_JSON_ARGS = ("view", "blocks", "attachments", "files")
_LOGIN_PAGE = "<!DOCTYPE html><html><body>Sign in to Fake Workspace</body></html>"


class _Unsupported(Exception):
    """A call the fake cannot answer faithfully; it fails the test rather than guess."""


@dataclass(frozen=True)
class RecordedCall:
    method: str
    args: Json
    answer: Json
    status: int

    @property
    def ok(self) -> bool:
        return bool(self.answer.get("ok"))


class FakeSlack:
    """Slack's Web API for one workspace, plus what tests need to look at and steer it."""

    def __init__(self, workspace: Workspace | None = None, *, limits_of_workspaces: int = 1) -> None:
        """``limits_of_workspaces``: the per-minute limits of that many workspaces, for a load
        bench whose users stand for those of a multi-workspace install (each workspace gets
        Slack's limits); tests keep the default."""
        self.workspace = workspace or Workspace()
        self.limits_of_workspaces = limits_of_workspaces
        self.bot_token = f"xoxb-fake-{secrets.token_hex(12)}"
        self.base_url = ""
        self.unsupported_calls: list[str] = []
        self._calls: list[RecordedCall] = []
        self._sent: list[tuple[str, Any]] = []
        self._call_counts: Counter[str] = Counter()
        self._injected: dict[str, tuple[int, int]] = {}
        self._windows: dict[str, deque[float]] = {}
        self._runner: web.AppRunner | None = None
        self._methods: dict[str, Callable[[Json], Json]] = {
            "auth.test": self._auth_test,
            "users.info": self._users_info,
            "conversations.open": self._conversations_open,
            "chat.postMessage": self._chat_post_message,
            "chat.update": self._chat_update,
            "chat.postEphemeral": self._chat_post_ephemeral,
            "views.open": self._views_open,
            "views.push": self._views_push,
            "views.update": self._views_update,
            "views.publish": self._views_publish,
            "files.getUploadURLExternal": self._files_get_upload_url,
            "files.completeUploadExternal": self._files_complete_upload,
            "files.info": self._files_info,
        }

    # Lifecycle

    async def start(self) -> None:
        app = web.Application(client_max_size=64 * 1024 * 1024)
        app.router.add_route("*", "/api/{method}", self._handle_api)
        app.router.add_post("/upload/{file_id}", self._handle_upload)
        app.router.add_post("/response/{key}", self._handle_response_url)
        app.router.add_get("/files-pri/{ref}/{name}", self._handle_download)
        self._runner = web.AppRunner(app, access_log=None)
        await self._runner.setup()
        await web.TCPSite(self._runner, "127.0.0.1", 0).start()
        port = self._runner.addresses[0][1]
        self.base_url = f"http://127.0.0.1:{port}"
        self.workspace.base_url = self.base_url

    async def stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None

    async def __aenter__(self) -> FakeSlack:
        await self.start()
        return self

    async def __aexit__(
        self, kind: type[BaseException] | None, error: BaseException | None, trace: TracebackType | None
    ) -> None:
        await self.stop()

    @property
    def api_url(self) -> str:
        """The base_url for slack_sdk clients (and IB_SLACK_API_URL); the trailing slash matters."""
        return f"{self.base_url}/api/"

    # Steering

    def rate_limit(self, method: str, *, times: int = 1, retry_after: int = 1) -> None:
        """Answer the next `times` calls of `method` with HTTP 429 and `Retry-After: retry_after`."""
        self._injected[method] = (times, retry_after)

    def response_url(self, user_id: str, channel_id: str, original: FakeMessage | None = None) -> str:
        return f"{self.base_url}/response/{self.workspace.new_response_url(user_id, channel_id, original)}"

    def record_sent(self, source: str, payload: Any) -> None:
        """Keep something the app sent to Slack outside the Web API (acks), for all_text_sent()."""
        self._sent.append((source, payload))

    # Looking

    def calls(self, method: str | None = None) -> list[RecordedCall]:
        return [call for call in self._calls if method is None or call.method == method]

    def call_count(self, method: str) -> int:
        """Every HTTP call of `method`, refused and rate-limited ones included."""
        return self._call_counts[method]

    @property
    def users(self) -> dict[str, SlackUser]:
        return self.workspace.users

    @property
    def views(self) -> dict[str, Json]:
        """Every open view (modal or App Home) by view_id, as Slack holds it now (hash included)."""
        return self.workspace.views

    @property
    def files(self) -> dict[str, FakeFile]:
        return self.workspace.files

    def messages_for(self, user_id: str) -> list[FakeMessage]:
        return self.workspace.messages_for(user_id)

    def ephemerals_for(self, user_id: str) -> list[FakeMessage]:
        return self.workspace.ephemerals_for(user_id)

    def current_view(self, user_id: str) -> Json | None:
        """The modal view the user looks at (top of the stack), or None."""
        return self.workspace.top_view(user_id)

    def view_stack(self, user_id: str) -> list[Json]:
        return self.workspace.view_stack(user_id)

    def home_view(self, user_id: str) -> Json | None:
        return self.workspace.home_view(user_id)

    def all_text_sent(self) -> str:
        """Everything the app ever sent to Slack, serialized: API arguments, response_url posts, acks and
        uploaded files (zip members unpacked), for scanning for leaked secrets."""
        parts = [json.dumps(call.args, ensure_ascii=False) for call in self._calls]
        parts += [json.dumps(payload, ensure_ascii=False) for _, payload in self._sent]
        for upload in self.workspace.files.values():
            if upload.owner == self.workspace.bot_user_id and upload.content is not None:
                parts.extend(_readable(upload.content))
        return "\n".join(parts)

    # HTTP

    async def _handle_api(self, request: web.Request) -> web.Response:
        method = request.match_info["method"]
        self._call_counts[method] += 1
        args: Json = {}
        retry_after = None
        status = 200
        try:
            args = await _read_args(request)
            self._authenticate(request)
            retry_after = self._rate_limited(method, args)
            if retry_after is not None:
                status = 429
                raise Refusal("ratelimited")
            if method not in self._methods:
                raise _Unsupported(f"the fake Slack does not implement {method}")
            answer = {"ok": True, **self._methods[method](args)}
        except Refusal as refusal:
            answer = {"ok": False, "error": refusal.error}
            if refusal.messages:
                answer["response_metadata"] = {"messages": list(refusal.messages)}
        except _Unsupported as unsupported:
            self.unsupported_calls.append(f"{method}: {unsupported}")
            answer = {"ok": False, "error": "method_not_supported", "detail": str(unsupported)}
        self._calls.append(RecordedCall(method, args, answer, status))
        headers = {"Retry-After": str(retry_after)} if retry_after is not None else None
        return web.json_response(answer, status=status, headers=headers)

    def _authenticate(self, request: web.Request) -> None:
        scheme, _, token = request.headers.get("Authorization", "").partition(" ")
        if scheme.lower() != "bearer" or not token:
            raise Refusal("not_authed")
        if token != self.bot_token:
            raise Refusal("invalid_auth")

    def _rate_limited(self, method: str, args: Json) -> int | None:
        """Seconds to wait when this call is over a limit; injected limits come first."""
        times, retry_after = self._injected.get(method, (0, 0))
        if times:
            self._injected[method] = (times - 1, retry_after)
            return retry_after
        if method == "chat.postMessage":
            key, limit = f"{method} {args.get('channel')}", _POSTS_PER_CHANNEL_MINUTE
        elif method in _PER_MINUTE:
            key, limit = method, _PER_MINUTE[method] * self.limits_of_workspaces
        else:
            return None
        now = time.monotonic()
        window = self._windows.setdefault(key, deque())
        while window and now - window[0] >= 60:
            window.popleft()
        if len(window) >= limit:
            return math.ceil(60 - (now - window[0]))
        window.append(now)
        return None

    async def _handle_upload(self, request: web.Request) -> web.Response:
        upload = self.workspace.files.get(request.match_info["file_id"])
        if upload is None or upload.completed:
            return web.Response(status=404, text="file_not_found")
        upload.content = await request.read()
        return web.Response(text=f"OK - {len(upload.content)}")

    async def _handle_response_url(self, request: web.Request) -> web.Response:
        body = await request.json()
        self.record_sent("response_url", body)
        try:
            self.workspace.respond(request.match_info["key"], body)
        except Refusal as refusal:
            status = 404 if refusal.error in ("expired_url", "used_url") else 400
            return web.Response(status=status, text=refusal.error)
        return web.Response(text="ok")

    async def _handle_download(self, request: web.Request) -> web.Response:
        """url_private needs the bot token; without it Slack serves its sign-in page, with status 200."""
        file_id = request.match_info["ref"].rpartition("-")[2]
        upload = self.workspace.files.get(file_id)
        if request.headers.get("Authorization") != f"Bearer {self.bot_token}":
            return web.Response(text=_LOGIN_PAGE, content_type="text/html")
        if upload is None or upload.content is None:
            return web.Response(status=404, text="file_not_found")
        return web.Response(body=upload.content, content_type=upload.mimetype)

    # Methods

    def _auth_test(self, args: Json) -> Json:
        workspace = self.workspace
        return {
            "url": f"https://{workspace.team_domain}.slack.com/",
            "team": "Fake Workspace",
            "user": "integration-builder",
            "team_id": workspace.team_id,
            "user_id": workspace.bot_user_id,
            "bot_id": workspace.bot_id,
            "is_enterprise_install": False,
        }

    def _users_info(self, args: Json) -> Json:
        user = self.workspace.user(str(args.get("user", "")))
        offset = ZoneInfo(user.tz).utcoffset(datetime.now(UTC))
        return {
            "user": {
                "id": user.id,
                "team_id": self.workspace.team_id,
                "name": user.name,
                "real_name": user.real_name,
                "deleted": False,
                "tz": user.tz,
                "tz_label": user.tz,
                "tz_offset": int(offset.total_seconds()) if offset else 0,
                "is_admin": user.is_admin,
                "is_owner": False,
                "is_bot": False,
                "is_app_user": False,
                "profile": {
                    "real_name": user.real_name,
                    "display_name": user.name,
                    "email": f"{user.name}@example.com",
                },
            }
        }

    def _conversations_open(self, args: Json) -> Json:
        if args.get("channel"):
            raise _Unsupported("conversations.open with `channel` (resuming a conversation)")
        users = [user for user in str(args.get("users", "")).split(",") if user]
        if not users:
            raise Refusal("users_list_not_supplied")
        if len(users) > 1:
            raise _Unsupported("conversations.open with several users (group DMs)")
        return {"channel": {"id": self.workspace.dm_channel(users[0])}}

    def _chat_post_message(self, args: Json) -> Json:
        if not args.get("channel"):
            raise Refusal("channel_not_found")
        message = self.workspace.post_message(
            str(args["channel"]),
            args.get("text"),
            _blocks(args),
            attachments=args.get("attachments"),
            thread_ts=args.get("thread_ts"),
        )
        shown = self.workspace.message_object(message)
        return {"channel": message.channel, "ts": message.ts, "message": shown}

    def _chat_update(self, args: Json) -> Json:
        message = self.workspace.update_message(
            str(args.get("channel", "")),
            str(args.get("ts", "")),
            args.get("text"),
            _blocks(args),
            args.get("attachments"),
        )
        return {
            "channel": message.channel,
            "ts": message.ts,
            "text": message.text,
            "message": self.workspace.message_object(message),
        }

    def _chat_post_ephemeral(self, args: Json) -> Json:
        ts = self.workspace.post_ephemeral(
            str(args.get("channel", "")), str(args.get("user", "")), args.get("text"), _blocks(args)
        )
        return {"message_ts": ts}

    def _views_open(self, args: Json) -> Json:
        return {"view": self.workspace.open_view(args.get("trigger_id"), _view(args))}

    def _views_push(self, args: Json) -> Json:
        return {"view": self.workspace.push_view(args.get("trigger_id"), _view(args))}

    def _views_update(self, args: Json) -> Json:
        return {
            "view": self.workspace.update_view(
                _view(args),
                view_id=args.get("view_id"),
                external_id=args.get("external_id"),
                hash=args.get("hash"),
            )
        }

    def _views_publish(self, args: Json) -> Json:
        user_id = str(args.get("user_id", ""))
        return {"view": self.workspace.publish_home(user_id, _view(args), args.get("hash"))}

    def _files_get_upload_url(self, args: Json) -> Json:
        try:
            length = int(args.get("length", ""))
        except ValueError:
            problem = "[ERROR] length must be an integer [json-pointer:/length]"
            raise Refusal("invalid_arguments", [problem]) from None
        upload = self.workspace.reserve_upload(str(args.get("filename", "")), length)
        return {"upload_url": f"{self.base_url}/upload/{upload.id}", "file_id": upload.id}

    def _files_complete_upload(self, args: Json) -> Json:
        if args.get("channels"):
            raise _Unsupported("files.completeUploadExternal with `channels` (use channel_id)")
        files = args.get("files")
        if not isinstance(files, list):
            raise Refusal("invalid_arguments", ["[ERROR] files must be a JSON array [json-pointer:/files]"])
        completed = self.workspace.complete_upload(
            files, args.get("channel_id"), args.get("initial_comment"), args.get("thread_ts")
        )
        return {"files": [self.workspace.file_object(upload) for upload in completed]}

    def _files_info(self, args: Json) -> Json:
        upload = self.workspace.files.get(str(args.get("file", "")))
        if upload is None or not upload.completed:
            raise Refusal("file_not_found")
        return {"file": self.workspace.file_object(upload)}


async def _read_args(request: web.Request) -> Json:
    """Arguments from the query string and a form or JSON body, as Slack accepts them all."""
    args: Json = dict(request.query)
    if request.can_read_body:
        if request.content_type == "application/json":
            try:
                body = await request.json()
            except json.JSONDecodeError:
                raise Refusal("invalid_json") from None
            if not isinstance(body, Mapping):
                raise Refusal("invalid_json")
            args.update(body)
        else:
            form = await request.post()
            args.update({name: value for name, value in form.items() if isinstance(value, str)})
    args.pop("token", None)
    for name in _JSON_ARGS:
        if isinstance(args.get(name), str):
            try:
                args[name] = json.loads(args[name])
            except json.JSONDecodeError:
                pass  # left as a string: the method answers with its own "invalid ..._format" error
    return args


def _blocks(args: Json) -> list[Json] | None:
    blocks = args.get("blocks")
    if blocks is not None and not isinstance(blocks, list):
        raise Refusal("invalid_blocks_format")
    return blocks


def _view(args: Json) -> Any:
    view = args.get("view")
    if view is None or isinstance(view, str):
        raise Refusal("invalid_arguments", ["[ERROR] view must be a JSON object [json-pointer:/view]"])
    return view


def _readable(content: bytes) -> list[str]:
    """A file's text for leak scans; a zip (a wheel, a package archive) is read member by member."""
    if zipfile.is_zipfile(io.BytesIO(content)):
        with zipfile.ZipFile(io.BytesIO(content)) as archive:
            return [archive.read(name).decode("utf-8", "replace") for name in archive.namelist()]
    return [content.decode("utf-8", "replace")]
