"""Socket Mode requests count in /metrics exactly like HTTP ones: requests and ack latency per kind.

Slack's side of Socket Mode is played on 127.0.0.1: ``apps.connections.open`` hands out a WebSocket
URL, the socket delivers envelopes and collects the app's acks. Every other Web API call goes on
to the strict fake Slack.
"""

from __future__ import annotations

import asyncio
import json
import secrets
import time
from collections.abc import AsyncIterator
from typing import Any

import aiohttp
import httpx
import pytest
from aiohttp import web

from storage import Database
from tests.journeys.service import running_service, slack_settings
from tests.scale.test_metrics import sample
from tests.slack import DEVELOPER, FakeSlack


class SocketModeSlack:
    """``apps.connections.open`` and the socket it opens; other methods are forwarded to ``fake``."""

    def __init__(self, fake: FakeSlack) -> None:
        self.fake = fake
        self.app_token = f"xapp-1-A0APP-{secrets.token_hex(8)}"
        self.connected = asyncio.Event()
        self.acks: asyncio.Queue[dict[str, Any]] = asyncio.Queue()
        self._socket: web.WebSocketResponse | None = None
        self._runner: web.AppRunner | None = None
        self.base_url = ""

    async def __aenter__(self) -> SocketModeSlack:
        app = web.Application()
        app.router.add_post("/api/{method}", self._api)
        app.router.add_get("/link", self._link)
        self._runner = web.AppRunner(app, access_log=None)
        await self._runner.setup()
        await web.TCPSite(self._runner, "127.0.0.1", 0).start()
        self.base_url = f"http://127.0.0.1:{self._runner.addresses[0][1]}"
        return self

    async def __aexit__(self, *exc: object) -> None:
        if self._socket is not None:
            await self._socket.close()
        assert self._runner is not None
        await self._runner.cleanup()

    @property
    def api_url(self) -> str:
        return f"{self.base_url}/api/"

    async def _api(self, request: web.Request) -> web.StreamResponse:
        method = request.match_info["method"]
        if method == "apps.connections.open":
            if request.headers.get("Authorization") != f"Bearer {self.app_token}":
                return web.json_response({"ok": False, "error": "invalid_auth"})
            return web.json_response({"ok": True, "url": f"{self.base_url.replace('http', 'ws')}/link"})
        async with aiohttp.ClientSession() as session:
            async with session.post(
                f"{self.fake.api_url}{method}",
                data=await request.read(),
                headers={
                    k: v for k, v in request.headers.items() if k.lower() in ("authorization", "content-type")
                },
            ) as answer:
                return web.Response(
                    body=await answer.read(), status=answer.status, content_type="application/json"
                )

    async def _link(self, request: web.Request) -> web.WebSocketResponse:
        socket = web.WebSocketResponse()
        await socket.prepare(request)
        self._socket = socket
        await socket.send_json(
            {"type": "hello", "num_connections": 1, "connection_info": {"app_id": "A0APP"}}
        )
        self.connected.set()
        async for message in socket:
            if message.type == aiohttp.WSMsgType.TEXT:
                await self.acks.put(json.loads(message.data))
        return socket

    async def deliver(self, kind: str, payload: dict[str, Any]) -> dict[str, Any]:
        """Send one envelope and return the app's ack for it."""
        assert self._socket is not None
        envelope_id = secrets.token_hex(8)
        await self._socket.send_json(
            {"envelope_id": envelope_id, "type": kind, "payload": payload, "accepts_response_payload": True}
        )
        ack = await asyncio.wait_for(self.acks.get(), 10)
        assert ack["envelope_id"] == envelope_id
        return ack


def command(fake: FakeSlack, text: str) -> dict[str, Any]:
    channel = fake.workspace.dm_channel(DEVELOPER.id)
    return {
        "team_id": fake.workspace.team_id,
        "channel_id": channel,
        "user_id": DEVELOPER.id,
        "user_name": DEVELOPER.name,
        "command": "/ib",
        "text": text,
        "api_app_id": fake.workspace.app_id,
        "response_url": fake.response_url(DEVELOPER.id, channel),
        "trigger_id": fake.workspace.issue_trigger(DEVELOPER.id),
    }


def app_home_opened(fake: FakeSlack) -> dict[str, Any]:
    return {
        "team_id": fake.workspace.team_id,
        "api_app_id": fake.workspace.app_id,
        "type": "event_callback",
        "event_id": f"Ev{secrets.token_hex(5).upper()}",
        "event_time": int(time.time()),
        "event": {
            "type": "app_home_opened",
            "user": DEVELOPER.id,
            "channel": fake.workspace.dm_channel(DEVELOPER.id),
            "tab": "home",
            "event_ts": f"{time.time():.6f}",
        },
        "authorizations": [
            {"team_id": fake.workspace.team_id, "user_id": fake.workspace.bot_user_id, "is_bot": True}
        ],
    }


@pytest.fixture
async def socket_slack(fake_slack: FakeSlack) -> AsyncIterator[SocketModeSlack]:
    async with SocketModeSlack(fake_slack) as slack:
        yield slack


async def test_socket_mode_requests_are_counted_per_kind_with_their_ack_latency(
    database: Database,
    database_url: str,
    fake_slack: FakeSlack,
    socket_slack: SocketModeSlack,
    slack_signing_secret: str,
) -> None:
    settings = slack_settings(
        database_url,
        fake_slack,
        slack_signing_secret,
        slack_api_url=socket_slack.api_url,
        slack_app_token=socket_slack.app_token,
    )
    async with running_service(settings, database) as service, httpx.AsyncClient() as client:
        await service.bot.connect_socket_mode(settings.slack_app_token)
        await asyncio.wait_for(socket_slack.connected.wait(), 10)
        before = (await client.get(f"{service.url}/metrics")).text
        acks = [await socket_slack.deliver("slash_commands", command(fake_slack, "help")) for _ in range(2)]
        await socket_slack.deliver("events_api", app_home_opened(fake_slack))
        await service.settled()
        after = (await client.get(f"{service.url}/metrics")).text

    assert all("/ib" in json.dumps(ack.get("payload", {})) for ack in acks), acks

    def grew(name: str, **labels: str) -> float:
        return sample(after, name, **labels) - sample(before, name, **labels)

    assert grew("ib_slack_requests_total", kind="command", status="200") == 2
    assert grew("ib_slack_ack_seconds_count", kind="command") == 2
    assert grew("ib_slack_requests_total", kind="event", status="200") == 1
    assert grew("ib_slack_ack_seconds_count", kind="event") == 1
    # The socket's requests are Slack requests, not other routes.
    assert grew("ib_http_requests_total", route="/slack/events", status="200") == 0
