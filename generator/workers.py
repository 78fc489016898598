"""Publish jobs on PostgreSQL: procrastinate defers them, ``ib worker`` processes run them.

Every replica of ``ib serve`` defers (:class:`ProcrastinateRunner`); any number of ``ib worker``
processes run :data:`PUBLISH_TASK` by calling the publisher's executor (:func:`run_workers`). The
job's own state stays in ``publish_jobs``; procrastinate only says who runs what when:

- one procrastinate job per publish job at a time, waiting or running: a job deferred again (by
  another replica, the poll, a restart, a retried request) while it waits or runs is not queued
  twice. procrastinate's queueing lock alone only covers waiting jobs: a copy deferred while the
  job ran would make the job's retry collide with it (``UniqueViolation`` in the worker, the job
  left running for ever and its integration's lock with it), so deferring looks at both, one
  deferrer of a publish job at a time;
- one lock per integration (team and module name): two publishes of one integration never
  interleave, whichever workers take them;
- transient failures (the database, the network) are retried with exponential backoff, as the
  embedded runner does (:func:`generator.jobs.retry_delay`);
- a job no worker took yet can be withdrawn (:meth:`ProcrastinateRunner.cancel`);
- a worker killed mid-job stops sending heartbeats; the other workers give its jobs back to the
  queue after :data:`STALLED_AFTER_S`, and the executor resumes the job from its stored state.

procrastinate's schema is applied when a runner or worker starts, once per database (under an
advisory lock, skipped when its tables exist): the Alembic migrations stay backend-neutral.
"""

from __future__ import annotations

import asyncio
import logging
from datetime import UTC, datetime, timedelta
from typing import Final

import psycopg
from procrastinate import App, BaseRetryStrategy, JobContext, PsycopgConnector, RetryDecision
from procrastinate.exceptions import AlreadyEnqueued, UniqueViolation
from procrastinate.jobs import Job, Status
from procrastinate.schema import SchemaManager
from sqlalchemy import URL, func, make_url, select

from generator.jobs import (
    DEFAULT_CONCURRENCY,
    RETRY_BASE_DELAY_S,
    Executor,
    retry_delay,
    start_polling,
    stop_polling,
)
from storage import Database, PublishJobs

log = logging.getLogger(__name__)

PUBLISH_TASK: Final = "ib.publish"
PUBLISH_QUEUE: Final = "publish"
# Seconds between a worker's heartbeats, and without one before its jobs go to other workers.
HEARTBEAT_S: Final = 2.0
STALLED_AFTER_S: Final = 10.0
# Queued jobs that another process stored (`ib publish` next to the service) are deferred this often.
POLL_INTERVAL_S: Final = 2.0
_EXECUTE: Final = "execute"
_SCHEMA_LOCK: Final = 0x1B_0057  # any constant shared by every process of the service
# procrastinate's own default: how often an idle worker looks for jobs besides LISTEN/NOTIFY.
_FETCH_INTERVAL_S: Final = 5.0


class Backoff(BaseRetryStrategy):
    """procrastinate's retry decision from :func:`generator.jobs.retry_delay`: transient failures
    only, ``base_delay`` doubled at each retry. Anything else the executor raises is a bug; the
    publish job has failed already (the publisher fails it) and is not run again."""

    def __init__(self, base_delay: float = RETRY_BASE_DELAY_S) -> None:
        self.base_delay = base_delay

    def get_retry_decision(self, *, exception: BaseException, job: Job) -> RetryDecision | None:
        publish_job = str(job.task_kwargs.get("job_id"))
        delay = retry_delay(publish_job, exception, job.attempts + 1, self.base_delay)
        return None if delay is None else RetryDecision(retry_at=datetime.now(UTC) + timedelta(seconds=delay))


def uses_task_queue(database: Database) -> bool:
    """True when publish jobs go through procrastinate: the database is PostgreSQL."""
    return database.url.get_backend_name() == "postgresql"


