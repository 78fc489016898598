"""Sign in with Microsoft for SharePoint: the site is searched through Graph (the Graph fake)
with the signed-in user's token, and its lists become the objects."""

from __future__ import annotations

import asyncio
import json

import pytest

from handlers.views.wizard import SEARCH_FAILED
from providers.microsoft import CLIENT_ID_ENV, CLIENT_SECRET_ENV, TENANT_ENV
from tests.fixtures.microsoft import SIGN_IN_CLIENT_ID, SIGN_IN_SECRET, TENANT, GraphSite
from tests.journeys.service import RunningService
from tests.journeys.test_signin_microsoft import SIGN_IN, come_back, sign_in
from tests.journeys.wizard_user import STEP_TIMEOUT_S, WizardUser
from tests.slack import Driver, FakeSlack, SlackContractError, wait_for

pytestmark = pytest.mark.peers


@pytest.fixture
def sharepoint_app(graph_site: GraphSite, monkeypatch: pytest.MonkeyPatch) -> GraphSite:
    """The service's own sign-in app, trusting the identity peer and the Graph fake."""
    monkeypatch.setenv(CLIENT_ID_ENV, SIGN_IN_CLIENT_ID)
    monkeypatch.setenv(CLIENT_SECRET_ENV, SIGN_IN_SECRET)
    monkeypatch.setenv(TENANT_ENV, TENANT)
    monkeypatch.setenv("REQUESTS_CA_BUNDLE", str(graph_site.ca_bundle))
    monkeypatch.setenv("SSL_CERT_FILE", str(graph_site.ca_bundle))
    return graph_site


async def start_sharepoint(user: WizardUser) -> None:
    await user.start()
    await user.choose_provider("sharepoint")
    await user.wait_step("source")


async def test_a_developer_signs_in_searches_the_site_and_gets_its_lists(
    service: RunningService, driver: Driver, fake_slack: FakeSlack, sharepoint_app: GraphSite
) -> None:
    graph_site = sharepoint_app
    user = WizardUser(driver, fake_slack)
    await start_sharepoint(user)
    assert "not available" not in user.text
    location = await sign_in(user, graph_site.tenant.identity)

    assert (await come_back(service, location)).status_code == 200
    await wait_for(
        lambda: "Search for the site" in user.text, STEP_TIMEOUT_S, what="the signed-in source step"
    )
    assert await user.search("site", "Sales") == [graph_site.site.web_url]
    await user.give_source(site=graph_site.site.web_url)
    await user.wait_step("objects")
    assert set(await user.search("objects_rw")) == {"Project Tasks", "Documents"}


async def test_the_site_search_renews_the_sign_in_and_asks_to_sign_in_again_when_it_cannot(
    service: RunningService, driver: Driver, fake_slack: FakeSlack, sharepoint_app: GraphSite
) -> None:
    identity = sharepoint_app.tenant.identity
    site_url = sharepoint_app.site.web_url
    # Tokens that expire within the renewal margin, as an hour-old sign-in's do.
    await asyncio.to_thread(identity.user_token_lifetime, 30)
    try:
        user = WizardUser(driver, fake_slack)
        await start_sharepoint(user)
        assert (await come_back(service, await sign_in(user, identity))).status_code == 200
        await wait_for(lambda: "Signed in as" in user.text, STEP_TIMEOUT_S, what="the signed-in source step")
        draft_id = user.view["private_metadata"]
        await asyncio.to_thread(identity.clear_token_requests)

        assert await user.search("site", "Sales") == [site_url]
        assert await user.search("site", "Sal") == [site_url]
        renewals = [
            r for r in await asyncio.to_thread(identity.token_requests) if r["grant_type"] == "refresh_token"
        ]
        assert [r["status"] for r in renewals] == [200, 200]  # each renewal's refresh token works

        await asyncio.to_thread(identity.revoke_refresh_tokens)
        with pytest.raises(SlackContractError, match="no result"):  # what Slack's client shows
            await user.search("site", "Sales")
        await wait_for(
            lambda: "again" in user.text and SIGN_IN in str(user.view["blocks"]),
            STEP_TIMEOUT_S,
            what="a new sign-in",
        )
        assert user.step == "source" and "Signed in as" not in user.text
        assert "the sign-in has expired" in user.text
        assert (await service.draft(draft_id)).status == "open"

        # Signing in again continues the same draft.
        assert (await come_back(service, await sign_in(user, identity))).status_code == 200
        await wait_for(
            lambda: "Signed in as" in user.text, STEP_TIMEOUT_S, what="the signed-in source step again"
        )
        assert user.view["private_metadata"] == draft_id
        assert await user.search("site", "Sales") == [site_url]
    finally:
        await asyncio.to_thread(identity.user_token_lifetime, None)


async def test_a_throttled_site_search_says_so_and_the_search_works_once_it_passes(
    service: RunningService, driver: Driver, fake_slack: FakeSlack, sharepoint_app: GraphSite
) -> None:
    graph_site = sharepoint_app
    user = WizardUser(driver, fake_slack)
    await start_sharepoint(user)
    assert (await come_back(service, await sign_in(user, graph_site.tenant.identity))).status_code == 200
    await wait_for(lambda: "Signed in as" in user.text, STEP_TIMEOUT_S, what="the signed-in source step")

    # A storm asking for longer than an options answer may wait: the reason is the only option.
    graph_site.fake.throttle(5, retry_after=30)
    ack = await driver.block_suggestion(user.user, "site", "Sales")
    [shown] = json.loads(ack.text)["options"]
    assert "throttling" in shown["text"]["text"] and "30 s" in shown["text"]["text"]
    assert shown["value"] == SEARCH_FAILED
    refused = await user.give_source(site=SEARCH_FAILED)
    assert WizardUser.errors(refused) == {
        "source_site": "That search did not run: search again and pick one of its results."
    }
    assert user.step == "source"

    graph_site.fake.throttle(0)
    assert await user.search("site", "Sales") == [graph_site.site.web_url]
