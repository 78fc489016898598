"""`/ib` always answers, and the object search finds what a user types among hundreds of objects."""

from __future__ import annotations

from tests.fixtures.corpora import corpus_file
from tests.journeys.service import RunningService
from tests.journeys.wizard_user import WizardUser
from tests.slack import DEVELOPER, Driver, FakeSlack


async def reply_to(driver: Driver, fake: FakeSlack, text: str) -> str:
    ack = await driver.slash_command(DEVELOPER, text)
    assert ack.status == 200
    return str(fake.ephemerals_for(DEVELOPER.id)[-1].text)


async def test_help_and_unknown_subcommands_answer(
    driver: Driver, fake_slack: FakeSlack, service: RunningService
) -> None:
    help_text = await reply_to(driver, fake_slack, "help")
    for line in (
        "`/ib new`",
        "`/ib list`",
        "`/ib connections`",
        "`/ib deploy <integration> <env>`",
        "`/ib help`",
    ):
        assert line in help_text
    assert await reply_to(driver, fake_slack, "") == help_text

    unknown = await reply_to(driver, fake_slack, "frobnicate <@U123> `now`")
    assert unknown.startswith("Sorry, `/ib frobnicate` is not something I know.")
    assert help_text in unknown


async def upload_and_open_objects(user: WizardUser, fake: FakeSlack, corpus: str) -> None:
    data = corpus_file(corpus).read_bytes()
    upload = fake.workspace.add_user_file(DEVELOPER.id, corpus.rsplit("/", 1)[-1], data, "application/xml")
    await user.start()
    await user.choose_provider()
    await user.give_source(metadata_file=[upload])
    await user.wait_step("objects")


async def test_the_search_over_269_dataverse_tables_answers_at_most_100_prefix_matches_first(
    driver: Driver, fake_slack: FakeSlack, service: RunningService
) -> None:
    user = WizardUser(driver, fake_slack)
    await upload_and_open_objects(user, fake_slack, "dataverse/dynamics-crm-v9.1.xml")
    assert "269 objects" in user.text

    everything = await user.search("objects_rw")
    accounts = await user.search("objects_rw", "ACCOUNT")
    calendars = await user.search("objects_ro", "calendar")

    assert len(everything) == 100
    assert accounts == ["accounts"]
    assert calendars[:2] == ["calendarrules", "calendars"]  # names starting with it come first
    assert "annualfiscalcalendars" in calendars[2:]
    assert all("calendar" in name for name in calendars)

    await user.pick_objects(read_write=["accounts", "contacts"])
    await user.wait_step("settings")


async def test_the_search_finds_objects_by_their_label(
    driver: Driver, fake_slack: FakeSlack, service: RunningService
) -> None:
    user = WizardUser(driver, fake_slack)
    await upload_and_open_objects(user, fake_slack, "sap-v2/API_BUSINESS_PARTNER.edmx")

    answer = await driver.block_suggestion(DEVELOPER, "objects_ro", "fax number")

    [option] = answer.json["options"]
    assert option["value"] == "A_AddressFaxNumber"
    assert option["text"]["text"] == "Fax Number (A_AddressFaxNumber)"
