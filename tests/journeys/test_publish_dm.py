"""The publish DM when things go wrong (a failed build, Slack's rate limits) and the refusals
shown on the review, all through the real app and the strict fake Slack."""

from __future__ import annotations

import asyncio
import io
import json
import tarfile
import zipfile

from generator.publisher import PublishNotifier
from providers.model import Catalog
from storage import AccessGrants, Environments, Integrations, PublishJobs
from storage.models import IntegrationVersion, PublishJob
from tests.fixtures.publish import shop_integration
from tests.journeys.publishing import (
    add_environment,
    code_blocks,
    final_dm,
    publish_shop,
    readable,
    states,
    walk_to_review,
)
from tests.journeys.service import RunningService
from tests.journeys.wizard_user import WizardUser, visible_text
from tests.slack import BYSTANDER, DEVELOPER, Driver, FakeSlack, wait_for

SANDBOX = "sandbox"


class RemovesTheTargetWhileBuilding:
    """The app's own notifier, with the target environment removed (by an admin, say) as soon as
    the job starts building."""

    def __init__(self, notifier: PublishNotifier, service: RunningService) -> None:
        self.notifier = notifier
        self.service = service

    async def progress(self, job: PublishJob, state: str) -> None:
        if state == "building":
            async with self.service.database.session() as session:
                environments = Environments(session)
                await environments.remove(await environments.require(job.environment))
        await self.notifier.progress(job, state)

    async def finished(
        self,
        job: PublishJob,
        version: IntegrationVersion | None,
        error: str | None,
        artifacts: list[tuple[str, bytes]],
    ) -> None:
        await self.notifier.finished(job, version, error, artifacts)


async def test_a_failed_publish_says_why_and_attaches_the_wheel_and_sdist_to_the_dm(
    service: RunningService, driver: Driver, fake_slack: FakeSlack
) -> None:
    await add_environment(service, SANDBOX, development=True)
    service.bot.services.environment = SANDBOX
    async with service.database.session() as session:
        await AccessGrants(session).grant(DEVELOPER.id, "developer", SANDBOX, created_by="setup")
    service.publisher.notifier = RemovesTheTargetWhileBuilding(service.publisher.notifier, service)
    user = WizardUser(driver, fake_slack)
    await walk_to_review(user, "library_fail")
    await user.submit()

    failed = await final_dm(fake_slack, DEVELOPER, "library_fail")
    await service.settled()
    assert failed.text == (
        "Publishing library_fail to sandbox failed: Environment sandbox was removed while publishing; "
        "nothing was published."
    )
    assert states(failed)[-1] == "failed"
    assert "Download application package" in readable(failed)
    dm = fake_slack.workspace.dm_channel(DEVELOPER.id)
    files_message = await wait_for(
        lambda: next((m for m in fake_slack.messages_for(DEVELOPER.id) if m.files), None),
        what="the package files in the DM",
    )
    assert files_message.channel == dm
    assert "Download application package" in (files_message.text or "")
    uploaded = {
        fake_slack.files[file_id].filename: fake_slack.files[file_id] for file_id in files_message.files
    }
    assert sorted(uploaded) == ["library_fail-0.1.0-py3-none-any.whl", "library_fail-0.1.0.tar.gz"]
    wheel = uploaded["library_fail-0.1.0-py3-none-any.whl"].content
    sdist = uploaded["library_fail-0.1.0.tar.gz"].content
    assert wheel is not None and sdist is not None
    with zipfile.ZipFile(io.BytesIO(wheel)) as archive:
        assert json.loads(archive.read("library_fail/integration.json"))["version"] == "0.1.0"
    with tarfile.open(fileobj=io.BytesIO(sdist)) as archive:
        assert "library_fail-0.1.0/pyproject.toml" in archive.getnames()
    # The three-step upload to the D channel conversations.open named.
    assert [call.args["users"] for call in fake_slack.calls("conversations.open")] == [DEVELOPER.id]
    assert [call.args["channel_id"] for call in fake_slack.calls("files.completeUploadExternal")] == [dm]
    assert len(fake_slack.calls("files.getUploadURLExternal")) == 2
    async with service.database.session() as session:
        assert await Integrations(session).by_module(fake_slack.workspace.team_id, "library_fail") is None


