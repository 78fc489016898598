"""Bad input is refused in the ack, under the field it is about, and changes nothing."""

from __future__ import annotations

import pytest

from providers import base
from providers.planned import PlannedProvider
from storage import Integrations
from tests.journeys.documents import LIBRARY_V4
from tests.journeys.service import RunningService
from tests.journeys.wizard_user import WizardUser
from tests.slack import Driver, FakeSlack


async def draft_version(service: RunningService, draft_id: str) -> tuple[str, int]:
    draft = await service.draft(draft_id)
    return draft.step, draft.version


async def at_objects(user: WizardUser) -> None:
    await user.start()
    await user.choose_provider()
    await user.give_source(metadata_text=LIBRARY_V4)
    await user.wait_step("objects")


async def test_every_provider_is_listed_and_one_not_built_yet_says_so(
    driver: Driver, fake_slack: FakeSlack, service: RunningService, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setitem(base._REGISTRY, "erpnext", PlannedProvider("erpnext", "ERPNext"))
    user = WizardUser(driver, fake_slack)
    await user.start()
    await user.wait_step("provider")
    for provider in base.all_providers():
        assert provider.title in user.text
    assert "Not available yet in this installation" in user.text  # said before anyone picks it
    draft = await draft_version(service, user.view["private_metadata"])

    ack = await user.submit({"provider": "erpnext"})

    assert user.errors(ack) == {
        "provider": "ERPNext is not available yet in this installation of Integration Builder; "
        "choose another system."
    }
    assert user.step == "provider"
    assert await draft_version(service, user.view["private_metadata"]) == draft


async def test_the_source_needs_exactly_one_usable_source(
    driver: Driver, fake_slack: FakeSlack, service: RunningService
) -> None:
    user = WizardUser(driver, fake_slack)
    await user.start()
    await user.choose_provider()
    await user.wait_step("source")
    draft = await draft_version(service, user.view["private_metadata"])

    nothing = await user.submit()
    assert "Give a metadata URL, upload a file or paste" in user.errors(nothing)["source_metadata_url"]

    not_http = await user.submit({"metadata_url": "ftp://files.example.com/metadata.xml"})
    assert "http://" in user.errors(not_http)["source_metadata_url"]

    with_password = await user.submit({"metadata_url": "https://bob:hunter22@sap.example.com/odata/"})
    assert "own fields" in user.errors(with_password)["source_metadata_url"]

    two = await user.submit({"metadata_url": "https://sap.example.com/odata/", "metadata_text": LIBRARY_V4})
    assert "only one source" in user.errors(two)["source_metadata_text"]

    assert user.step == "source"
    assert await draft_version(service, user.view["private_metadata"]) == draft
    assert "hunter22" not in fake_slack.all_text_sent().replace(
        "bob:hunter22@",
        "",  # the user's own submission, not something the app sent
    )


async def test_objects_and_customization_lines_are_checked_against_the_metadata(
    driver: Driver, fake_slack: FakeSlack, service: RunningService
) -> None:
    user = WizardUser(driver, fake_slack)
    await at_objects(user)
    draft = await draft_version(service, user.view["private_metadata"])

    none = await user.pick_objects()
    assert user.errors(none) == {"objects_rw": "Choose at least one object."}

    twice = await user.pick_objects(read_write=["Books"], read_only=["Books"])
    assert "Chosen in both lists: Books" in user.errors(twice)["objects_ro"]

    bad_attribute = await user.pick_objects(read_write=["Books"], customize="Books: title, pagez")
    assert user.errors(bad_attribute) == {"customize": "Line 1: Books has no attribute 'pagez'."}

    not_chosen = await user.pick_objects(
        read_write=["Books"], customize="\n# renames\nAuthors.name = full_name"
    )
    assert user.errors(not_chosen)["customize"].startswith("Line 3: Authors is not one of the chosen objects")

    bad_name = await user.pick_objects(read_write=["Books"], customize="Books.title = Book Title")
    assert user.errors(bad_name)["customize"].startswith("Line 1: Books.title cannot be renamed:")

    gibberish = await user.pick_objects(read_write=["Books"], customize="Books: title\nrename pages please")
    assert user.errors(gibberish)["customize"].startswith("Line 2: write Object: attribute")

    assert user.step == "objects"
    assert await draft_version(service, user.view["private_metadata"]) == draft


async def test_the_module_name_must_be_a_free_valid_name(
    driver: Driver, fake_slack: FakeSlack, service: RunningService
) -> None:
    async with service.database.session() as session:
        await Integrations(session).create(
            team_id=fake_slack.workspace.team_id,
            module_name="library",
            application_name="Someone's library",
            provider="sap-odata",
            owner_user_id="U0SOMEONE1",
            spec={},
        )
    user = WizardUser(driver, fake_slack)
    await at_objects(user)
    await user.pick_objects(read_write=["Books"])
    await user.wait_step("settings")
    # The suggestion from the service name skips the name another integration has.
    assert user.initial_value("module_name") == "library_2"
    draft = await draft_version(service, user.view["private_metadata"])

    taken = await user.submit({"module_name": "library"})
    assert user.errors(taken) == {
        "module_name": "library is already taken in this workspace: choose another name."
    }
    invalid = await user.submit({"module_name": "Library-Service"})
    assert "is not valid" in user.errors(invalid)["module_name"]
    reserved = await user.submit({"module_name": "json"})
    assert "would shadow" in user.errors(reserved)["module_name"]
    keyword = await user.submit({"module_name": "import"})
    assert "keyword" in user.errors(keyword)["module_name"]
    icon = await user.submit({"module_name": "my_library", "icon": "books"})
    assert user.errors(icon) == {"icon": "Use an emoji such as :package: (or leave it empty)."}

    assert user.step == "settings"
    assert await draft_version(service, user.view["private_metadata"]) == draft
    await user.submit({"icon": ":books:"})
    await user.wait_step("review")
    assert "my_library" in user.text
