"""Back and Change never lose input; drafts survive a restart; /ib new offers to resume."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from storage import Database, Drafts
from tests.journeys.documents import LIBRARY_V4
from tests.journeys.service import RunningService, running_service, slack_settings
from tests.journeys.wizard_user import WizardUser
from tests.slack import DEVELOPER, Driver, FakeSlack


async def at_objects(user: WizardUser) -> None:
    await user.start()
    await user.choose_provider()
    await user.give_source(metadata_text=LIBRARY_V4)
    await user.wait_step("objects")


def type_into(fake: FakeSlack, user: WizardUser, action_id: str, text: str) -> None:
    """The user types without submitting (Slack's client keeps it in the view's state)."""
    fake.workspace.type_into(
        user.view["id"], {action_id: {action_id: {"type": "plain_text_input", "value": text}}}
    )


async def test_back_from_the_review_to_the_objects_and_forward_again_keeps_everything(
    driver: Driver, fake_slack: FakeSlack, service: RunningService
) -> None:
    user = WizardUser(driver, fake_slack)
    await at_objects(user)
    await user.pick_objects(read_write=["Books"], read_only=["Authors"], customize="Books: title")
    await user.fill_settings(application_name="Library", module_name="my_library", description="Our books")
    await user.wait_step("review")
    review = user.text

    await user.back(to="objects")
    await user.wait_step("objects")
    assert user.initial_options("objects_rw") == ["Books"]
    assert user.initial_options("objects_ro") == ["Authors"]
    assert user.initial_value("customize") == "Books: title"

    await user.submit()
    await user.wait_step("settings")
    assert user.initial_value("application_name") == "Library"
    assert user.initial_value("module_name") == "my_library"
    assert user.initial_value("description") == "Our books"
    await user.submit()
    await user.wait_step("review")
    assert user.text == review


async def test_back_keeps_what_was_typed_but_not_submitted(
    driver: Driver, fake_slack: FakeSlack, service: RunningService
) -> None:
    user = WizardUser(driver, fake_slack)
    await at_objects(user)
    await user.pick_objects(read_write=["Books"])
    await user.wait_step("settings")
    type_into(fake_slack, user, "description", "Half-written thoughts")

    await user.back()
    await user.wait_step("objects")
    type_into(fake_slack, user, "customize", "Books.pages = page_count")
    await user.back()
    await user.wait_step("source")
    await user.submit()  # the pasted metadata is still there: Next keeps it
    await user.wait_step("objects")

    assert user.initial_value("customize") == "Books.pages = page_count"
    await user.submit()
    await user.wait_step("settings")
    assert user.initial_value("description") == "Half-written thoughts"


@asynccontextmanager
async def app_instance(
    database_url: str, fake: FakeSlack, signing_secret: str
) -> AsyncIterator[tuple[RunningService, Driver]]:
    """One `ib serve` process's worth of app: its own database engine, caches and tasks."""
    database = Database(database_url)
    try:
        settings = slack_settings(database_url, fake, signing_secret)
        async with (
            running_service(settings, database) as service,
            Driver(service.url, signing_secret, fake) as driver,
        ):
            yield service, driver
    finally:
        await database.dispose()


async def test_a_restart_in_the_middle_of_the_wizard_resumes_where_the_user_was(
    database: Database,
    database_url: str,
    fake_slack: FakeSlack,
    slack_signing_secret: str,
    allow_private_urls: None,
) -> None:
    async with app_instance(database_url, fake_slack, slack_signing_secret) as (_, driver):
        user = WizardUser(driver, fake_slack)
        await at_objects(user)
        await user.pick_objects(read_write=["Books"], customize="Books: title")
        await user.wait_step("settings")
        draft_id = user.view["private_metadata"]

    async with app_instance(database_url, fake_slack, slack_signing_secret) as (_, driver):
        user = WizardUser(driver, fake_slack)
        await user.start()
        await user.wait_step("resume")
        assert "Settings" in user.text and "Resume" in user.text
        assert user.view["private_metadata"] == draft_id

        await user.click("wizard_resume")
        await user.wait_step("settings")
        await user.back()  # the catalog comes back from the database: the search still works
        await user.wait_step("objects")
        assert await user.search("objects_rw", "bo") == ["Books"]
        assert user.initial_value("customize") == "Books: title"
        await user.submit()
        await user.fill_settings(module_name="library_after_restart")
        await user.wait_step("review")
        assert "library_after_restart" in user.text

    async with database.session() as session:
        drafts = await Drafts(session).open_for(DEVELOPER.id, fake_slack.workspace.team_id)
    assert [d.id for d in drafts] == [draft_id]


async def test_start_over_leaves_the_old_draft_and_begins_a_new_one(
    driver: Driver, fake_slack: FakeSlack, service: RunningService
) -> None:
    user = WizardUser(driver, fake_slack)
    await at_objects(user)
    old_draft = user.view["private_metadata"]

    await user.start()
    await user.wait_step("resume")
    await user.click("wizard_start_over")
    await user.wait_step("provider")

    assert user.view["private_metadata"] != old_draft
    async with service.database.session() as session:
        drafts = Drafts(session)
        assert (await drafts.require(old_draft)).status == "abandoned"
        assert [d.id for d in await drafts.open_for(DEVELOPER.id, fake_slack.workspace.team_id)] == [
            user.view["private_metadata"]
        ]


async def test_the_create_integration_shortcut_opens_the_wizard(
    driver: Driver, fake_slack: FakeSlack, service: RunningService
) -> None:
    user = WizardUser(driver, fake_slack)
    ack = await driver.shortcut(DEVELOPER, "create_integration")
    assert ack.status == 200
    await user.wait_step("provider")
    assert "Which system should the integration talk to?" in user.text
