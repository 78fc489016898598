"""The publish DM against the strict fake Slack: one message per job edited in place, paced,
coalesced, kept across restarts, and never losing its final state to a 429 storm or an outage."""

from __future__ import annotations

import asyncio
from collections.abc import Callable

import pytest
from slack_sdk.web.async_client import AsyncWebClient

from bot.config import Settings
from bot.slack_app import use_slack_api
from generator.publisher import Publisher
from handlers.publish_progress import SlackNotifier
from handlers.units import UnitsOfWork
from providers.model import Catalog
from storage import Database, PublishJobs
from storage.models import IntegrationVersion, PublishJob
from tests.fixtures.publish import shop_integration
from tests.journeys.publishing import states
from tests.slack import DEVELOPER, FakeSlack, wait_for

BASE_URL = "https://ib.example.test"
MakeNotifier = Callable[..., SlackNotifier]


@pytest.fixture
def client(fake_slack: FakeSlack) -> AsyncWebClient:
    """The bot's client as `ib serve` sets it up (base URL, timeout, 429 retries)."""
    client = AsyncWebClient(token=fake_slack.bot_token)
    use_slack_api(client, Settings(slack_api_url=fake_slack.api_url))
    return client


@pytest.fixture
def make_notifier(fake_slack: FakeSlack, client: AsyncWebClient, database: Database) -> MakeNotifier:
    def make(token: str | None = None, **pacing: float) -> SlackNotifier:
        async def bot_token(team_id: str) -> str | None:
            assert team_id == fake_slack.workspace.team_id
            return token or fake_slack.bot_token

        return SlackNotifier(client, UnitsOfWork(database), base_url=BASE_URL, bot_token=bot_token, **pacing)

    return make


async def queued_job(database: Database, fake: FakeSlack, shop: Catalog, key: str = "k") -> PublishJob:
    idle = Publisher(database)  # never started: the job stays queued for the test to drive
    return await idle.submit(
        team_id=fake.workspace.team_id,
        user_id=DEVELOPER.id,
        spec=shop_integration(),
        catalog=shop,
        dedup_key=key,
    )


async def published(database: Database, job_id: str) -> tuple[PublishJob, IntegrationVersion]:
    """Run the job to its end (with the log notifier) and return it with its version."""
    await Publisher(database).execute(job_id)
    job = await job_row(database, job_id)
    async with database.session() as session:
        assert job.result_version_id is not None
        version = await session.get(IntegrationVersion, job.result_version_id)
    assert version is not None
    return job, version


async def job_row(database: Database, job_id: str) -> PublishJob:
    async with database.session() as session:
        job = await PublishJobs(session).get(job_id)
    assert job is not None
    return job


async def test_each_state_edits_one_dm_in_place_and_the_job_row_names_it(
    database: Database, fake_slack: FakeSlack, make_notifier: MakeNotifier, shop: Catalog
) -> None:
    notifier = make_notifier(min_edit_interval=0)
    job = await queued_job(database, fake_slack, shop)

    def versions_shown() -> int:
        return sum(len(message.versions) for message in fake_slack.messages_for(DEVELOPER.id))

    for shown, state in enumerate(("generating", "building", "publishing"), start=1):
        await notifier.progress(job, state)
        await wait_for(lambda: versions_shown() >= shown, what=f"the DM showing {state}")  # noqa: B023
    job, version = await published(database, job.id)
    await notifier.finished(job, version, None, [])

    (message,) = fake_slack.messages_for(DEVELOPER.id)
    assert states(message) == ["generating", "building", "publishing", "published"]
    assert message.text == "Published shop 0.1.0 to dev"
    assert message.channel.startswith("D")
    stored = await job_row(database, job.id)
    assert (stored.slack_channel, stored.slack_ts) == (message.channel, message.ts)


async def test_states_that_come_faster_than_the_pace_are_coalesced_into_the_newest(
    database: Database, fake_slack: FakeSlack, make_notifier: MakeNotifier, shop: Catalog
) -> None:
    notifier = make_notifier(min_edit_interval=1.0)
    job = await queued_job(database, fake_slack, shop)
    await notifier.progress(job, "generating")
    await wait_for(lambda: fake_slack.messages_for(DEVELOPER.id), what="the first DM")
    for state in ("building", "publishing"):
        await notifier.progress(job, state)
    await notifier.finished(job, None, "the index is down", [])

    (message,) = fake_slack.messages_for(DEVELOPER.id)
    assert states(message) == ["generating", "failed"]
    assert message.text == "Publishing shop to dev failed: The index is down."
    assert (fake_slack.call_count("chat.postMessage"), fake_slack.call_count("chat.update")) == (1, 1)


