"""A final DM that Slack is slow to take does not hold up other publishes.

The runner's slots (DEFAULT_CONCURRENCY jobs at a time) are for building: the final notification
of a finished job is sent in the background, still exactly once, and still before
:meth:`Publisher.wait` returns.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field

from generator.jobs import DEFAULT_CONCURRENCY
from generator.publisher import Publisher
from providers.model import Catalog
from storage import Database, PublishJobs
from storage.models import IntegrationVersion, PublishJob
from tests.fixtures.publish import ALICE, TEAM, RecordingNotifier, shop_integration
from tests.slack import wait_for


@dataclass
class SlowSlack(RecordingNotifier):
    """Final notifications wait until ``answers`` is set, as behind Slack's pacing and 429s."""

    answers: asyncio.Event = field(default_factory=asyncio.Event)
    waiting: set[str] = field(default_factory=set)

    async def finished(
        self,
        job: PublishJob,
        version: IntegrationVersion | None,
        error: str | None,
        artifacts: list[tuple[str, bytes]],
    ) -> None:
        self.waiting.add(job.id)
        try:
            await self.answers.wait()
        finally:
            self.waiting.discard(job.id)
        await super().finished(job, version, error, artifacts)


async def state_of(database: Database, job_id: str) -> str:
    async with database.session() as session:
        job = await PublishJobs(session).get(job_id)
    assert job is not None
    return job.state


async def submit(publisher: Publisher, shop: Catalog, number: int) -> PublishJob:
    return await publisher.submit(
        team_id=TEAM,
        user_id=ALICE,
        spec=shop_integration(f"shop_{number}"),
        catalog=shop,
        dedup_key=f"slot-{number}",
    )


async def test_jobs_publish_while_every_slot_s_final_dm_waits_for_slack(
    database: Database, shop: Catalog
) -> None:
    slack = SlowSlack()
    publisher = Publisher(database, notifier=slack)
    await publisher.start()
    try:
        held = [await submit(publisher, shop, number) for number in range(DEFAULT_CONCURRENCY)]
        await wait_for(lambda: slack.waiting >= {job.id for job in held}, 30, what="the held final DMs")

        # Had the DMs kept their slots, this job would wait for Slack: it publishes now.
        later = await submit(publisher, shop, DEFAULT_CONCURRENCY)
        await wait_for(
            lambda: slack.waiting >= {later.id}, 30, what="the later job to finish while the DMs wait"
        )
        assert await state_of(database, later.id) == "published"
        assert slack.finished_calls == []

        slack.answers.set()
        done = [await publisher.wait(job.id) for job in [*held, later]]
    finally:
        await publisher.stop()

    assert [job.state for job in done] == ["published"] * (DEFAULT_CONCURRENCY + 1)
    for job in done:
        assert [(entry.state, entry.version) for entry in slack.finished_for(job.id)] == [
            ("published", "0.1.0")
        ]


async def test_a_final_dm_still_unsent_at_stop_is_sent_once_by_the_next_start(
    database: Database, shop: Catalog
) -> None:
    slack = SlowSlack()
    stopped = Publisher(database, notifier=slack)
    await stopped.start()
    try:
        job = await submit(stopped, shop, 0)
        await wait_for(lambda: job.id in slack.waiting, 30, what="the held final DM")
    finally:
        await stopped.stop()  # Slack never answered: the claim goes back to the database
    assert slack.finished_calls == []

    notifier = RecordingNotifier()
    for _ in range(2):
        restarted = Publisher(database, notifier=notifier)
        await restarted.start()
        await restarted.stop()  # lets what start() resumed end first
    assert [(entry.state, entry.version) for entry in notifier.finished_for(job.id)] == [
        ("published", "0.1.0")
    ]
