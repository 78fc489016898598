"""`ib worker` tells the publisher in Slack, like `ib serve` does on its own database.

Two workers with the Slack settings of the service (its bot token, IB_SLACK_API_URL at the strict
fake Slack) run a publish that the service deferred. The worker that took it is SIGKILLed mid-job
and the other finishes it: the requester sees one DM, edited in place from the first worker's
steps to the second worker's result, with exactly one final message and one version. Slack's
first chat.update answer is a 429 with Retry-After, which the worker waits out.
"""

from __future__ import annotations

import asyncio
import re
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from generator.publisher import STEP_DELAY_ENV, Publisher
from generator.workers import ProcrastinateRunner
from providers.model import Catalog
from storage import Database, generate_key
from tests.bot.test_serve import STARTUP_LIMIT_S, Served
from tests.fixtures.db import POSTGRES_URL, migrated_template, throwaway_postgres_database
from tests.fixtures.publish import TEAM, shop_integration
from tests.journeys.publishing import final_dm, states
from tests.scale.deployment import job_row, scalar, start_worker, wait_for_state, wait_until_notified
from tests.slack import DEVELOPER, FakeSlack, wait_for

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(not POSTGRES_URL, reason="ib worker needs PostgreSQL: set IB_TEST_POSTGRES_URL"),
]
MODULE = "worker_dm"


def shows(fake: FakeSlack, state: str) -> bool:
    return any(states(message)[-1:] == [state] for message in fake.messages_for(DEVELOPER.id))


@pytest.fixture
async def postgres_url() -> AsyncIterator[str]:
    template = await migrated_template(POSTGRES_URL)
    async with throwaway_postgres_database(POSTGRES_URL, template=template) as url:
        yield url


async def test_a_worker_killed_mid_job_leaves_one_dm_edited_to_one_result(
    tmp_path: Path, postgres_url: str, fake_slack: FakeSlack, shop: Catalog
) -> None:
    env = {
        "IB_DATABASE_URL": postgres_url,
        "IB_SECRET_KEYS": generate_key(),
        "SLACK_BOT_TOKEN": fake_slack.bot_token,
        "IB_SLACK_API_URL": fake_slack.api_url,
        STEP_DELAY_ENV: "2",
    }
    fake_slack.rate_limit("chat.update", times=1, retry_after=1)
    workers: list[Served] = []
    database = Database(postgres_url)
    queue = ProcrastinateRunner(database)
    try:
        # The helpers block (subprocesses, sleeps): in threads, so this loop keeps serving Slack.
        for name in ("worker-1", "worker-2"):
            workers.append(await asyncio.to_thread(start_worker, tmp_path, name, env))
        await queue.start()  # the deferring side of `ib serve`
        job = await Publisher(database, runner=queue).submit(
            team_id=TEAM,
            user_id=DEVELOPER.id,
            spec=shop_integration(MODULE),
            catalog=shop,
            dedup_key="test:worker-dm",
        )
        await asyncio.to_thread(wait_for_state, postgres_url, job.id, {"building"}, *workers)
        # Killed once the requester has seen the step (its first edit waits out the 429).
        await wait_for(lambda: shows(fake_slack, "building"), STARTUP_LIMIT_S, what="the building DM")
        running = [worker for worker in workers if f"publish job {job.id} runs here" in worker.log()]
        assert len(running) == 1, "exactly one worker runs the job"
        killed = running[0]
        killed.process.kill()
        await asyncio.to_thread(killed.process.wait)
        survivor = next(worker for worker in workers if worker is not killed)

        await asyncio.to_thread(wait_for_state, postgres_url, job.id, {"published", "failed"}, survivor)
        await asyncio.to_thread(wait_until_notified, postgres_url, job.id)
        dm = await final_dm(fake_slack, DEVELOPER, MODULE)
    finally:
        await queue.stop()
        await database.dispose()
        for worker in workers:
            if worker.process.poll() is None:
                await asyncio.to_thread(worker.stop)

    logs = {worker.folder.name: worker.log() for worker in workers}
    assert f"publish job {job.id} runs here" in survivor.log()
    assert all("Traceback" not in log and "Slack is not configured" not in log for log in logs.values()), logs

    stored = job_row(postgres_url, job.id)
    assert (stored["state"], stored["error"], stored["attempts"]) == ("published", None, 2)
    assert scalar(postgres_url, "SELECT count(*) FROM integration_versions") == 1

    # One message: posted by the killed worker, edited by both, ending on one final state.
    assert fake_slack.messages_for(DEVELOPER.id) == [dm]
    assert [call.ok for call in fake_slack.calls("chat.postMessage")] == [True]
    shown = states(dm)
    assert shown[:2] == ["generating", "building"], shown
    assert shown[-1] == "published" and shown.count("published") == 1, shown
    assert dm.text is not None and re.match(rf"Published {MODULE} 0\.1\.0 to dev", dm.text), dm.text
    # The 429 was waited out and the edit sent again.
    assert [call.status for call in fake_slack.calls("chat.update")][:2] == [429, 200]


async def test_a_worker_without_slack_settings_says_where_results_go(
    tmp_path: Path, postgres_url: str
) -> None:
    env = {"IB_DATABASE_URL": postgres_url, "IB_SECRET_KEYS": generate_key()}
    worker = await asyncio.to_thread(start_worker, tmp_path, "worker", env)
    await asyncio.to_thread(worker.stop)
    assert (
        "Slack is not configured (set SLACK_BOT_TOKEN, or SLACK_CLIENT_ID and SLACK_CLIENT_SECRET, as for "
        "ib serve): publish results go to this log, not to Slack"
    ) in worker.log()