def libpq_url(database_url: URL | str) -> str:
    """The SQLAlchemy URL ``postgresql+asyncpg://...`` as the libpq URL psycopg connects with."""
    url = make_url(database_url)
    return url.set(drivername="postgresql").render_as_string(hide_password=False)


async def _publish(context: JobContext, job_id: str) -> None:
    execute: Executor = context.additional_context[_EXECUTE]
    # Which worker runs what: the Slack notifier, unlike the log one, logs nothing per step.
    log.info("publish job %s runs here (run %d)", job_id, context.job.attempts + 1)
    await execute(job_id)


def task_queue(
    database: Database, *, connections: int = 2, retry_base_delay: float = RETRY_BASE_DELAY_S
) -> App:
    """The procrastinate app on ``database`` with at most ``connections`` of its own (open it with
    ``async with app.open_async()``); psycopg's default of 4 per process adds up over replicas."""
    connector = PsycopgConnector(conninfo=libpq_url(database.url), min_size=1, max_size=connections)
    app = App(connector=connector)
    retry = Backoff(retry_base_delay)
    app.task(name=PUBLISH_TASK, queue=PUBLISH_QUEUE, retry=retry, pass_context=True)(_publish)
    return app


async def apply_schema(database: Database) -> bool:
    """Create procrastinate's tables unless they exist; True when this call created them."""
    async with await psycopg.AsyncConnection.connect(libpq_url(database.url)) as connection:
        async with connection.transaction():
            # Replicas starting together: one creates the schema, the others wait and find it.
            await connection.execute("SELECT pg_advisory_xact_lock(%s)", (_SCHEMA_LOCK,))
            cursor = await connection.execute("SELECT to_regclass('procrastinate_jobs') IS NOT NULL")
            row = await cursor.fetchone()
            if row is not None and row[0]:
                return False
            await connection.execute(SchemaManager.get_schema())
    log.info("created the task queue tables (procrastinate) in the database")
    return True


async def _integration_lock(database: Database, job_id: str) -> str | None:
    async with database.reader() as session:
        job = await PublishJobs(session).get(job_id)
    if job is None:
        return None
    return f"publish:{job.team_id}:{job.spec.get('module_name')}"


class ProcrastinateRunner:
    """The :class:`~generator.jobs.JobRunner` of ``ib serve`` on PostgreSQL: it only defers.

    It also defers, every ``poll_interval`` seconds, the queued jobs other processes stored without
    deferring them (`ib publish` next to the service); deferring a job twice is harmless.
    """

    def __init__(self, database: Database, *, poll_interval: float = POLL_INTERVAL_S) -> None:
        self._database = database
        self._poll_interval = poll_interval
        self._app = task_queue(database)
        self._tasks: set[asyncio.Task[None]] = set()
        self._poller: asyncio.Task[None] | None = None
        self._open = False

    async def start(self) -> None:
        await apply_schema(self._database)
        await self._app.open_async()
        self._open = True
        if self._poller is None:
            self._poller = start_polling(self._queued, self.enqueue, self._poll_interval)

    async def stop(self) -> None:
        await stop_polling(self._poller)
        self._poller = None
        if self._tasks:
            await asyncio.gather(*self._tasks, return_exceptions=True)
        if self._open:
            self._open = False
            await self._app.close_async()

    async def _queued(self) -> list[str]:
        async with self._database.reader() as session:
            return await PublishJobs(session).queued()

    def enqueue(self, job_id: str) -> None:
        if not self._open:
            return
        task = asyncio.create_task(self._defer(job_id), name=f"defer-publish-job-{job_id}")
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def defer(self, job_id: str) -> bool:
        """Queue ``job_id`` for a worker; False when it is waiting in the queue or running already."""
        lock = await _integration_lock(self._database, job_id)
        if lock is None:
            return False
        queueing_lock = _queueing_lock(job_id)
        deferrer = self._app.configure_task(
            PUBLISH_TASK, lock=lock, queueing_lock=queueing_lock, queue=PUBLISH_QUEUE
        )
        async with self._database.session() as session:
            # Held until the job is in the queue: no other deferrer looks in between.
            await session.execute(select(func.pg_advisory_xact_lock(func.hashtext(queueing_lock))))
            if await self._queued_or_running(queueing_lock):
                return False
            try:
                await deferrer.defer_async(job_id=job_id)
            except AlreadyEnqueued:  # deferred by a process that does not take the lock above
                return False
        return True

    async def _queued_or_running(self, queueing_lock: str) -> bool:
        manager = self._app.job_manager
        for status in (Status.TODO, Status.DOING):
            if await manager.list_jobs_async(queueing_lock=queueing_lock, status=status.value):
                return True
        return False

    async def _defer(self, job_id: str) -> None:
        try:
            await self.defer(job_id)
        except Exception as error:  # the job stays queued in the database; the next poll defers it
            log.warning("cannot defer publish job %s yet: %s", job_id, error.__class__.__name__)

    async def cancel(self, job_id: str) -> bool:
        """Withdraw ``job_id`` from the task queue unless a worker took it; False when one did."""
        manager = self._app.job_manager
        lock = _queueing_lock(job_id)
        if await manager.list_jobs_async(queueing_lock=lock, status=Status.DOING.value):
            return False
        for waiting in await manager.list_jobs_async(queueing_lock=lock, status=Status.TODO.value):
            assert waiting.id is not None
            if not await manager.cancel_job_by_id_async(waiting.id):
                return False  # a worker took it meanwhile
        return True


