"""Only Slack, correctly signed and on time, reaches the listeners; only a draft's owner may act on it."""

from __future__ import annotations

import pytest
from sqlalchemy import func, select

from storage.models import Draft
from tests.journeys.documents import LIBRARY_V4
from tests.journeys.service import RunningService
from tests.journeys.wizard_user import WizardUser
from tests.slack import BYSTANDER, DEVELOPER, Driver, FakeSlack, SlackContractError


async def drafts_in(service: RunningService) -> int:
    async with service.database.session() as session:
        return int(await session.scalar(select(func.count()).select_from(Draft)) or 0)


@pytest.mark.parametrize(
    "delivery",
    [{"unsigned": True}, {"bad_signature": True}, {"timestamp_offset": -6 * 60}],
    ids=["unsigned", "wrongly-signed", "six-minutes-old"],
)
async def test_requests_slack_did_not_sign_just_now_get_401_and_change_nothing(
    driver: Driver, fake_slack: FakeSlack, service: RunningService, delivery: dict[str, object]
) -> None:
    command = await driver.slash_command(DEVELOPER, "new", **delivery)
    shortcut = await driver.shortcut(DEVELOPER, "create_integration", **delivery)

    assert (command.status, shortcut.status) == (401, 401)
    await service.settled()
    assert fake_slack.calls() == []  # not even auth.test: nothing got past the signature check
    assert await drafts_in(service) == 0


async def test_someone_else_cannot_submit_click_or_search_in_a_developers_wizard(
    driver: Driver, fake_slack: FakeSlack, service: RunningService
) -> None:
    user = WizardUser(driver, fake_slack)
    await user.start()
    await user.choose_provider()
    await user.give_source(metadata_text=LIBRARY_V4)
    developers_view = await user.wait_step("objects")
    draft_id = developers_view["private_metadata"]
    before = await service.draft(draft_id)

    # Requests Slack would never send for this user, forged with the developer's view.
    submitted = await driver.view_submission(BYSTANDER, view=developers_view["id"])
    clicked = await driver.block_action(BYSTANDER, "wizard_back", view=developers_view["id"])
    # An empty options list: the fake calls that Slack's "no result" (and counts it a contract error).
    with pytest.raises(SlackContractError, match="no result"):
        await driver.block_suggestion(BYSTANDER, "objects_rw", "", view=developers_view["id"])

    assert submitted.json["response_action"] == "errors"
    assert "belongs to someone else" in str(submitted.json["errors"])
    assert clicked.status == 200
    after = await service.draft(draft_id)
    assert (after.step, after.version, after.state) == (before.step, before.version, before.state)
    assert user.step == "objects"
