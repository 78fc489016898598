"""Authorize Salesforce from the wizard's source step: the browser goes to the (fake) org's
authorize page and comes back to `ib serve`'s callback; the modal moves on to the org's objects."""

from __future__ import annotations

import logging
from collections.abc import Iterator
from urllib.parse import urlsplit

import httpx
import pytest
from sqlalchemy import select

from bot.app_keys import SECRET_BOX
from bot.log import QUIET_LOGGERS
from storage import Database, Integrations
from storage.models import OAuthState
from tests.fixtures.salesforce import CALLBACK_URL, SalesforceOrg
from tests.journeys.service import RunningService
from tests.journeys.test_signin_microsoft import ORDERS, click_and_come_back, updates_of
from tests.journeys.test_wizard_happy_path import database_files, jobs_of
from tests.journeys.wizard_user import WizardUser
from tests.slack import Driver, FakeSlack, wait_for

pytestmark = pytest.mark.peers

SIGN_IN = "wizard_sign_in"


@pytest.fixture
def salesforce_app(salesforce_org: SalesforceOrg, monkeypatch: pytest.MonkeyPatch) -> Iterator[SalesforceOrg]:
    """The service's own Salesforce client app is the fake org's; the org's CA is trusted."""
    use_org(salesforce_org, monkeypatch)
    yield salesforce_org
    salesforce_org.fake.deny_consent = False


def use_org(org: SalesforceOrg, monkeypatch: pytest.MonkeyPatch) -> None:
    """The service signs in with the fake org's client app, and trusts the org's CA."""
    monkeypatch.setenv("IB_SALESFORCE_CLIENT_ID", org.app.consumer_key)
    monkeypatch.setenv("IB_SALESFORCE_LOGIN_URL", org.fake.base_url)
    monkeypatch.setenv("SSL_CERT_FILE", str(org.fake.ca_path))
    monkeypatch.setenv("REQUESTS_CA_BUNDLE", str(org.fake.ca_path))


def sign_in_url(user: WizardUser) -> str:
    for block in user.view["blocks"]:
        for element in block.get("elements", []):
            if element.get("action_id") == SIGN_IN:
                return str(element["url"])
    raise AssertionError(f"no sign-in button in the view:\n{user.text}")


async def authorize(user: WizardUser, org: SalesforceOrg) -> str:
    """Click Authorize Salesforce and log in: the callback URL the org sends the browser to (at
    once: the app may still be noting the click when the browser comes back)."""
    url = sign_in_url(user)
    await user.click(SIGN_IN)
    return await log_in(url, org)


async def log_in(url: str, org: SalesforceOrg) -> str:
    """The browser at the Authorize button's URL, already logged in: where the org sends it."""
    async with httpx.AsyncClient(verify=org.http.tls()) as browser:
        answer = await browser.get(url)
    assert answer.status_code == 302, answer.text
    location = answer.headers["location"]
    assert location.startswith(CALLBACK_URL + "?")
    return location


async def come_back(service: RunningService, location: str) -> httpx.Response:
    """The browser follows the org's redirect to the service (ib.example.test is this app)."""
    async with httpx.AsyncClient() as browser:
        return await browser.get(f"{service.url}{urlsplit(location).path}?{urlsplit(location).query}")


async def stored_states(database: Database) -> list[OAuthState]:
    async with database.session() as session:
        return list(await session.scalars(select(OAuthState)))


async def test_a_developer_authorizes_salesforce_and_publishes_from_the_live_org(
    service: RunningService,
    driver: Driver,
    fake_slack: FakeSlack,
    salesforce_app: SalesforceOrg,
    database: Database,
    database_url: str,
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.DEBUG)
    for name in QUIET_LOGGERS:
        caplog.set_level(logging.WARNING, logger=name)
    user = WizardUser(driver, fake_slack)
    await user.start()
    await user.choose_provider("salesforce")
    await user.wait_step("source")
    assert "not available" not in user.text
    location = await authorize(user, salesforce_app)

    page = await come_back(service, location)
    assert page.status_code == 200 and "Signed in to Salesforce" in page.text
    await user.wait_step("objects")
    assert set(await user.search("objects_rw")) >= {"Account", "Whizbang"}

    await user.pick_objects(read_write=["Account"], read_only=["User"])
    await user.fill_settings(application_name="Sales accounts", module_name="sales_accounts")
    review = await user.wait_step("review")
    await user.submit()
    await user.wait_step("publishing")
    [queued] = await wait_for(lambda: jobs_of(database, review["private_metadata"]), what="the publish job")
    job = await service.publisher.wait(queued.id, timeout=120)
    assert (job.state, job.error) == ("published", None)
    async with database.session() as session:
        integration = await Integrations(session).by_module(fake_slack.workspace.team_id, "sales_accounts")
        assert integration is not None
        [version] = await Integrations(session).versions(integration)
    assert {o["name"]: o["access"] for o in version.spec["objects"]} == {
        "Account": "read-write",
        "User": "read-only",
    }

    # The tokens are kept by the service only, encrypted.
    box = service.app[SECRET_BOX]
    [kept] = [
        kept
        for row in await stored_states(database)
        if "access_token" in (kept := box.decrypt_json(row.code_verifier))
    ]
    tokens = [kept["access_token"], kept["refresh_token"]]
    assert all(tokens)
    for token in tokens:
        assert token not in fake_slack.all_text_sent()
        assert token not in caplog.text
        for path in database_files(database_url):
            assert token.encode() not in path.read_bytes(), path
    draft = await service.draft(review["private_metadata"])
    assert not any(token in str(draft.state) for token in tokens)

    # The same callback again (a replay) is refused and changes nothing.
    again = await come_back(service, location)
    assert again.status_code == 400 and "not valid" in again.text


