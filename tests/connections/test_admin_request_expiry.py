"""Expired admin requests: `ib serve`'s periodic sweep tells each requester once, in a DM, however
the request came to expire and however many replicas sweep; old idempotency keys are pruned."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Awaitable, Callable
from datetime import datetime, timedelta

import pytest
from slack_sdk.web.async_client import AsyncWebClient

from bot.config import Settings
from bot.slack_app import use_slack_api
from generator.publisher import Publisher
from handlers.connections import tell_requesters_of_expiry
from handlers.connections_service import ConnectionService, ConnectionServiceError
from providers.model import Catalog
from storage import Database, DedupKeys, SecretBox
from storage.models import utcnow
from tests.fixtures.connections import publish
from tests.fixtures.publish import TEAM, shop_integration
from tests.slack import ADMIN, DEVELOPER, FakeSlack

pytestmark = pytest.mark.peers

WEEK_AND_A_BIT = timedelta(days=7, seconds=1)


@pytest.fixture
async def shop_in_dev(publisher: Publisher, shop: Catalog) -> None:
    """DEVELOPER published `shop` to dev in TEAM, so DEVELOPER may ask for its connection."""
    await publish(publisher, shop, shop_integration(), user=DEVELOPER.id)


@pytest.fixture
def client(fake_slack: FakeSlack) -> AsyncWebClient:
    client = AsyncWebClient(token="xoxb-not-this-one")
    use_slack_api(client, Settings(slack_api_url=fake_slack.api_url))
    return client


BotToken = Callable[[str], Awaitable[str | None]]


@pytest.fixture
def bot_token(fake_slack: FakeSlack) -> BotToken:
    """The installed app's token, for every workspace."""

    async def token(team_id: str) -> str | None:
        return fake_slack.bot_token

    return token


def service_at(database: Database, secret_box: SecretBox, when: datetime) -> ConnectionService:
    return ConnectionService(database, secret_box, clock=lambda: when)


def expiry_dms(fake_slack: FakeSlack) -> list[str]:
    """What the requester reads of each expiry DM: its blocks' text."""
    return [
        json.dumps(m.blocks, ensure_ascii=False)
        for m in fake_slack.messages_for(DEVELOPER.id)
        if m.text and "expired" in m.text
    ]


@pytest.mark.usefixtures("shop_in_dev")
async def test_the_requester_is_told_once_when_the_request_expires(
    database: Database, secret_box: SecretBox, fake_slack: FakeSlack, client: AsyncWebClient
) -> None:
    now = utcnow()
    teams: list[str] = []

    async def bot_token(team_id: str) -> str | None:
        teams.append(team_id)
        return fake_slack.bot_token

    today = service_at(database, secret_box, now)
    request = await today.request_admin(DEVELOPER.id, admin=ADMIN.id, module_name="shop", environment="dev")

    assert await tell_requesters_of_expiry(today, client, bot_token) == 0
    assert expiry_dms(fake_slack) == []

    later = service_at(database, secret_box, now + WEEK_AND_A_BIT)
    assert await tell_requesters_of_expiry(later, client, bot_token) == 1
    [dm] = expiry_dms(fake_slack)
    assert f"<@{ADMIN.id}>" in dm and "`shop`" in dm and "*dev*" in dm
    assert "/ib connections shop dev" in dm
    assert teams == [TEAM]
    assert (await later.get_admin_request(DEVELOPER.id, request.id)).status == "expired"

    # the next rounds (any replica) have nothing more to say
    assert await tell_requesters_of_expiry(later, client, bot_token) == 0
    assert len(expiry_dms(fake_slack)) == 1


@pytest.mark.usefixtures("shop_in_dev")
async def test_a_request_expired_by_the_admins_click_is_told_too(
    database: Database,
    secret_box: SecretBox,
    fake_slack: FakeSlack,
    client: AsyncWebClient,
    bot_token: BotToken,
) -> None:
    now = utcnow()
    today = service_at(database, secret_box, now)
    later = service_at(database, secret_box, now + WEEK_AND_A_BIT)
    request = await today.request_admin(DEVELOPER.id, admin=ADMIN.id, module_name="shop", environment="dev")
    with pytest.raises(ConnectionServiceError, match="expired"):
        await later.open_admin_request(ADMIN.id, request.id)

    assert await tell_requesters_of_expiry(later, client, bot_token) == 1
    assert len(expiry_dms(fake_slack)) == 1


@pytest.mark.usefixtures("shop_in_dev")
async def test_replicas_sweeping_at_once_tell_each_requester_once(
    database: Database,
    secret_box: SecretBox,
    fake_slack: FakeSlack,
    client: AsyncWebClient,
    bot_token: BotToken,
) -> None:
    now = utcnow()
    today = service_at(database, secret_box, now)
    for _ in range(3):
        await today.request_admin(DEVELOPER.id, admin=ADMIN.id, module_name="shop", environment="dev")

    replicas = [service_at(database, secret_box, now + WEEK_AND_A_BIT) for _ in range(3)]
    told = await asyncio.gather(*(tell_requesters_of_expiry(r, client, bot_token) for r in replicas))
    assert sum(told) == 3
    assert len(expiry_dms(fake_slack)) == 3


@pytest.mark.usefixtures("shop_in_dev")
async def test_without_a_bot_token_nothing_is_sent_and_the_sweep_goes_on(
    database: Database, secret_box: SecretBox, fake_slack: FakeSlack, client: AsyncWebClient
) -> None:
    now = utcnow()
    await service_at(database, secret_box, now).request_admin(
        DEVELOPER.id, admin=ADMIN.id, module_name="shop", environment="dev"
    )

    async def not_installed(team_id: str) -> str | None:
        return None

    later = service_at(database, secret_box, now + WEEK_AND_A_BIT)
    assert await tell_requesters_of_expiry(later, client, not_installed) == 0
    assert expiry_dms(fake_slack) == []
    assert fake_slack.call_count("chat.postMessage") == 0


@pytest.mark.usefixtures("shop_in_dev")
async def test_requests_that_expired_long_ago_are_not_news(
    database: Database,
    secret_box: SecretBox,
    fake_slack: FakeSlack,
    client: AsyncWebClient,
    bot_token: BotToken,
) -> None:
    """A service that was down for weeks does not send stale news when it comes back."""
    now = utcnow()
    await service_at(database, secret_box, now).request_admin(
        DEVELOPER.id, admin=ADMIN.id, module_name="shop", environment="dev"
    )

    much_later = service_at(database, secret_box, now + timedelta(days=30))
    assert await tell_requesters_of_expiry(much_later, client, bot_token) == 0
    assert expiry_dms(fake_slack) == []


async def test_old_dedup_keys_are_pruned_and_recent_ones_kept(
    database: Database, secret_box: SecretBox
) -> None:
    async with database.session() as session:
        assert await DedupKeys(session).claim("slack-retry:1")
    fortnight_later = service_at(database, secret_box, utcnow() + timedelta(days=15))
    assert await service_at(database, secret_box, utcnow()).prune_dedup_keys() == 0
    assert await fortnight_later.prune_dedup_keys() == 1
    async with database.session() as session:
        assert await DedupKeys(session).claim("slack-retry:1")  # forgotten, so claimable again
