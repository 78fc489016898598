"""My integrations, in the App Home tab and from `/ib list`: integration x environment -> version
and connection, page by page within Slack's block limits, and the Download button."""

from __future__ import annotations

import hashlib

from bot.app_keys import SECRET_BOX
from providers.model import Catalog
from storage import Integrations
from tests.journeys.publishing import (
    add_environment,
    connect,
    deploy_as_admin,
    publish_shop,
    readable,
    seed_integrations,
)
from tests.journeys.service import RunningService
from tests.journeys.wizard_user import visible_text
from tests.slack import BYSTANDER, DEVELOPER, Driver, FakeMessage, FakeSlack, SlackUser, wait_for
from tests.slack.blockkit import MAX_MESSAGE_BLOCKS, MAX_VIEW_BLOCKS


def plain(text: str) -> str:
    return (
        text.replace("&lt;", "<").replace("&gt;", ">").replace("&amp;", "&").replace("*", "").replace("`", "")
    )


async def open_home(driver: Driver, fake: FakeSlack, user: SlackUser) -> str:
    calls = len(fake.calls("views.publish"))
    ack = await driver.event(user, "app_home_opened")
    assert ack.status == 200
    await wait_for(lambda: len(fake.calls("views.publish")) > calls, what="the App Home")
    home = fake.home_view(user.id)
    assert home is not None
    return plain(visible_text(home))


async def list_reply(driver: Driver, fake: FakeSlack, user: SlackUser) -> FakeMessage:
    before = len(fake.ephemerals_for(user.id))
    ack = await driver.slash_command(user, "list")
    assert ack.status == 200
    await wait_for(lambda: len(fake.ephemerals_for(user.id)) > before, what="the answer to /ib list")
    return fake.ephemerals_for(user.id)[-1]


async def test_each_environment_shows_its_version_and_whether_a_connection_is_associated(
    service: RunningService, driver: Driver, fake_slack: FakeSlack, shop: Catalog
) -> None:
    await add_environment(service, "qa")
    await publish_shop(service, fake_slack, shop)
    await publish_shop(service, fake_slack, shop)  # 0.1.1 in dev
    await deploy_as_admin(service, fake_slack, "shop", "qa")
    await connect(service, service.app[SECRET_BOX], fake_slack, "shop", "dev", "erp-dev")

    home = await open_home(driver, fake_slack, DEVELOPER)
    listed = plain(readable(await list_reply(driver, fake_slack, DEVELOPER)))

    for shown in (home, listed):
        assert "Shop (shop) · SAP OData" in shown
        assert "dev · version 0.1.1 · :link: connection erp-dev" in shown
        assert "qa · version 0.1.1 · :warning: no connection yet" in shown
        assert shown.count("Change connection") == 1 and shown.count("Download") == 2
    assert "You have no integrations yet" in await open_home(driver, fake_slack, BYSTANDER)


async def test_many_integrations_are_shown_page_by_page_within_slacks_limits(
    service: RunningService, driver: Driver, fake_slack: FakeSlack
) -> None:
    modules = await seed_integrations(service, fake_slack, 45)

    message = await list_reply(driver, fake_slack, DEVELOPER)
    seen = set()
    while True:
        assert len(message.blocks or []) <= MAX_MESSAGE_BLOCKS
        text = plain(readable(message))
        seen |= {module for module in modules if f"({module})" in text}
        if "Next" not in text:
            break
        ephemerals = len(fake_slack.ephemerals_for(DEVELOPER.id))
        await driver.block_action(DEVELOPER, "integrations_next", message=message)
        await wait_for(lambda shown=text: plain(readable(message)) != shown, what="the next page")
        assert len(fake_slack.ephemerals_for(DEVELOPER.id)) == ephemerals  # replaced, not added
    assert seen == set(modules)
    assert "45 integrations · page 3 of 3" in text

    home = plain(await open_home(driver, fake_slack, DEVELOPER))
    assert len(fake_slack.home_view(DEVELOPER.id)["blocks"]) <= MAX_VIEW_BLOCKS  # type: ignore[index]
    assert "page 1 of 2" in home
    await driver.block_action(DEVELOPER, "integrations_next")
    await wait_for(
        lambda: "page 2 of 2" in visible_text(fake_slack.home_view(DEVELOPER.id) or {}),
        what="page 2 of the Home",
    )


async def test_download_posts_the_wheel_to_the_users_dm_and_only_for_those_who_may(
    service: RunningService, driver: Driver, fake_slack: FakeSlack, shop: Catalog
) -> None:
    await publish_shop(service, fake_slack, shop)
    await open_home(driver, fake_slack, DEVELOPER)
    home = fake_slack.home_view(DEVELOPER.id)
    assert home is not None
    # Someone else forging a click on the owner's button gets the package nowhere.
    await driver.block_action(BYSTANDER, "integration_download", block_id="env:shop:dev", view=home["id"])
    refusal = await wait_for(lambda: fake_slack.messages_for(BYSTANDER.id), what="the refusal")
    assert refusal[0].text == "You may not download shop: ask its owner or a developer of it."

    await driver.block_action(DEVELOPER, "integration_download", block_id="env:shop:dev")

    posted = await wait_for(
        lambda: next((m for m in fake_slack.messages_for(DEVELOPER.id) if m.files), None),
        what="the wheel in the DM",
    )
    (file_id,) = posted.files
    upload = fake_slack.files[file_id]
    async with service.database.session() as session:
        integration = await Integrations(session).by_module(fake_slack.workspace.team_id, "shop")
        assert integration is not None
        (version,) = await Integrations(session).versions(integration)
    assert upload.filename == version.wheel_filename == "shop-0.1.0-py3-none-any.whl"
    assert upload.content is not None and hashlib.sha256(upload.content).hexdigest() == version.sha256
    assert posted.channel == fake_slack.workspace.dm_channel(DEVELOPER.id)
    assert "pip install ./shop-0.1.0-py3-none-any.whl" in plain(posted.text or "")
    assert not any(m.files for m in fake_slack.messages_for(BYSTANDER.id))
