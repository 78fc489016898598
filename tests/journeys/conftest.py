"""Journeys through the real app: `ib serve`'s web app on 127.0.0.1, Slack played by tests/slack."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

from storage import AccessGrants, Database
from tests.journeys.service import RunningService, running_service, slack_settings
from tests.slack import DEVELOPER, Driver, FakeSlack


@pytest.fixture
def allow_private_urls(monkeypatch: pytest.MonkeyPatch) -> None:
    """The peers listen on 127.0.0.1, which the metadata fetch refuses unless allowed."""
    monkeypatch.setenv("IB_ALLOW_PRIVATE_URLS", "1")


@pytest.fixture
async def service(
    database: Database,
    database_url: str,
    fake_slack: FakeSlack,
    slack_signing_secret: str,
    allow_private_urls: None,
) -> AsyncIterator[RunningService]:
    async with database.session() as session:  # the workspace's developer may publish from the wizard
        await AccessGrants(session).grant(DEVELOPER.id, "developer", "dev", created_by="setup")
    async with running_service(
        slack_settings(database_url, fake_slack, slack_signing_secret), database
    ) as running:
        yield running


@pytest.fixture
async def driver(
    service: RunningService, fake_slack: FakeSlack, slack_signing_secret: str
) -> AsyncIterator[Driver]:
    async with Driver(service.url, slack_signing_secret, fake_slack) as driver:
        yield driver
