"""Slack test harness: a strict fake Web API, and a driver that plays Slack's client against the app.

async with FakeSlack() as fake:                      # or the `fake_slack` fixture
    client = AsyncWebClient(token=fake.bot_token, base_url=fake.api_url)
    async with Driver(app_url, signing_secret, fake) as driver:
        await driver.slash_command(DEVELOPER, "new")
        await wait_for(lambda: fake.current_view(DEVELOPER.id))
"""

from tests.slack.driver import AckResponse, Delivery, Driver, SentRequest, SlackContractError, wait_for
from tests.slack.fake_api import FakeSlack, RecordedCall
from tests.slack.workspace import (
    ADMIN,
    BYSTANDER,
    DEFAULT_USERS,
    DEVELOPER,
    FakeFile,
    FakeMessage,
    Refusal,
    SlackUser,
    Workspace,
)

__all__ = [
    "ADMIN",
    "BYSTANDER",
    "DEFAULT_USERS",
    "DEVELOPER",
    "AckResponse",
    "Delivery",
    "Driver",
    "FakeFile",
    "FakeMessage",
    "FakeSlack",
    "RecordedCall",
    "Refusal",
    "SentRequest",
    "SlackContractError",
    "SlackUser",
    "Workspace",
    "wait_for",
]
