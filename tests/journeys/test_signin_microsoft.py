"""Sign in with Microsoft from the wizard's source step (Dataverse): the browser goes through the
identity peer's authorize page and back to `ib serve`'s callback; the user then names the
environment (the CAP server's Dataverse-shaped Web API) and gets its tables."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Iterator
from urllib.parse import parse_qsl, urlsplit

import httpx
import pytest
from sqlalchemy import select

from bot.app_keys import SECRET_BOX
from bot.log import QUIET_LOGGERS
from providers.dataverse import DISCOVERY_URL_ENV
from providers.microsoft import CLIENT_ID_ENV, CLIENT_SECRET_ENV, TENANT_ENV, forget_applications
from storage import Database, Integrations
from storage.models import OAuthState
from tests.fixtures.microsoft import (
    REDIRECT_URI,
    SIGN_IN_CLIENT_ID,
    SIGN_IN_SECRET,
    TENANT,
    DataverseEnvironmentPeer,
)
from tests.journeys.service import RunningService
from tests.journeys.test_wizard_happy_path import database_files, jobs_of
from tests.journeys.wizard_user import STEP_TIMEOUT_S, WizardUser
from tests.peers.identity import IdentityServer
from tests.slack import AckResponse, Driver, FakeSlack, wait_for
from tests.slack.driver import HeldDelivery

pytestmark = pytest.mark.peers

SIGN_IN = "wizard_sign_in"


@pytest.fixture
def dataverse_app(
    dataverse_environment: DataverseEnvironmentPeer, monkeypatch: pytest.MonkeyPatch
) -> Iterator[DataverseEnvironmentPeer]:
    """The service's own sign-in app is registered at the identity peer, whose CA it trusts; the
    CAP server is also the Global Discovery Service."""
    monkeypatch.setenv(CLIENT_ID_ENV, SIGN_IN_CLIENT_ID)
    monkeypatch.setenv(CLIENT_SECRET_ENV, SIGN_IN_SECRET)
    monkeypatch.setenv(TENANT_ENV, TENANT)
    monkeypatch.setenv(DISCOVERY_URL_ENV, dataverse_environment.url)
    monkeypatch.setenv("REQUESTS_CA_BUNDLE", str(dataverse_environment.tenant.identity.ca_path))
    yield dataverse_environment


def sign_in_url(user: WizardUser) -> str:
    for block in user.view["blocks"]:
        for element in block.get("elements", []):
            if element.get("action_id") == SIGN_IN:
                return str(element["url"])
    raise AssertionError(f"no sign-in button in the view:\n{user.text}")


async def sign_in(user: WizardUser, identity: IdentityServer) -> str:
    """Click Sign in with Microsoft and sign in: where the identity server sends the browser (at
    once: the app may still be noting the click when the browser comes back)."""
    url = sign_in_url(user)
    await user.click(SIGN_IN)
    return await log_in(url, identity)


async def log_in(url: str, identity: IdentityServer) -> str:
    """The browser at the sign-in button's URL, already logged in: where it is sent back."""
    async with httpx.AsyncClient(verify=identity.tls(), trust_env=False) as browser:
        answer = await browser.get(url)
    assert answer.status_code == 302, answer.text
    location = answer.headers["location"]
    assert location.startswith(REDIRECT_URI + "?")
    return location


async def come_back(service: RunningService, location: str) -> httpx.Response:
    """The browser comes back to the callback."""
    parts = urlsplit(location)
    # the callback redeems the code: with a slow identity host that takes a while
    async with httpx.AsyncClient(timeout=30) as browser:
        return await browser.get(f"{service.url}{parts.path}?{parts.query}")


async def start_dataverse(user: WizardUser, provider: str = "dataverse") -> None:
    await user.start()
    await user.choose_provider(provider)
    await user.wait_step("source")


