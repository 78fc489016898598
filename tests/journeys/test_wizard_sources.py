"""The source step: an uploaded file, pasted text, a URL; and what a user sees when reading fails."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest
from aiohttp import web

from storage import Database
from tests.fixtures.corpora import corpus_file
from tests.journeys.documents import LIBRARY_V4
from tests.journeys.service import RunningService
from tests.journeys.wizard_user import WizardUser
from tests.peers.cap import CapServer
from tests.slack import DEVELOPER, Driver, FakeSlack, wait_for


async def open_source_step(user: WizardUser) -> None:
    await user.start()
    await user.choose_provider("sap-odata")
    await user.wait_step("source")


async def test_an_uploaded_metadata_file_is_read_from_slack(
    driver: Driver, fake_slack: FakeSlack, service: RunningService
) -> None:
    user = WizardUser(driver, fake_slack)
    edmx = corpus_file("sap-v2/GWSAMPLE_BASIC.edmx").read_bytes()
    upload = fake_slack.workspace.add_user_file(DEVELOPER.id, "GWSAMPLE_BASIC.edmx", edmx, "application/xml")
    await open_source_step(user)

    await user.submit({"metadata_file": [upload]})
    await user.wait_step("objects")

    assert "GWSAMPLE_BASIC" in user.text and "16 objects" in user.text
    # Value helps (VH_*) cannot be changed in SAP: the picker says so before anyone chooses them.
    answer = await driver.block_suggestion(DEVELOPER, "objects_rw", "VH_Sex")
    [option] = answer.json["options"]
    assert option["value"] == "VH_SexSet" and option["description"]["text"] == "read only in the system"
    await user.back()
    await user.wait_step("source")
    assert "GWSAMPLE_BASIC.edmx" in user.text  # what is loaded now, kept when Next is pressed unchanged
    await user.submit()
    await user.wait_step("objects")


async def test_pasted_metadata_is_read_and_shown_again_after_back(
    driver: Driver, fake_slack: FakeSlack, service: RunningService
) -> None:
    user = WizardUser(driver, fake_slack)
    await open_source_step(user)

    await user.submit({"metadata_text": LIBRARY_V4})
    await user.wait_step("objects")
    assert set(await user.search("objects_ro")) == {"Books", "Authors"}

    await user.back()
    await user.wait_step("source")
    assert user.initial_value("metadata_text") == LIBRARY_V4.strip()


async def test_a_wrong_password_is_a_warning_on_the_source_step_and_the_draft_stays(
    driver: Driver, fake_slack: FakeSlack, service: RunningService, cap_server: CapServer, database: Database
) -> None:
    user = WizardUser(driver, fake_slack)
    await open_source_step(user)
    draft_id = user.view["private_metadata"]

    await user.submit({"metadata_url": cap_server.v4_url, "user": "alice", "password": "not-her-password"})
    await wait_for_warning(user)

    assert "401" in user.text or "user and password" in user.text.lower()
    assert user.initial_value("metadata_url") == cap_server.v4_url
    assert user.initial_value("user") == "alice"
    assert user.initial_value("password") == ""  # a secret is never sent back into a view
    draft = await service.draft(draft_id)
    assert (draft.status, draft.step) == ("open", "source")

    await user.submit({"password": "alice-secret"})
    await user.wait_step("objects")


@pytest.fixture
async def not_odata_url() -> AsyncIterator[str]:
    """A web page on 127.0.0.1 where a user might paste the wrong link."""

    async def page(request: web.Request) -> web.Response:
        return web.Response(text="<html><body>Welcome</body></html>", content_type="text/html")

    app = web.Application()
    app.router.add_get("/{tail:.*}", page)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", 0).start()
    try:
        yield f"http://127.0.0.1:{runner.addresses[0][1]}/portal/"
    finally:
        await runner.cleanup()


async def test_a_url_that_is_not_odata_metadata_says_so(
    driver: Driver, fake_slack: FakeSlack, service: RunningService, not_odata_url: str
) -> None:
    user = WizardUser(driver, fake_slack)
    await open_source_step(user)

    await user.submit({"metadata_url": not_odata_url})
    await wait_for_warning(user)

    assert "EDMX" in user.text or "metadata" in user.text.lower()
    assert "Traceback" not in user.text


async def test_a_file_link_outside_slack_is_refused_before_anything_is_fetched(
    driver: Driver, fake_slack: FakeSlack, service: RunningService, not_odata_url: str
) -> None:
    user = WizardUser(driver, fake_slack)
    upload = fake_slack.workspace.add_user_file(DEVELOPER.id, "library.xml", LIBRARY_V4.encode(), "text/xml")
    # The bot token goes with every download: a link to another host must never get it.
    forged = {**upload, "url_private_download": not_odata_url + "library.xml"}
    await open_source_step(user)

    ack = await user.submit({"metadata_file": [forged]})

    assert "download link" in user.errors(ack)["source_metadata_file"]
    assert user.step == "source"


async def wait_for_warning(user: WizardUser) -> None:
    await wait_for(
        lambda: user.step == "source" and ":warning:" in user.text, what="a warning on the source step"
    )


async def test_a_provider_that_signs_in_takes_a_saved_metadata_file_instead(
    driver: Driver, fake_slack: FakeSlack, service: RunningService
) -> None:
    user = WizardUser(driver, fake_slack)
    edmx = corpus_file("dataverse/dynamics-crm-v9.1.xml").read_bytes()
    upload = fake_slack.workspace.add_user_file(DEVELOPER.id, "dataverse.xml", edmx, "application/xml")
    await user.start()
    await user.choose_provider("dataverse")
    await user.wait_step("source")
    assert "Sign in with Microsoft* from Slack is not available" in user.text

    await user.submit({"metadata_file": [upload]})
    await user.wait_step("objects")

    assert "accounts" in await user.search("objects_rw", "account")
