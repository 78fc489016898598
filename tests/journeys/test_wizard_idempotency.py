"""Slack retries and double clicks never make two drafts, two integrations or two publish jobs."""

from __future__ import annotations

import asyncio

from sqlalchemy import func, select

from storage import Database, Integrations
from storage.models import Draft, PublishJob
from tests.journeys.documents import LIBRARY_V4
from tests.journeys.service import RunningService
from tests.journeys.wizard_user import WizardUser
from tests.slack import DEVELOPER, Driver, FakeSlack, wait_for


async def count(database: Database, model: type[Draft] | type[PublishJob]) -> int:
    async with database.session() as session:
        return int(await session.scalar(select(func.count()).select_from(model)) or 0)


async def at_review(user: WizardUser, module_name: str) -> None:
    await user.start()
    await user.choose_provider()
    await user.give_source(metadata_text=LIBRARY_V4)
    await user.pick_objects(read_write=["Books", "Authors"])
    await user.fill_settings(module_name=module_name)
    await user.wait_step("review")


async def published_versions(service: RunningService, team_id: str, module_name: str) -> list[str]:
    [job_id] = await wait_for(lambda: job_ids(service.database), what="the publish job")
    job = await service.publisher.wait(job_id, timeout=120)
    assert job.state == "published", job.error
    async with service.database.session() as session:
        integration = await Integrations(session).by_module(team_id, module_name)
        assert integration is not None
        return [v.version for v in await Integrations(session).versions(integration)]


async def job_ids(database: Database) -> list[str]:
    async with database.session() as session:
        return list(await session.scalars(select(PublishJob.id)))


async def test_a_retried_slash_command_opens_one_wizard_with_one_draft(
    driver: Driver, fake_slack: FakeSlack, service: RunningService
) -> None:
    user = WizardUser(driver, fake_slack)
    first = await user.start()
    await user.wait_step("provider")

    retry = await driver.resend(first, retry_num=1, retry_reason="http_timeout")
    replay = await driver.replay(first)  # the very same signed bytes, sent again within 5 minutes

    assert (retry.status, replay.status) == (200, 200)
    await service.settled()
    assert [call.ok for call in fake_slack.calls("views.open")] == [True, False, False]
    assert {call.answer["error"] for call in fake_slack.calls("views.open")[1:]} == {"exchanged_trigger_id"}
    await user.start()  # a new /ib new offers the draft the first one made
    await user.wait_step("resume")
    assert await count(service.database, Draft) == 1


async def test_a_retried_publish_queues_one_job_and_publishes_one_version(
    driver: Driver, fake_slack: FakeSlack, service: RunningService
) -> None:
    user = WizardUser(driver, fake_slack)
    await at_review(user, "retried_library")

    publish = await user.submit()
    await driver.resend(publish, retry_num=1, retry_reason="http_timeout")
    await driver.resend(publish, retry_num=2, retry_reason="http_timeout")

    team = fake_slack.workspace.team_id
    assert await published_versions(service, team, "retried_library") == ["0.1.0"]
    assert await count(service.database, PublishJob) == 1
    await user.wait_step("publishing")


async def test_a_double_clicked_publish_queues_one_job_and_publishes_one_version(
    driver: Driver, fake_slack: FakeSlack, service: RunningService
) -> None:
    user = WizardUser(driver, fake_slack)
    await at_review(user, "clicked_library")

    answers = await asyncio.gather(driver.view_submission(DEVELOPER), driver.view_submission(DEVELOPER))

    assert [a.status for a in answers] == [200, 200]
    team = fake_slack.workspace.team_id
    assert await published_versions(service, team, "clicked_library") == ["0.1.0"]
    assert await count(service.database, PublishJob) == 1
    assert (await service.draft(user.view["private_metadata"])).status == "published"


async def test_a_double_clicked_next_moves_the_wizard_one_step(
    driver: Driver, fake_slack: FakeSlack, service: RunningService
) -> None:
    user = WizardUser(driver, fake_slack)
    await user.start()
    await user.choose_provider()
    await user.give_source(metadata_text=LIBRARY_V4)
    await user.wait_step("objects")
    await user.search("objects_rw", "Books")
    draft_id = user.view["private_metadata"]
    before = (await service.draft(draft_id)).version

    answers = await asyncio.gather(
        driver.view_submission(DEVELOPER, values={"objects_rw": ["Books"]}),
        driver.view_submission(DEVELOPER, values={"objects_rw": ["Books"]}),
    )

    assert all(a.json["response_action"] == "update" for a in answers)
    assert user.step == "settings"
    draft = await service.draft(draft_id)
    assert (draft.step, draft.version) == ("settings", before + 1)


async def test_a_double_clicked_back_goes_back_one_step(
    driver: Driver, fake_slack: FakeSlack, service: RunningService
) -> None:
    user = WizardUser(driver, fake_slack)
    await at_review(user, "back_library")
    draft_id = user.view["private_metadata"]
    before = (await service.draft(draft_id)).version

    await asyncio.gather(user.back(to="settings"), user.back(to="settings"))

    await service.settled()
    assert user.step == "settings"
    draft = await service.draft(draft_id)
    assert (draft.step, draft.version) == ("settings", before + 1)