async def test_a_restarted_process_edits_the_message_the_job_row_names(
    database: Database, fake_slack: FakeSlack, make_notifier: MakeNotifier, shop: Catalog
) -> None:
    job = await queued_job(database, fake_slack, shop)
    before_crash = make_notifier(min_edit_interval=0)
    await before_crash.progress(job, "generating")
    await wait_for(lambda: _remembered(database, job.id), what="the DM's channel and ts in the job row")

    after_restart = make_notifier(min_edit_interval=0)
    restarted = Publisher(database, notifier=after_restart)
    await restarted.start()
    try:
        assert (await restarted.wait(job.id)).state == "published"
    finally:
        await restarted.stop()

    (message,) = fake_slack.messages_for(DEVELOPER.id)
    assert states(message)[0] == "generating" and states(message)[-1] == "published"
    assert fake_slack.call_count("chat.postMessage") == 1


async def _remembered(database: Database, job_id: str) -> bool:
    return (await job_row(database, job_id)).slack_ts is not None


async def test_429s_beyond_the_clients_own_retries_are_waited_out_and_the_final_state_arrives(
    database: Database, fake_slack: FakeSlack, make_notifier: MakeNotifier, shop: Catalog
) -> None:
    notifier = make_notifier(min_edit_interval=0)
    job = await queued_job(database, fake_slack, shop)
    await notifier.progress(job, "generating")
    await wait_for(lambda: fake_slack.messages_for(DEVELOPER.id), what="the first DM")
    fake_slack.rate_limit("chat.update", times=3, retry_after=1)  # the client retries twice by itself

    job, version = await published(database, job.id)
    await notifier.finished(job, version, None, [])

    (message,) = fake_slack.messages_for(DEVELOPER.id)
    assert states(message) == ["generating", "published"]
    assert [call.status for call in fake_slack.calls("chat.update")] == [429, 429, 429, 200]


async def test_a_final_message_slack_refused_is_sent_once_by_the_next_start(
    database: Database, fake_slack: FakeSlack, make_notifier: MakeNotifier, shop: Catalog
) -> None:
    outage = Publisher(database, notifier=make_notifier(token="xoxb-revoked", min_edit_interval=0))
    job = await queued_job(database, fake_slack, shop)
    await outage.execute(job.id)
    assert fake_slack.messages_for(DEVELOPER.id) == []
    assert {call.answer.get("error") for call in fake_slack.calls("chat.postMessage")} == {"invalid_auth"}

    for _ in range(2):
        later = Publisher(database, notifier=make_notifier(min_edit_interval=0))
        await later.start()
        await later.stop()  # lets the jobs resumed by start() end first

    (message,) = fake_slack.messages_for(DEVELOPER.id)
    assert message.text == "Published shop 0.1.0 to dev"


async def test_when_the_workspace_edits_a_lot_progress_edits_give_way_to_final_ones(
    database: Database, fake_slack: FakeSlack, make_notifier: MakeNotifier, shop: Catalog
) -> None:
    notifier = make_notifier(min_edit_interval=0, progress_edits_per_minute=1)
    first, second = (
        await queued_job(database, fake_slack, shop),
        await queued_job(database, fake_slack, shop, "k2"),
    )
    for job in (first, second):
        await notifier.progress(job, "generating")
    await wait_for(lambda: len(fake_slack.messages_for(DEVELOPER.id)) == 2, what="both DMs")
    await notifier.progress(first, "building")  # the one progress edit this minute allows
    await wait_for(lambda: fake_slack.call_count("chat.update") == 1, what="the first edit")

    await notifier.progress(second, "building")
    await asyncio.sleep(0)  # lets its sender look at the edit (and skip it)
    await notifier.finished(second, None, "the index is down", [])

    first_dm, second_dm = fake_slack.messages_for(DEVELOPER.id)
    assert states(first_dm) == ["generating", "building"]
    assert states(second_dm) == ["generating", "failed"]
    assert fake_slack.call_count("chat.update") == 2


