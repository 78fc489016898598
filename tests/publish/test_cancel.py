"""`ib jobs list` and `ib jobs cancel`, on SQLite (the embedded runner) and PostgreSQL (procrastinate).

A cancelled queued job never runs and publishes nothing, its requester reads it in the publish DM
(strict fake Slack), and jobs queued after it still run. Cancelling an unknown or finished job is
one line on stderr and changes nothing.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path

import pytest
from sqlalchemy import select

from bot.cli import main
from generator.publisher import Publisher
from generator.workers import ProcrastinateRunner, run_workers, uses_task_queue
from providers.model import Catalog
from storage import Database, PublishJobs
from storage.models import Integration, IntegrationVersion, PublishJob
from tests.bot.test_serve import STARTUP_LIMIT_S
from tests.fixtures.publish import TEAM, RecordingNotifier, shop_integration
from tests.slack import DEVELOPER, FakeSlack, wait_for

Ib = Callable[..., Awaitable[tuple[int, str, str]]]
CapSys = pytest.CaptureFixture[str]


@pytest.fixture
def ib(
    database_url: str, fake_slack: FakeSlack, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: CapSys
) -> Ib:
    """`ib ARGS` as an operator runs it, with the service's Slack settings: (exit code, out, err)."""
    monkeypatch.setenv("IB_DATABASE_URL", database_url)
    monkeypatch.setenv("IB_KEY_FILE", str(tmp_path / "ib.key"))
    monkeypatch.setenv("SLACK_BOT_TOKEN", fake_slack.bot_token)
    monkeypatch.setenv("IB_SLACK_API_URL", fake_slack.api_url)

    async def run(*args: str) -> tuple[int, str, str]:
        # In a thread with its own event loop, as the command's process: this loop serves the fake Slack.
        code = await asyncio.to_thread(main, list(args))
        captured = capsys.readouterr()
        return code, captured.out, captured.err

    return run


async def queue(database: Database, catalog: Catalog, module: str) -> PublishJob:
    """A job queued by a publisher that runs nothing (as the wizard's Publish on a busy service)."""
    return await Publisher(database).submit(
        team_id=TEAM,
        user_id=DEVELOPER.id,
        spec=shop_integration(module),
        catalog=catalog,
        dedup_key=f"test:{module}",
    )


@contextlib.asynccontextmanager
async def running_jobs(database: Database, notifier: RecordingNotifier) -> AsyncIterator[Publisher]:
    """The service's runner: in-process on SQLite; on PostgreSQL deferring plus a worker."""
    if not uses_task_queue(database):
        publisher = Publisher(database, notifier=notifier)
        await publisher.start()
        try:
            yield publisher
        finally:
            await publisher.stop()
        return
    publisher = Publisher(database, notifier=notifier, runner=ProcrastinateRunner(database))
    await publisher.start()
    worker = asyncio.create_task(run_workers(database, publisher.execute, concurrency=1))
    try:
        yield publisher
    finally:
        worker.cancel()
        await asyncio.gather(worker, return_exceptions=True)
        await publisher.stop()


async def job(database: Database, job_id: str) -> PublishJob:
    async with database.reader() as session:
        found = await PublishJobs(session).get(job_id)
    assert found is not None
    return found


async def notified(database: Database, job_id: str) -> PublishJob:
    """The job once its final notification is claimed."""

    async def done() -> PublishJob | None:
        found = await job(database, job_id)
        return found if found.notified_at is not None else None

    return await wait_for(done, STARTUP_LIMIT_S, what=f"publish job {job_id} to end")


async def versions(database: Database) -> list[tuple[str, str]]:
    """(module, version) of every published version."""
    async with database.reader() as session:
        rows = await session.execute(
            select(Integration.module_name, IntegrationVersion.version).join(IntegrationVersion.integration)
        )
        return [(module, version) for module, version in rows.all()]


async def test_a_cancelled_queued_job_never_runs_and_its_requester_is_told(
    database: Database, fake_slack: FakeSlack, shop: Catalog, ib: Ib
) -> None:
    cancelled = await queue(database, shop, "cancelled")

    code, out, err = await ib("jobs", "list")
    assert (code, err) == (0, "")
    header, row = out.splitlines()
    assert header.split()[:4] == ["ID", "STATE", "MODULE", "ENV"]
    assert row.split()[:5] == [cancelled.id, "queued", "cancelled", "dev", DEVELOPER.id]

    code, out, err = await ib("jobs", "cancel", cancelled.id)
    assert (code, err) == (0, "")
    assert out == (
        f"cancelled publish job {cancelled.id} (cancelled to dev): it never runs; nothing was published\n"
    )
    [dm] = fake_slack.messages_for(DEVELOPER.id)
    assert dm.text == (
        "Publishing cancelled to dev failed: It was cancelled before it started; nothing was published."
    )

    # Cancelling it again: one line, and the DM is not sent twice.
    code, out, err = await ib("jobs", "cancel", cancelled.id)
    assert (code, out) == (2, "")
    assert err == f"ib jobs: publish job {cancelled.id} is failed already; nothing changed\n"
    assert len(fake_slack.messages_for(DEVELOPER.id)) == 1

    notifier = RecordingNotifier()
    async with running_jobs(database, notifier):
        later = await queue(database, shop, "later")
        await notified(database, later.id)

    # The job queued after it ran; the cancelled one never did, and published nothing.
    stored = await job(database, cancelled.id)
    assert (stored.state, stored.attempts, stored.started_at) == ("failed", 0, None)
    assert notifier.states(cancelled.id) == [] and notifier.finished_for(cancelled.id) == []
    assert [entry.state for entry in notifier.finished_for(later.id)] == ["published"]
    assert await versions(database) == [("later", "0.1.0")]

    code, out, _ = await ib("jobs", "list")
    assert code == 0 and cancelled.id in out and later.id not in out  # published ones only with --all
    code, out, _ = await ib("jobs", "list", "--all")
    assert code == 0 and later.id in out


async def test_cancelling_an_unknown_running_or_finished_job_is_one_line_and_changes_nothing(
    database: Database, fake_slack: FakeSlack, shop: Catalog, ib: Ib
) -> None:
    refusals: list[tuple[int, str, str]] = []

    async def cancel_while_generating(job: PublishJob, state: str) -> None:
        if state == "generating":
            refusals.append(await ib("jobs", "cancel", job.id))

    notifier = RecordingNotifier(on_progress=cancel_while_generating)
    async with running_jobs(database, notifier):
        published = await queue(database, shop, "done")
        before = await notified(database, published.id)

    # Running: refused, and the job went on to publish.
    assert refusals == [
        (
            2,
            "",
            f"ib jobs: publish job {published.id} is running (generating); a running job is not stopped "
            "half-way: it ends published or failed on its own\n",
        )
    ]
    assert before.state == "published"

    code, out, err = await ib("jobs", "cancel", "no-such-job")
    assert (code, out, err) == (2, "", "ib jobs: there is no publish job no-such-job\n")

    code, out, err = await ib("jobs", "cancel", published.id)
    assert (code, out) == (2, "")
    assert err == f"ib jobs: publish job {published.id} is published already; nothing changed\n"

    after = await job(database, published.id)
    assert (after.state, after.error, after.updated_at) == (before.state, before.error, before.updated_at)
    assert fake_slack.calls() == []
