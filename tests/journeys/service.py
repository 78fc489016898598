"""`ib serve`'s web app, served in-process on 127.0.0.1 with a real socket, talking to a fake Slack.

Shared by the journeys and bench/slack_ack.py: the app is exactly what `ib serve` builds
(`create_app` with every route installer); only IB_SLACK_API_URL points at the fake.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, replace
from typing import Any

from aiohttp import web

from bot.app_keys import PUBLISHER
from bot.config import Settings
from bot.slack_app import SLACK_BOT, SlackBot
from bot.web import create_app
from generator.publisher import Publisher
from storage import Database, Drafts, SecretBox, generate_key
from storage.models import Draft
from tests.slack import FakeSlack, wait_for


def slack_settings(database_url: str, fake: FakeSlack, signing_secret: str, **overrides: Any) -> Settings:
    """Settings of a single-workspace install whose Slack Web API is the fake."""
    settings = Settings(
        database_url=database_url,
        slack_signing_secret=signing_secret,
        slack_bot_token=fake.bot_token,
        slack_api_url=fake.api_url,
        base_url="https://ib.example.test",
    )
    return replace(settings, **overrides)


@dataclass
class RunningService:
    app: web.Application
    url: str
    database: Database

    @property
    def bot(self) -> SlackBot:
        return self.app[SLACK_BOT]

    @property
    def publisher(self) -> Publisher:
        return self.app[PUBLISHER]

    async def settled(self) -> None:
        """Wait until the work the app started after its acks is done (views updated, drafts written)."""
        await wait_for(lambda: self.bot.services.tasks.running == 0, what="the app's work after its acks")

    async def draft(self, draft_id: str) -> Draft:
        """The draft as stored, once the app has written what it answered with."""
        await self.settled()
        async with self.database.session() as session:
            return await Drafts(session).require(draft_id)


@asynccontextmanager
async def running_service(settings: Settings, database: Database) -> AsyncIterator[RunningService]:
    """The app of `ib serve` on 127.0.0.1:<free port> until the block ends (then cleaned up as on SIGTERM)."""
    app = create_app(settings, database, SecretBox([generate_key()]))
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    try:
        await web.TCPSite(runner, "127.0.0.1", 0).start()
        port = runner.addresses[0][1]
        yield RunningService(app, f"http://127.0.0.1:{port}", database)
    finally:
        await runner.cleanup()