class StormAtTheEnd:
    """The Slack notifier, with Slack answering 429 (Retry-After: 0) to the next ``times``
    chat.update calls from the job's final notification on (the progress edits went through)."""

    def __init__(self, slack: SlackNotifier, fake: FakeSlack, times: int) -> None:
        self.slack, self.fake, self.times = slack, fake, times
        self.storm_began = False

    async def progress(self, job: PublishJob, state: str) -> None:
        await self.slack.progress(job, state)

    async def finished(
        self,
        job: PublishJob,
        version: IntegrationVersion | None,
        error: str | None,
        artifacts: list[tuple[str, bytes]],
    ) -> None:
        if not self.storm_began:
            self.storm_began = True
            self.fake.rate_limit("chat.update", times=self.times, retry_after=0)
        await self.slack.finished(job, version, error, artifacts)


async def first_dm(notifier: SlackNotifier, fake: FakeSlack, job: PublishJob) -> None:
    """The job's DM exists, so the final state is an edit (the call the storm refuses)."""
    await notifier.progress(job, "generating")
    await wait_for(lambda: fake.messages_for(DEVELOPER.id), what="the first DM")


def published_dm(fake: FakeSlack) -> bool:
    return any(states(message)[-1:] == ["published"] for message in fake.messages_for(DEVELOPER.id))


async def test_a_final_dm_refused_through_a_429_storm_arrives_once_without_a_restart(
    database: Database, fake_slack: FakeSlack, make_notifier: MakeNotifier, shop: Catalog
) -> None:
    # Each try of the final edit is three calls (the client retries twice by itself) and the
    # notifier gives it back at the first refused try: the storm outlasts the try in the job and
    # the publisher's first retry in the background.
    slack = make_notifier(min_edit_interval=0, max_rate_limited=0)
    publisher = Publisher(
        database, notifier=StormAtTheEnd(slack, fake_slack, times=9), notify_retry_base_delay=0.01
    )
    job = await queued_job(database, fake_slack, shop)
    await first_dm(slack, fake_slack, job)
    try:
        await publisher.execute(job.id)
        assert not published_dm(fake_slack), "the job's own try of the final edit was refused"
        assert (await job_row(database, job.id)).notified_at is None
        await wait_for(lambda: published_dm(fake_slack), what="the final DM, sent in the background")
    finally:
        await publisher.stop()

    (message,) = fake_slack.messages_for(DEVELOPER.id)
    assert states(message).count("published") == 1
    assert message.text == "Published shop 0.1.0 to dev"
    assert [call.status for call in fake_slack.calls("chat.update")][-10:] == [429] * 9 + [200]
    assert (await job_row(database, job.id)).notified_at is not None
    # It was sent once for good: a later start (another replica, a restart) sends nothing more.
    edits = fake_slack.call_count("chat.update")
    later = Publisher(database, notifier=make_notifier(min_edit_interval=0))
    await later.start()
    await later.stop()
    assert fake_slack.call_count("chat.update") == edits
    assert fake_slack.call_count("chat.postMessage") == 1


async def test_a_final_dm_still_refused_when_the_process_stops_is_sent_once_by_the_next_start(
    database: Database, fake_slack: FakeSlack, make_notifier: MakeNotifier, shop: Catalog
) -> None:
    slack = make_notifier(min_edit_interval=0, max_rate_limited=0)
    # The storm lasts longer than this process: its retry waits, and the process stops meanwhile.
    publisher = Publisher(
        database, notifier=StormAtTheEnd(slack, fake_slack, times=1000), notify_retry_base_delay=60
    )
    job = await queued_job(database, fake_slack, shop)
    await first_dm(slack, fake_slack, job)
    await publisher.execute(job.id)
    await publisher.stop()
    assert not published_dm(fake_slack)
    assert (await job_row(database, job.id)).notified_at is None

    fake_slack.rate_limit("chat.update", times=0)  # the storm is over
    for _ in range(2):
        restarted = Publisher(database, notifier=make_notifier(min_edit_interval=0))
        await restarted.start()
        await restarted.stop()  # lets the jobs resumed by start() end first

    (message,) = fake_slack.messages_for(DEVELOPER.id)
    assert states(message)[-1] == "published" and states(message).count("published") == 1
    assert message.text == "Published shop 0.1.0 to dev"
