"""The Slack client's side: signed requests, shaped like Slack's, sent to the app's /slack/events.

The driver plays the users of the fake workspace: it types into and submits the modals the app opened
on the fake, clicks the buttons of the messages the app posted, and applies the app's answers
(`response_action`, slash command replies) to the fake as Slack does. What Slack would refuse, it
raises as SlackContractError; an ack slower than Slack waits for is recorded in `failures`.
"""

from __future__ import annotations

import asyncio
import copy
import hashlib
import hmac
import inspect
import json
import secrets
import time
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass
from types import TracebackType
from typing import Any, TypedDict, TypeVar, Unpack
from urllib.parse import urlencode

import aiohttp

from tests.slack.blockkit import (
    DEFAULT_MIN_QUERY_LENGTH,
    EXTERNAL_SELECTS,
    ElementRef,
    Json,
    chosen_state,
    initial_state,
    iter_elements,
    options_answer_problems,
    options_of,
    submission_problems,
)
from tests.slack.fake_api import FakeSlack
from tests.slack.workspace import FakeMessage, Refusal, SlackUser

ACK_LIMIT = 3.0
_FORM = "application/x-www-form-urlencoded"
_VERIFICATION_TOKEN = "fake-verification-token"

T = TypeVar("T")
UserValues = Mapping[str, Any] | Mapping[tuple[str, str], Any]


class SlackContractError(AssertionError):
    """The app answered what Slack refuses, or a test asked a user for what Slack's client cannot do."""


class Delivery(TypedDict, total=False):
    """How a request travels: Slack's retry headers, a clock offset, a broken or missing signature."""

    retry_num: int
    retry_reason: str
    timestamp_offset: float
    bad_signature: bool
    unsigned: bool


@dataclass(frozen=True)
class SentRequest:
    kind: str
    body: bytes
    headers: dict[str, str]


@dataclass(frozen=True)
class AckResponse:
    """The app's answer to one request; `status` is 0 when Slack would have given up waiting."""

    kind: str
    status: int
    text: str
    latency: float
    request: SentRequest

    @property
    def timed_out(self) -> bool:
        return self.status == 0

    @property
    def json(self) -> Any:
        """The answer body as JSON, None when it is empty."""
        return json.loads(self.text) if self.text.strip() else None


async def wait_for(
    predicate: Callable[[], T | None] | Callable[[], Awaitable[T | None]],
    timeout: float = 5.0,  # noqa: ASYNC109 - a polling deadline, not a cancel scope
    *,
    what: str = "",
    interval: float = 0.02,
) -> T:
    """Poll until `predicate` gives something truthy and return it: listeners run after the ack."""
    deadline = time.monotonic() + timeout
    while True:
        result = predicate()
        if inspect.isawaitable(result):
            result = await result
        if result:
            return result
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout} s waiting for {what or predicate}")
        await asyncio.sleep(interval)


class HeldDelivery:
    """An interaction the user made that Slack has not delivered yet (:meth:`Driver.hold_block_action`)."""

    def __init__(
        self, what: str, send: Callable[[], Awaitable[AckResponse]], undelivered: list[HeldDelivery]
    ) -> None:
        self.what = what
        self._send: Callable[[], Awaitable[AckResponse]] | None = send
        self._undelivered = undelivered
        undelivered.append(self)

    async def deliver(self) -> AckResponse:
        """Slack delivers it now, once (its retries are :meth:`Driver.resend` of the answer)."""
        if self._send is None:
            raise SlackContractError(f"{self.what} was delivered already")
        send, self._send = self._send, None
        self._undelivered.remove(self)
        return await send()