@pytest.mark.parametrize("order", ORDERS)
async def test_the_modal_moves_on_once_whatever_comes_first_the_click_or_the_browser(
    service: RunningService,
    driver: Driver,
    fake_slack: FakeSlack,
    salesforce_app: SalesforceOrg,
    order: str,
) -> None:
    user = WizardUser(driver, fake_slack)
    await user.start()
    await user.choose_provider("salesforce")
    await user.wait_step("source")
    view_id = user.view["id"]
    before = updates_of(fake_slack, view_id)
    click = driver.hold_block_action(user.user, SIGN_IN)
    location = await log_in(sign_in_url(user), salesforce_app)
    clicked, page = await click_and_come_back(service, user, click, location, order)
    assert clicked.status == 200
    assert page.status_code == 200 and "Signed in to Salesforce" in page.text
    await user.wait_step("objects")
    await service.settled()
    assert updates_of(fake_slack, view_id) == before + 1
    assert set(await user.search("objects_rw")) >= {"Account", "Whizbang"}
    shown = user.text

    # Slack delivers the click again (its retry): nothing changes.
    assert (await driver.resend(clicked, retry_num=1, retry_reason="http_timeout")).status == 200
    await service.settled()
    assert updates_of(fake_slack, view_id) == before + 1 and user.text == shown


async def test_a_forged_state_is_refused_and_changes_nothing(
    service: RunningService, driver: Driver, fake_slack: FakeSlack, salesforce_app: SalesforceOrg
) -> None:
    user = WizardUser(driver, fake_slack)
    await user.start()
    await user.choose_provider("salesforce")
    await user.wait_step("source")
    location = await authorize(user, salesforce_app)
    code = dict(part.split("=", 1) for part in urlsplit(location).query.split("&"))["code"]

    forged = await come_back(service, f"{CALLBACK_URL}?code={code}&state=forged-state")
    assert forged.status_code == 400 and "not valid" in forged.text and "forged" in forged.text
    await service.settled()
    assert user.step == "source" and ":warning:" not in str(user.view["blocks"])

    # The genuine callback still works afterwards: the forged one used nothing up.
    assert (await come_back(service, location)).status_code == 200
    await user.wait_step("objects")


async def test_denied_consent_is_shown_on_the_source_step(
    service: RunningService, driver: Driver, fake_slack: FakeSlack, salesforce_app: SalesforceOrg
) -> None:
    user = WizardUser(driver, fake_slack)
    await user.start()
    await user.choose_provider("salesforce")
    await user.wait_step("source")
    salesforce_app.fake.deny_consent = True
    location = await authorize(user, salesforce_app)

    page = await come_back(service, location)
    assert page.status_code == 200 and "consent was denied" in page.text
    await service.settled()
    assert user.step == "source" and "consent was denied" in user.text
    # A fresh button to try again.
    salesforce_app.fake.deny_consent = False
    location = await authorize(user, salesforce_app)
    assert (await come_back(service, location)).status_code == 200
    await user.wait_step("objects")


def sign_in_host(user: WizardUser) -> str:
    try:
        return urlsplit(sign_in_url(user)).netloc
    except AssertionError:
        return ""


async def choose(user: WizardUser, action_id: str, value: str) -> None:
    """Pick or type (and press Enter) in a source field that dispatches its action."""
    ack = await user.driver.block_action(user.user, action_id, value)
    assert ack.status == 200, ack


def token_hosts(org: SalesforceOrg) -> list[str]:
    return [host for host, path in org.fake.hosts if path == "/services/oauth2/token"]