async def test_a_developer_signs_in_names_the_environment_and_publishes_its_tables(
    service: RunningService,
    driver: Driver,
    fake_slack: FakeSlack,
    dataverse_app: DataverseEnvironmentPeer,
    database: Database,
    database_url: str,
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.DEBUG)
    for name in QUIET_LOGGERS:
        caplog.set_level(logging.WARNING, logger=name)
    user = WizardUser(driver, fake_slack)
    await start_dataverse(user)
    assert "not available" not in user.text
    location = await sign_in(user, dataverse_app.tenant.identity)

    page = await come_back(service, location)
    assert page.status_code == 200 and "Signed in with Microsoft" in page.text
    await wait_for(lambda: "Signed in as" in user.text, STEP_TIMEOUT_S, what="the signed-in source step")
    assert "dana@contoso.example" in user.text and "IB Test" in user.text  # listed environments
    assert SIGN_IN not in str(user.view["blocks"])

    await user.give_source(environment_url=dataverse_app.api_url)
    await user.wait_step("objects")
    assert set(await user.search("objects_rw")) == {"accounts", "contacts", "systemusers"}
    await user.pick_objects(read_write=["contacts"], read_only=["accounts"])
    await user.fill_settings(application_name="CRM contacts", module_name="crm_contacts")
    review = await user.wait_step("review")
    await user.submit()
    await user.wait_step("publishing")
    [queued] = await wait_for(
        lambda: jobs_of(database, review["private_metadata"]), STEP_TIMEOUT_S, what="the publish job"
    )
    job = await service.publisher.wait(queued.id, timeout=120)
    assert (job.state, job.error) == ("published", None)
    async with database.session() as session:
        integration = await Integrations(session).by_module(fake_slack.workspace.team_id, "crm_contacts")
        assert integration is not None
        [version] = await Integrations(session).versions(integration)
    assert {o["name"]: o["access"] for o in version.spec["objects"]} == {
        "contacts": "read-write",
        "accounts": "read-only",
    }

    box = service.app[SECRET_BOX]
    async with database.session() as session:
        rows = list(await session.scalars(select(OAuthState)))
    [kept] = [kept for row in rows if "access_token" in (kept := box.decrypt_json(row.code_verifier))]
    tokens = [kept["access_token"], kept["refresh_token"]]
    assert all(tokens)
    draft = await service.draft(review["private_metadata"])
    for token in tokens:
        assert token not in fake_slack.all_text_sent()
        assert token not in caplog.text
        assert token not in str(draft.state)
        for path in database_files(database_url):
            assert token.encode() not in path.read_bytes(), path


@pytest.mark.parametrize("provider", ["dataverse", "dynamics365"])
async def test_the_listed_environment_can_be_chosen_instead_of_typed(
    service: RunningService,
    driver: Driver,
    fake_slack: FakeSlack,
    dataverse_app: DataverseEnvironmentPeer,
    provider: str,
) -> None:
    user = WizardUser(driver, fake_slack)
    await start_dataverse(user, provider)
    assert (await come_back(service, await sign_in(user, dataverse_app.tenant.identity))).status_code == 200
    await wait_for(lambda: "Signed in as" in user.text, STEP_TIMEOUT_S, what="the signed-in source step")
    await user.give_source(environment=dataverse_app.url)
    await user.wait_step("objects")
    assert set(await user.search("objects_rw")) == {"accounts", "contacts", "systemusers"}


async def test_a_forged_state_and_denied_consent(
    service: RunningService, driver: Driver, fake_slack: FakeSlack, dataverse_app: DataverseEnvironmentPeer
) -> None:
    user = WizardUser(driver, fake_slack)
    await start_dataverse(user)
    location = await sign_in(user, dataverse_app.tenant.identity)
    code = dict(parse_qsl(urlsplit(location).query))["code"]
    forged = await come_back(service, f"{REDIRECT_URI}?code={code}&state=forged-state")
    assert forged.status_code == 400 and "not valid" in forged.text
    await service.settled()
    assert user.step == "source" and "Signed in" not in user.text and ":warning:" not in user.text

    dataverse_app.tenant.identity.deny_next_consent()
    location = await sign_in(user, dataverse_app.tenant.identity)
    page = await come_back(service, location)
    assert "consent was denied" in page.text
    await wait_for(
        lambda: "consent was denied" in user.text,
        STEP_TIMEOUT_S,
        what="the denied consent on the source step",
    )
    assert user.step == "source" and "Signed in as" not in user.text
    sign_in_url(user)  # a fresh button to try again