class Driver:
    """Slack's client and interaction delivery for one app under test."""

    def __init__(
        self,
        app_url: str,
        signing_secret: str,
        fake: FakeSlack,
        *,
        path: str = "/slack/events",
        ack_limit: float = ACK_LIMIT,
    ) -> None:
        self.url = app_url.rstrip("/") + path
        self.fake = fake
        self.workspace = fake.workspace
        self.ack_limit = ack_limit
        self.failures: list[str] = []
        self.latencies: list[tuple[str, float]] = []
        self._secret = signing_secret.encode()
        self._offered: dict[tuple[str, str, str], dict[str, Json]] = {}
        self._session: aiohttp.ClientSession | None = None
        self._held: list[HeldDelivery] = []

    async def __aenter__(self) -> Driver:
        return self

    async def __aexit__(
        self, kind: type[BaseException] | None, error: BaseException | None, trace: TracebackType | None
    ) -> None:
        await self.close()
        if error is None:
            self.check()

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None

    def check(self) -> None:
        """Fail with every recorded failure (slow acks, held interactions never delivered)."""
        failures = self.failures + [f"{held.what}: held and never delivered" for held in self._held]
        if failures:
            raise SlackContractError("\n".join(failures))

    # Interactions

    async def slash_command(
        self,
        user: SlackUser | str,
        text: str = "",
        *,
        command: str = "/ib",
        channel: str | None = None,
        **delivery: Unpack[Delivery],
    ) -> AckResponse:
        """A user types `/ib text`; a reply in the ack shows to that user (or the channel, `in_channel`)."""
        member = self._user(user)
        channel_id = channel or self.workspace.dm_channel(member.id)
        fields = {
            "token": _VERIFICATION_TOKEN,
            "team_id": self.workspace.team_id,
            "team_domain": self.workspace.team_domain,
            "channel_id": channel_id,
            "channel_name": _channel_name(channel_id),
            "user_id": member.id,
            "user_name": member.name,
            "command": command,
            "text": text,
            "api_app_id": self.workspace.app_id,
            "is_enterprise_install": "false",
            "response_url": self.fake.response_url(member.id, channel_id),
            "trigger_id": self.workspace.issue_trigger(member.id),
        }
        response = await self._send("slash_command", urlencode(fields).encode(), _FORM, delivery)
        if response.status == 200 and response.text.strip():
            self._show_command_reply(member, channel_id, response.text)
        return response

    async def shortcut(
        self, user: SlackUser | str, callback_id: str, **delivery: Unpack[Delivery]
    ) -> AckResponse:
        """A global shortcut, chosen from the shortcuts menu."""
        member = self._user(user)
        return await self._interaction(
            "shortcut",
            member,
            {
                "callback_id": callback_id,
                "action_ts": f"{time.time():.6f}",
                "trigger_id": self.workspace.issue_trigger(member.id),
            },
            delivery,
        )

    async def block_action(
        self,
        user: SlackUser | str,
        action_id: str,
        value: Any = None,
        *,
        block_id: str | None = None,
        view: str | Mapping[str, Any] | None = None,
        message: FakeMessage | None = None,
        **delivery: Unpack[Delivery],
    ) -> AckResponse:
        """The user clicks a button or changes a select, date picker, checkbox... in a view or message.

        `value` is what the user picks, as they see it: an option value (a list of them for multi
        selects and checkboxes), a text for inputs that dispatch actions; buttons carry their own value.
        Without `view` or `message` the element is looked for where the user sees it: their open modal,
        then their App Home, then messages only they see, then their DM with the app (newest first).
        Naming a view or message explicitly also lets a test forge a click by a user who cannot see it.
        """
        member = self._user(user)
        fields = self._block_action_fields(member, action_id, value, block_id, view, message)
        return await self._interaction("block_actions", member, fields, delivery)

    def hold_block_action(
        self,
        user: SlackUser | str,
        action_id: str,
        value: Any = None,
        *,
        block_id: str | None = None,
        view: str | Mapping[str, Any] | None = None,
        message: FakeMessage | None = None,
        **delivery: Unpack[Delivery],
    ) -> HeldDelivery:
        """The user clicks now (as :meth:`block_action`), but Slack delivers the click only when the
        test awaits ``deliver()``: Slack orders its delivery after nothing else, such as the browser
        tab a URL button opened at the same moment. A held click never delivered fails :meth:`check`."""
        member = self._user(user)
        fields = self._block_action_fields(member, action_id, value, block_id, view, message)

        async def send() -> AckResponse:
            return await self._interaction("block_actions", member, fields, delivery)

        return HeldDelivery(f"block_actions {action_id!r} of {member.name}", send, self._held)

    def _block_action_fields(
        self,
        member: SlackUser,
        action_id: str,
        value: Any,
        block_id: str | None,
        view: str | Mapping[str, Any] | None,
        message: FakeMessage | None,
    ) -> Json:
        """The payload fields of a click on what ``member`` sees now."""
        ref, surface = self._locate(member, action_id, block_id, view, message)
        action: Json = {
            "type": ref.type,
            "action_id": ref.action_id,
            "block_id": ref.block_id,
            "action_ts": f"{time.time():.6f}",
        }
        if ref.type == "button":
            if value is not None:
                raise SlackContractError("a button sends its own value; do not pass one")
            action["text"] = ref.element.get("text")
            if "value" in ref.element:
                action["value"] = ref.element["value"]
        elif ref.type == "overflow":
            menu = {option["value"]: option for option in options_of(ref.element)}
            if value not in menu:
                raise SlackContractError(f"overflow {action_id!r} offers no option with value {value!r}")
            action["selected_option"] = menu[value]
        elif ref.is_stateful:
            view_id = surface["id"] if isinstance(surface, dict) else None
            entry = self._choose(ref, value, view_id=view_id)
            action.update({key: item for key, item in entry.items() if key != "type"})
            if view_id is not None:
                self.workspace.type_into(view_id, {ref.block_id: {ref.action_id: entry}})
        fields: Json = {"actions": [action], "trigger_id": self.workspace.issue_trigger(member.id)}
        if isinstance(surface, FakeMessage):
            ephemeral = surface.visible_to is not None
            fields.update(
                {
                    "container": {
                        "type": "message",
                        "message_ts": surface.ts,
                        "channel_id": surface.channel,
                        "is_ephemeral": ephemeral,
                    },
                    "channel": {"id": surface.channel, "name": _channel_name(surface.channel)},
                    "state": {"values": _state_of(surface.blocks or [], {})},
                    "response_url": self.fake.response_url(member.id, surface.channel, surface),
                }
            )
            if not ephemeral:  # Slack keeps no copy of an ephemeral message to send back
                fields["message"] = self.workspace.message_object(surface)
        else:
            fields.update(
                {"container": {"type": "view", "view_id": surface["id"]}, "view": self._view_payload(surface)}
            )
        return fields

    async def block_suggestion(
        self,
        user: SlackUser | str,
        action_id: str,
        query: str = "",
        *,
        block_id: str | None = None,
        view: str | Mapping[str, Any] | None = None,
        **delivery: Unpack[Delivery],
    ) -> AckResponse:
        """The user types `query` into an external select; the app's options are checked as Slack does."""
        member = self._user(user)
        shown = self._view(member, view)
        ref = self._element_in(shown["blocks"], action_id, block_id, where=f"view {shown['id']}")
        if ref.type not in EXTERNAL_SELECTS:
            raise SlackContractError(f"{ref.type} {action_id!r} loads no options from the app")
        minimum = ref.element.get("min_query_length", DEFAULT_MIN_QUERY_LENGTH)
        if len(query) < minimum:
            raise SlackContractError(
                f"Slack sends no block_suggestion for {query!r}: {action_id!r} has min_query_length {minimum}"
            )
        response = await self._interaction(
            "block_suggestion",
            member,
            {
                "container": {"type": "view", "view_id": shown["id"]},
                "action_id": ref.action_id,
                "block_id": ref.block_id,
                "value": query,
                "view": self._view_payload(shown),
            },
            delivery,
        )
        if response.status == 200:
            answer = _parsed(response)
            problems = options_answer_problems(answer)
            if problems:
                raise SlackContractError(f"the options for {action_id!r} show as 'no result': {problems}")
            offered = self._offered.setdefault((shown["id"], ref.block_id, ref.action_id), {})
            offered.update({option["value"]: option for option in options_of(answer)})
        return response

    async def view_submission(
        self,
        user: SlackUser | str,
        view: str | Mapping[str, Any] | None = None,
        values: UserValues | None = None,
        **delivery: Unpack[Delivery],
    ) -> AckResponse:
        """The user fills in `values` and presses submit; the app's answer is applied to the modal.

        `values` are keyed by action_id (or (block_id, action_id) where an action_id repeats) and given
        as the user sees them: text, an option value, a list of option values, a list of file objects
        from `fake.workspace.add_user_file`. Inputs not named keep what was typed before or their
        initial value. Answers `errors` / `update` / `push` / `clear` (or an empty body, which closes
        the view) change the fake as they change Slack's client.
        """
        member = self._user(user)
        shown = self._view(member, view)
        for key, choice in (values or {}).items():
            block_id, action_id = key if isinstance(key, tuple) else (None, key)
            ref = self._element_in(shown["blocks"], action_id, block_id, where=f"view {shown['id']}")
            entry = self._choose(ref, choice, view_id=shown["id"])
            self.workspace.type_into(shown["id"], {ref.block_id: {ref.action_id: entry}})
        payload_view = self._view_payload(shown)
        problems = submission_problems(payload_view, payload_view["state"]["values"])
        if problems:
            raise SlackContractError(f"Slack's client would not submit view {shown['id']}: {problems}")
        response = await self._interaction(
            "view_submission",
            member,
            {
                "view": payload_view,
                "trigger_id": self.workspace.issue_trigger(member.id),
                "response_urls": [],
            },
            delivery,
        )
        if response.status == 200:
            try:
                self.workspace.answer_submission(shown["id"], _parsed(response))
            except Refusal as refusal:
                raise SlackContractError(f"Slack refuses the answer to view_submission: {refusal}") from None
        return response

    async def view_closed(
        self, user: SlackUser | str, view: str | Mapping[str, Any] | None = None, **delivery: Unpack[Delivery]
    ) -> AckResponse | None:
        """The user closes the modal view; Slack tells the app only when the view asked (notify_on_close)."""
        member = self._user(user)
        shown = self._view(member, view)
        payload_view = self._view_payload(shown)
        self.workspace.close_view(shown["id"])
        if not shown["notify_on_close"]:
            return None
        return await self._interaction(
            "view_closed",
            member,
            {
                "view": payload_view,
                "is_cleared": bool(shown["clear_on_close"]),
            },
            delivery,
        )

    async def event(
        self,
        user: SlackUser | str,
        event_type: str = "app_home_opened",
        fields: Mapping[str, Any] | None = None,
        **delivery: Unpack[Delivery],
    ) -> AckResponse:
        """An Events API delivery; app_home_opened carries the user's DM channel and current Home view."""
        member = self._user(user)
        event: Json = {"type": event_type, "user": member.id, "event_ts": f"{time.time():.6f}"}
        if event_type == "app_home_opened":
            event.update({"channel": self.workspace.dm_channel(member.id), "tab": "home"})
            home = self.workspace.home_view(member.id)
            if home is not None:
                event["view"] = copy.deepcopy(home)
        event.update(fields or {})
        envelope = {
            "token": _VERIFICATION_TOKEN,
            "team_id": self.workspace.team_id,
            "api_app_id": self.workspace.app_id,
            "event": event,
            "type": "event_callback",
            "event_id": f"Ev{secrets.token_hex(5).upper()}",
            "event_time": int(time.time()),
            "authorizations": [
                {
                    "enterprise_id": None,
                    "team_id": self.workspace.team_id,
                    "user_id": self.workspace.bot_user_id,
                    "is_bot": True,
                    "is_enterprise_install": False,
                }
            ],
            "is_ext_shared_channel": False,
        }
        return await self._send("event", json.dumps(envelope).encode(), "application/json", delivery)

    async def resend(self, response: AckResponse, **delivery: Unpack[Delivery]) -> AckResponse:
        """Deliver the same body again, freshly signed (Slack's retries: pass retry_num); the answer
        is not applied to the fake."""
        request = response.request
        return await self._send(request.kind, request.body, request.headers["Content-Type"], delivery)

    async def replay(self, response: AckResponse) -> AckResponse:
        """Send the very same bytes and headers again, as an attacker replaying a captured request would."""
        return await self._post(response.request)

    # Sending

    def sign(self, timestamp: int, body: bytes) -> str:
        base = b"v0:" + str(timestamp).encode() + b":" + body
        return "v0=" + hmac.new(self._secret, base, hashlib.sha256).hexdigest()

    async def _interaction(
        self, kind: str, member: SlackUser, fields: Json, delivery: Delivery
    ) -> AckResponse:
        payload = {
            "type": kind,
            "token": _VERIFICATION_TOKEN,
            "api_app_id": self.workspace.app_id,
            "team": {"id": self.workspace.team_id, "domain": self.workspace.team_domain},
            "user": {
                "id": member.id,
                "username": member.name,
                "name": member.name,
                "team_id": self.workspace.team_id,
            },
            "enterprise": None,
            "is_enterprise_install": False,
            **fields,
        }
        return await self._send(kind, urlencode({"payload": json.dumps(payload)}).encode(), _FORM, delivery)

    async def _send(self, kind: str, body: bytes, content_type: str, delivery: Delivery) -> AckResponse:
        headers = {"Content-Type": content_type}
        if not delivery.get("unsigned"):
            timestamp = int(time.time() + delivery.get("timestamp_offset", 0.0))
            signature = self.sign(timestamp, body)
            if delivery.get("bad_signature"):
                signature = self.sign(timestamp, body + b"tampered")
            headers["X-Slack-Request-Timestamp"] = str(timestamp)
            headers["X-Slack-Signature"] = signature
        if "retry_num" in delivery:
            headers["X-Slack-Retry-Num"] = str(delivery["retry_num"])
            headers["X-Slack-Retry-Reason"] = delivery.get("retry_reason", "http_timeout")
        return await self._post(SentRequest(kind, body, headers))

    async def _post(self, request: SentRequest) -> AckResponse:
        if self._session is None:
            self._session = aiohttp.ClientSession()
        started = time.perf_counter()
        try:
            async with self._session.post(
                self.url,
                data=request.body,
                headers=request.headers,
                timeout=aiohttp.ClientTimeout(total=self.ack_limit),
            ) as answer:
                status, text = answer.status, await answer.text()
        except TimeoutError:
            # Slack stops waiting: the user sees an error and whatever the app answers later is dropped.
            status, text = 0, ""
            self.failures.append(f"{request.kind}: no ack within {self.ack_limit} s")
        latency = time.perf_counter() - started
        self.latencies.append((request.kind, latency))
        if text.strip():
            self.fake.record_sent(f"ack:{request.kind}", text)
        return AckResponse(request.kind, status, text, latency, request)

    # What the user sees

    def _user(self, user: SlackUser | str) -> SlackUser:
        return self.workspace.user(user if isinstance(user, str) else user.id)

    def _view(self, member: SlackUser, view: str | Mapping[str, Any] | None) -> Json:
        if view is None:
            shown = self.workspace.top_view(member.id)
            if shown is None:
                raise SlackContractError(f"{member.name} has no modal open")
            return shown
        view_id = view if isinstance(view, str) else str(view["id"])
        if view_id not in self.workspace.views:
            raise SlackContractError(f"view {view_id} is not open")
        return self.workspace.views[view_id]

    def _view_payload(self, shown: Json) -> Json:
        """The view as interaction payloads carry it: with every stateful element's current value."""
        payload = copy.deepcopy(shown)
        payload["state"] = {"values": _state_of(shown["blocks"], shown["state"]["values"])}
        return payload

    def _locate(
        self,
        member: SlackUser,
        action_id: str,
        block_id: str | None,
        view: str | Mapping[str, Any] | None,
        message: FakeMessage | None,
    ) -> tuple[ElementRef, Json | FakeMessage]:
        if message is not None:
            return self._element_in(message.blocks or [], action_id, block_id, where="the message"), message
        if view is not None:
            shown = self._view(member, view)
            return self._element_in(shown["blocks"], action_id, block_id, where=f"view {shown['id']}"), shown
        surfaces: list[Json | FakeMessage] = [
            surface
            for surface in (self.workspace.top_view(member.id), self.workspace.home_view(member.id))
            if surface is not None
        ]
        surfaces += reversed(self.workspace.ephemerals_for(member.id))
        surfaces += reversed(self.workspace.messages_for(member.id))
        for surface in surfaces:
            blocks = (surface.blocks if isinstance(surface, FakeMessage) else surface["blocks"]) or []
            if any(_matches(ref, action_id, block_id) for ref in iter_elements(blocks)):
                return self._element_in(blocks, action_id, block_id, where="what the user sees"), surface
        raise SlackContractError(f"{member.name} sees no element {action_id!r} (modal, App Home, messages)")

    def _element_in(
        self, blocks: Sequence[Mapping[str, Any]], action_id: str, block_id: str | None, *, where: str
    ) -> ElementRef:
        found = [ref for ref in iter_elements(blocks) if _matches(ref, action_id, block_id)]
        if not found:
            raise SlackContractError(f"{where} has no element {action_id!r}")
        if len(found) > 1:
            raise SlackContractError(f"{where} has {action_id!r} in several blocks: name the block_id")
        return found[0]

    def _choose(self, ref: ElementRef, choice: Any, *, view_id: str | None) -> Json:
        offered = self._offered.get((view_id or "", ref.block_id, ref.action_id), {})
        try:
            return chosen_state(ref.element, choice, list(offered.values()))
        except ValueError as error:
            raise SlackContractError(str(error)) from None

    def _show_command_reply(self, member: SlackUser, channel_id: str, text: str) -> None:
        try:
            reply = json.loads(text)
        except json.JSONDecodeError:
            reply = {"text": text}
        try:
            if reply.get("response_type") == "in_channel":
                self.workspace.post_message(channel_id, reply.get("text"), reply.get("blocks"))
            else:
                self.workspace.post_ephemeral(channel_id, member.id, reply.get("text"), reply.get("blocks"))
        except Refusal as refusal:
            raise SlackContractError(f"Slack refuses the slash command reply: {refusal}") from None


def _channel_name(channel_id: str) -> str:
    return "directmessage" if channel_id.startswith("D") else channel_id


def _matches(ref: ElementRef, action_id: str, block_id: str | None) -> bool:
    return ref.action_id == action_id and block_id in (None, ref.block_id)


def _state_of(blocks: Sequence[Mapping[str, Any]], typed: Mapping[str, Mapping[str, Json]]) -> Json:
    """view.state.values: what the user typed where they typed, initial values elsewhere."""
    values: Json = {}
    for ref in iter_elements(blocks):
        if ref.is_stateful:
            entry = typed.get(ref.block_id, {}).get(ref.action_id) or initial_state(ref.element)
            values.setdefault(ref.block_id, {})[ref.action_id] = copy.deepcopy(entry)
    return values


def _parsed(response: AckResponse) -> Any:
    try:
        return response.json
    except json.JSONDecodeError:
        raise SlackContractError(f"Slack expects JSON or no body, got {response.text[:200]!r}") from None