@pytest.fixture
def second_host(salesforce_app: SalesforceOrg, monkeypatch: pytest.MonkeyPatch) -> str:
    """The fake org answers as localhost too: the sandbox login host here (production: 127.0.0.1)."""
    port = urlsplit(salesforce_app.fake.base_url).port
    monkeypatch.setenv("IB_SALESFORCE_SANDBOX_LOGIN_URL", f"https://localhost:{port}")
    return f"localhost:{port}"


async def test_a_sandbox_org_is_authorized_at_the_sandbox_login_host(
    service: RunningService,
    driver: Driver,
    fake_slack: FakeSlack,
    salesforce_app: SalesforceOrg,
    second_host: str,
) -> None:
    user = WizardUser(driver, fake_slack)
    await user.start()
    await user.choose_provider("salesforce")
    await user.wait_step("source")
    production = urlsplit(salesforce_app.fake.base_url).netloc
    assert sign_in_host(user) == production

    await choose(user, "environment", "sandbox")
    await wait_for(lambda: sign_in_host(user) == second_host, what="the sandbox sign-in button")
    tokens_before = len(token_hosts(salesforce_app))
    assert (await come_back(service, await authorize(user, salesforce_app))).status_code == 200
    await user.wait_step("objects")
    # The code went back to the host that issued it.
    assert token_hosts(salesforce_app)[tokens_before:] == [second_host]

    # The choice is part of the draft: back on the source step it is still the sandbox.
    await user.back()
    await user.wait_step("source")
    [select] = [b["element"] for b in user.view["blocks"] if b.get("block_id") == "source_environment"]
    assert select["initial_option"]["value"] == "sandbox"
    assert sign_in_host(user) == second_host


async def test_a_my_domain_is_checked_and_then_used_for_the_sign_in(
    service: RunningService,
    driver: Driver,
    fake_slack: FakeSlack,
    salesforce_app: SalesforceOrg,
    second_host: str,
) -> None:
    user = WizardUser(driver, fake_slack)
    await user.start()
    await user.choose_provider("salesforce")
    await user.wait_step("source")
    clicked = len(fake_slack.calls("views.update"))

    for typed, says in (
        ("https://login.evil.example", "names login.evil.example, which is not a My Domain"),
        ("http://acme.my.salesforce.com", "Salesforce login URLs start with https://"),
    ):
        await choose(user, "my_domain", typed)
        await wait_for(lambda says=says: says in user.text, what=f"the problem with {typed}")
        assert sign_in_host(user) == "", "no button to a host that is not a My Domain"
        assert user.initial_value("my_domain") == typed  # kept, to be corrected
    assert len(fake_slack.calls("views.update")) > clicked

    # A My Domain wins over the org kind (still production here).
    await choose(user, "my_domain", f"https://{second_host}")
    await wait_for(lambda: sign_in_host(user) == second_host, what="the My Domain sign-in button")
    assert "not a My Domain" not in user.text
    tokens_before = len(token_hosts(salesforce_app))
    assert (await come_back(service, await authorize(user, salesforce_app))).status_code == 200
    await user.wait_step("objects")
    assert token_hosts(salesforce_app)[tokens_before:] == [second_host]


async def test_an_ended_design_session_loses_nothing_and_a_new_authorization_continues(
    service: RunningService,
    driver: Driver,
    fake_slack: FakeSlack,
    salesforce_app: SalesforceOrg,
    database: Database,
) -> None:
    """The wizard reads the org's objects right after the callback, so a design-time session that
    expires or is revoked afterwards (the user still choosing objects) costs nothing: the choices
    and the objects read stay in the draft, Next keeps them, and authorizing again (to read the
    org anew) comes back to the objects step with the choices made."""
    user = WizardUser(driver, fake_slack)
    await user.start()
    await user.choose_provider("salesforce")
    await user.wait_step("source")
    assert (await come_back(service, await authorize(user, salesforce_app))).status_code == 200
    await user.pick_objects(read_write=["Account"], read_only=["User"], customize="Account.Name = title")
    await user.wait_step("settings")

    salesforce_app.fake.expire_sessions(revoke=True)
    await user.back()
    await user.wait_step("objects")
    await user.back()
    await user.wait_step("source")
    assert "Loaded now" in user.text and sign_in_host(user)  # and a fresh button, to read it anew
    await user.submit({})
    await user.wait_step("objects")
    assert (user.initial_options("objects_rw"), user.initial_options("objects_ro")) == (["Account"], ["User"])
    assert user.initial_value("customize") == "Account.Name = title"

    await user.back()
    await user.wait_step("source")
    assert (await come_back(service, await authorize(user, salesforce_app))).status_code == 200
    await user.wait_step("objects")
    assert (user.initial_options("objects_rw"), user.initial_options("objects_ro")) == (["Account"], ["User"])
    assert user.initial_value("customize") == "Account.Name = title"
    chosen = {"objects_rw": ["Account"], "objects_ro": ["User"], "customize": "Account.Name = title"}
    await user.submit(chosen)
    await user.fill_settings(application_name="Renewed", module_name="renewed_accounts")
    review = await user.wait_step("review")
    await user.submit()
    await user.wait_step("publishing")
    [queued] = await wait_for(lambda: jobs_of(database, review["private_metadata"]), what="the publish job")
    job = await service.publisher.wait(queued.id, timeout=120)
    assert (job.state, job.error) == ("published", None)