async def test_a_revoked_sign_in_asks_to_sign_in_again_and_keeps_the_draft(
    service: RunningService, driver: Driver, fake_slack: FakeSlack, dataverse_app: DataverseEnvironmentPeer
) -> None:
    user = WizardUser(driver, fake_slack)
    await start_dataverse(user)
    assert (await come_back(service, await sign_in(user, dataverse_app.tenant.identity))).status_code == 200
    await wait_for(lambda: "Signed in as" in user.text, STEP_TIMEOUT_S, what="the signed-in source step")
    draft_id = user.view["private_metadata"]
    # The identity server no longer honours the kept refresh token (revoked, or 90 days old).
    await asyncio.to_thread(dataverse_app.tenant.identity.revoke_refresh_tokens)

    await user.give_source(environment_url=dataverse_app.url)
    await wait_for(
        lambda: user.step == "source" and "again" in user.text,
        STEP_TIMEOUT_S,
        what="the ask to sign in again",
    )
    assert "the sign-in has expired" in user.text and "Signed in as" not in user.text
    sign_in_url(user)  # a fresh button, not only the advice to press one
    assert (await service.draft(draft_id)).status == "open"

    # Signed in again, the same draft goes on.
    assert (await come_back(service, await sign_in(user, dataverse_app.tenant.identity))).status_code == 200
    await wait_for(
        lambda: "Signed in as" in user.text, STEP_TIMEOUT_S, what="the signed-in source step again"
    )
    assert user.view["private_metadata"] == draft_id
    await user.give_source(environment_url=dataverse_app.url)
    await user.wait_step("objects")


async def test_a_slow_identity_host_does_not_make_the_wizard_miss_slacks_ack_deadline(
    service: RunningService, driver: Driver, fake_slack: FakeSlack, dataverse_app: DataverseEnvironmentPeer
) -> None:
    identity = dataverse_app.tenant.identity
    # As right after a start: no MSAL application has fetched the authority's OpenID configuration.
    forget_applications()
    await asyncio.to_thread(identity.delay_discovery, 3.5)  # longer than Slack waits for an ack
    try:
        user = WizardUser(driver, fake_slack)
        await start_dataverse(user)  # the provider step's ack shows the source step and its button
        assert driver.failures == []
        page = await come_back(service, await sign_in(user, identity))
        assert page.status_code == 200 and "Signed in with Microsoft" in page.text
        await wait_for(lambda: "Signed in as" in user.text, STEP_TIMEOUT_S, what="the signed-in source step")
    finally:
        await asyncio.to_thread(identity.delay_discovery, 0)


def updates_of(fake_slack: FakeSlack, view_id: str) -> int:
    return sum(call.args.get("view_id") == view_id for call in fake_slack.calls("views.update"))


# Slack opens the browser and delivers the sign-in button's click at once, in no set order; with a
# cached login the browser comes back before the click may arrive.
ORDERS = ["click_first", "browser_first", "at_once"]


async def click_and_come_back(
    service: RunningService, user: WizardUser, click: HeldDelivery, location: str, order: str
) -> tuple[AckResponse, httpx.Response]:
    """Slack delivers the held click and the browser comes back to ``location``, in ``order``;
    the modal does not move on before both happened."""
    view_id = user.view["id"]
    before = updates_of(user.fake, view_id)
    if order == "at_once":
        clicked, page = await asyncio.gather(click.deliver(), come_back(service, location))
        return clicked, page
    if order == "click_first":
        clicked = await click.deliver()
        await service.settled()
        assert updates_of(user.fake, view_id) == before
        return clicked, await come_back(service, location)
    page = await come_back(service, location)
    await service.settled()
    assert updates_of(user.fake, view_id) == before, "no modal was named yet"
    return await click.deliver(), page


@pytest.mark.parametrize("order", ORDERS)
async def test_the_modal_moves_on_once_whatever_comes_first_the_click_or_the_browser(
    service: RunningService,
    driver: Driver,
    fake_slack: FakeSlack,
    dataverse_app: DataverseEnvironmentPeer,
    order: str,
) -> None:
    user = WizardUser(driver, fake_slack)
    await start_dataverse(user)
    view_id = user.view["id"]
    before = updates_of(fake_slack, view_id)
    click = driver.hold_block_action(user.user, SIGN_IN)
    location = await log_in(sign_in_url(user), dataverse_app.tenant.identity)
    clicked, page = await click_and_come_back(service, user, click, location, order)
    assert clicked.status == 200
    assert page.status_code == 200 and "Signed in with Microsoft" in page.text
    await wait_for(lambda: "Signed in as" in user.text, STEP_TIMEOUT_S, what="the signed-in source step")
    await service.settled()
    assert updates_of(fake_slack, view_id) == before + 1
    shown = user.text

    # Slack delivers the click again (its retry): nothing changes.
    assert (await driver.resend(clicked, retry_num=1, retry_reason="http_timeout")).status == 200
    await service.settled()
    assert updates_of(fake_slack, view_id) == before + 1 and user.text == shown
    await user.give_source(environment_url=dataverse_app.api_url)
    await user.wait_step("objects")
