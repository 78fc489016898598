"""Sign in with Microsoft for SharePoint: the site is searched through Graph (the Graph fake)
with the signed-in user's token, and its lists become the objects."""

from __future__ import annotations

import pytest

from providers.microsoft import CLIENT_ID_ENV, CLIENT_SECRET_ENV, TENANT_ENV
from tests.fixtures.microsoft import SIGN_IN_CLIENT_ID, SIGN_IN_SECRET, TENANT, GraphSite
from tests.journeys.service import RunningService
from tests.journeys.test_signin_microsoft import come_back, sign_in
from tests.journeys.wizard_user import WizardUser
from tests.slack import Driver, FakeSlack, wait_for

pytestmark = pytest.mark.peers


async def test_a_developer_signs_in_searches_the_site_and_gets_its_lists(
    service: RunningService,
    driver: Driver,
    fake_slack: FakeSlack,
    graph_site: GraphSite,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv(CLIENT_ID_ENV, SIGN_IN_CLIENT_ID)
    monkeypatch.setenv(CLIENT_SECRET_ENV, SIGN_IN_SECRET)
    monkeypatch.setenv(TENANT_ENV, TENANT)
    monkeypatch.setenv("REQUESTS_CA_BUNDLE", str(graph_site.ca_bundle))
    monkeypatch.setenv("SSL_CERT_FILE", str(graph_site.ca_bundle))
    user = WizardUser(driver, fake_slack)
    await user.start()
    await user.choose_provider("sharepoint")
    await user.wait_step("source")
    assert "not available" not in user.text
    location = await sign_in(user, graph_site.tenant.identity)

    assert (await come_back(service, location)).status_code == 200
    await wait_for(lambda: "Search for the site" in user.text, what="the signed-in source step")
    assert await user.search("site", "Sales") == [graph_site.site.web_url]
    await user.give_source(site=graph_site.site.web_url)
    await user.wait_step("objects")
    assert set(await user.search("objects_rw")) == {"Project Tasks", "Documents"}