async def test_rate_limited_edits_still_end_on_the_final_state_and_acks_stay_prompt(
    service: RunningService, driver: Driver, fake_slack: FakeSlack, shop: Catalog
) -> None:
    # Three 429s in a row: more than the client's own two retries.
    fake_slack.rate_limit("chat.update", times=3, retry_after=1)
    job = await service.publisher.submit(
        team_id=fake_slack.workspace.team_id,
        user_id=DEVELOPER.id,
        spec=shop_integration(),
        catalog=shop,
        dedup_key="rate-limited",
    )
    acks = []
    while not any(call.status == 200 for call in fake_slack.calls("chat.update")):
        acks.append(await driver.slash_command(DEVELOPER, "help"))
        assert len(acks) < 300, "the final edit never went through"
        await asyncio.sleep(0.05)

    message = await final_dm(fake_slack, DEVELOPER, "shop")
    assert states(message)[-1] == "published" and message.text == "Published shop 0.1.0 to dev"
    assert [call.status for call in fake_slack.calls("chat.update")][:3] == [429, 429, 429]
    assert all(ack.status == 200 and not ack.timed_out for ack in acks)
    assert (await service.publisher.wait(job.id)).state == "published"


async def test_without_the_developer_role_the_review_says_who_can_grant_it(
    service: RunningService, driver: Driver, fake_slack: FakeSlack
) -> None:
    user = WizardUser(driver, fake_slack, BYSTANDER)
    await walk_to_review(user, "library_nobody")
    await user.submit()

    review = await wait_for(
        lambda: user.step == "review" and "developer role" in user.text and user.view, what="the refusal"
    )
    assert (
        "Publishing to dev needs the developer role there; an admin grants it with "
        f"`ib access grant {BYSTANDER.id} developer dev`."
    ) in visible_text(review)
    async with service.database.session() as session:
        assert await PublishJobs(session).unfinished() == []
    assert fake_slack.messages_for(BYSTANDER.id) == []


async def test_an_open_integration_published_meanwhile_is_not_published_again(
    service: RunningService, driver: Driver, fake_slack: FakeSlack, shop: Catalog
) -> None:
    user = WizardUser(driver, fake_slack)
    await walk_to_review(user, "shop", open_integration=True)
    # Meanwhile the same open integration is published from the command line (`ib publish`).
    first = await service.publisher.submit(
        team_id=fake_slack.workspace.team_id,
        user_id=DEVELOPER.id,
        spec=shop_integration(open=True),
        catalog=shop,
        dedup_key="cli",
    )
    assert (await service.publisher.wait(first.id)).state == "published"

    await user.submit()

    await wait_for(lambda: user.step == "review" and "open integration" in user.text, what="the refusal")
    assert (
        "Shop is an open integration: it was published once and Integration Builder never regenerates "
        "or republishes it."
    ) in user.text
    async with service.database.session() as session:
        integration = await Integrations(session).by_module(fake_slack.workspace.team_id, "shop")
        assert integration is not None
        assert [v.version for v in await Integrations(session).versions(integration)] == ["0.1.0"]


async def test_how_to_use_opens_the_packages_readme_with_the_pip_line(
    service: RunningService, driver: Driver, fake_slack: FakeSlack, shop: Catalog
) -> None:
    await publish_shop(service, fake_slack, shop)
    message = await final_dm(fake_slack, DEVELOPER, "shop")

    ack = await driver.block_action(DEVELOPER, "publish_how_to_use", message=message)
    assert ack.status == 200
    view = await wait_for(
        lambda: (
            (shown := fake_slack.current_view(DEVELOPER.id)) and "Install" in visible_text(shown) and shown
        ),
        what="the README in the modal",
    )
    text = visible_text(view).replace("&lt;", "<").replace("&gt;", ">").replace("&amp;", "&")
    assert code_blocks(readable(message))[0] in code_blocks(text)
    assert "from shop.service import search_" in text