def _queueing_lock(job_id: str) -> str:
    return f"publish-job:{job_id}"


async def retry_stalled_jobs(app: App) -> int:
    """Give the jobs of workers that stopped sending heartbeats back to the queue."""
    stalled = list(
        await app.job_manager.get_stalled_jobs(
            queue=PUBLISH_QUEUE, task_name=PUBLISH_TASK, seconds_since_heartbeat=STALLED_AFTER_S
        )
    )
    for job in stalled:
        publish_job = job.task_kwargs.get("job_id")
        try:
            await app.job_manager.retry_job(job)
        except UniqueViolation:
            # The publish job waits in the queue already (deferred again at a replica's start):
            # that one resumes it, so the stalled copy just ends.
            assert job.id is not None
            await app.job_manager.finish_job_by_id_async(job.id, status=Status.ABORTED, delete_job=False)
        log.warning("publish job %s: its worker stopped; another worker resumes it", publish_job)
    return len(stalled)


async def _watch_stalled(app: App) -> None:
    while True:
        await asyncio.sleep(STALLED_AFTER_S / 2)
        try:
            await retry_stalled_jobs(app)
        except Exception as error:  # the next round tries again
            log.warning("cannot look for stalled publish jobs: %s", error.__class__.__name__)


async def run_workers(
    database: Database,
    execute: Executor,
    *,
    concurrency: int = DEFAULT_CONCURRENCY,
    name: str = "ib-worker",
    retry_base_delay: float = RETRY_BASE_DELAY_S,
) -> None:
    """Run publish jobs with ``execute`` until SIGTERM or SIGINT (then finish the running ones);
    a run that ends on a transient failure is retried after ``retry_base_delay``, doubled each time."""
    await apply_schema(database)
    # One connection per running job, one to listen for new jobs, one for heartbeats and stalled jobs.
    app = task_queue(database, connections=concurrency + 2, retry_base_delay=retry_base_delay)
    async with app.open_async():
        watcher = asyncio.create_task(_watch_stalled(app), name="stalled-publish-jobs")
        try:
            await app.run_worker_async(
                queues=[PUBLISH_QUEUE],
                concurrency=concurrency,
                name=name,
                additional_context={_EXECUTE: execute},
                update_heartbeat_interval=HEARTBEAT_S,
                # A retry is scheduled for later, and no NOTIFY says when it is due: only this
                # poll finds it, so it runs at least as often as the shortest backoff.
                fetch_job_polling_interval=min(_FETCH_INTERVAL_S, retry_base_delay),
                stalled_worker_timeout=STALLED_AFTER_S,
                delete_jobs="successful",
            )
        finally:
            watcher.cancel()
            await asyncio.gather(watcher, return_exceptions=True)