def describes_since(org: SalesforceOrg, before: int) -> list[str]:
    return sorted(org.fake.described[before:])


async def signed_in_at_objects(service: RunningService, user: WizardUser, org: SalesforceOrg) -> int:
    """Sign in from a new draft: how many describes the org had answered before."""
    await user.start()
    await user.choose_provider("salesforce")
    await user.wait_step("source")
    before = len(org.fake.described)
    assert (await come_back(service, await authorize(user, org))).status_code == 200
    await user.wait_step("objects")
    return before


async def test_only_the_objects_picked_are_described(
    service: RunningService, driver: Driver, fake_slack: FakeSlack, salesforce_app: SalesforceOrg
) -> None:
    """The org is listed at the sign-in (describe-global only, however many objects it has); the
    objects a user picks are described when the objects step is submitted, and only those."""
    user = WizardUser(driver, fake_slack)
    requests_before = len(salesforce_app.fake.requests)
    before = await signed_in_at_objects(service, user, salesforce_app)
    assert describes_since(salesforce_app, before) == []
    paths = [path for _, path in salesforce_app.fake.requests[requests_before:]]
    assert any(path.endswith("/sobjects") for path in paths)  # describe-global
    assert await user.search("objects_rw", "Audit") == ["Audit_Event__e"]

    await user.pick_objects(read_write=["Whizbang"], read_only=["User"], customize="Whizbang.Name = title")
    await user.wait_step("settings")
    assert describes_since(salesforce_app, before) == ["User", "Whizbang"]

    # Back and Next again: described already, nothing is asked of the org.
    await user.back()
    await user.wait_step("objects")
    await user.submit(
        {"objects_rw": ["Whizbang"], "objects_ro": ["User"], "customize": "Whizbang.Name = title"}
    )
    await user.wait_step("settings")
    assert describes_since(salesforce_app, before) == ["User", "Whizbang"]

    # A customization naming a field the described object lacks is shown on the objects step.
    await user.back()
    await user.wait_step("objects")
    await user.pick_objects(read_write=["Account"], customize="Account.Nope__c = nope")
    await wait_for(lambda: ":warning:" in user.text, what="the problem with the customization")
    assert user.step == "objects" and "Nope__c" in user.text
    assert describes_since(salesforce_app, before) == ["Account", "User", "Whizbang"]


async def test_a_session_that_expired_before_the_objects_step_is_renewed(
    service: RunningService, driver: Driver, fake_slack: FakeSlack, salesforce_app: SalesforceOrg
) -> None:
    user = WizardUser(driver, fake_slack)
    before = await signed_in_at_objects(service, user, salesforce_app)
    tokens_before = len(token_hosts(salesforce_app))
    salesforce_app.fake.expire_sessions()

    await user.pick_objects(read_write=["Account"])
    await user.wait_step("settings")
    assert describes_since(salesforce_app, before) == ["Account"]
    assert len(token_hosts(salesforce_app)) == tokens_before + 1  # one refresh_token grant


async def test_a_revoked_sign_in_asks_to_sign_in_again_and_keeps_the_choices(
    service: RunningService, driver: Driver, fake_slack: FakeSlack, salesforce_app: SalesforceOrg
) -> None:
    user = WizardUser(driver, fake_slack)
    before = await signed_in_at_objects(service, user, salesforce_app)
    salesforce_app.fake.expire_sessions(revoke=True)

    await user.pick_objects(read_write=["Account"], read_only=["User"], customize="Account.Name = title")
    await user.wait_step("source")
    assert "sign in again" in user.text.lower() and sign_in_host(user), user.text
    assert describes_since(salesforce_app, before) == []

    assert (await come_back(service, await authorize(user, salesforce_app))).status_code == 200
    await user.wait_step("objects")
    assert (user.initial_options("objects_rw"), user.initial_options("objects_ro")) == (["Account"], ["User"])
    assert user.initial_value("customize") == "Account.Name = title"
    await user.submit(
        {"objects_rw": ["Account"], "objects_ro": ["User"], "customize": "Account.Name = title"}
    )
    await user.wait_step("settings")
    assert describes_since(salesforce_app, before) == ["Account", "User"]
