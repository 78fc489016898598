"""Retries with backoff, on both runners (procrastinate's workers and the embedded one).

The publisher reaches PostgreSQL through a TCP proxy on 127.0.0.1. In the middle of a job the proxy
cuts every connection and refuses the next two, as a database restart or a network blip does: the
interrupted run and the next one fail on transient errors, each is retried after a doubled delay,
and the run after the blip resumes the job and publishes one version. A permanent error (the target
environment removed mid-job) fails the job at once: no retry, one final notification saying why.
A job deferred again while it runs (a replica starting) is not queued twice, so its retry does not
collide with a copy of itself, and a second publish of the integration waits for the retried one.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import re
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass

import pytest
from sqlalchemy import func, make_url, select

from generator.jobs import InProcessRunner
from generator.publisher import Publisher
from generator.workers import ProcrastinateRunner, run_workers
from providers.model import Catalog
from storage import Database, Environments, PublishJobs
from storage.models import IntegrationVersion, PublishJob
from tests.bot.test_serve import STARTUP_LIMIT_S
from tests.fixtures.db import POSTGRES_URL, migrated_template, throwaway_postgres_database
from tests.fixtures.publish import ALICE, TEAM, RecordingNotifier, shop_integration
from tests.slack import wait_for

pytestmark = pytest.mark.skipif(
    not POSTGRES_URL, reason="the task queue needs PostgreSQL: set IB_TEST_POSTGRES_URL"
)
BASE_DELAY_S = 0.2
RETRY = re.compile(r"publish job (\S+): transient failure \((\w+)\); retry (\d+) of 4 in ([\d.]+) s")


class FlakyProxy:
    """A TCP proxy to PostgreSQL; :meth:`blip` cuts its connections and refuses the next ones."""

    def __init__(self, target_port: int) -> None:
        self.target_port = target_port
        self.refuse = 0
        self._server: asyncio.Server | None = None
        self._clients: set[asyncio.StreamWriter] = set()
        self._pipes: set[asyncio.Task[None]] = set()

    async def __aenter__(self) -> FlakyProxy:
        self._server = await asyncio.start_server(self._accept, "127.0.0.1", 0)
        return self

    async def __aexit__(self, *exc: object) -> None:
        assert self._server is not None
        self._server.close()
        for pipe in self._pipes:
            pipe.cancel()
        await asyncio.gather(*self._pipes, return_exceptions=True)
        await self._server.wait_closed()

    @property
    def port(self) -> int:
        assert self._server is not None
        return int(self._server.sockets[0].getsockname()[1])

    def blip(self, refuse: int) -> None:
        """Cut every open connection, and close the next ``refuse`` ones as soon as they open."""
        self.refuse = refuse
        for client in self._clients:
            client.transport.abort()

    async def _accept(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        if self.refuse > 0:
            self.refuse -= 1
            writer.transport.abort()
            return
        upstream_reader, upstream_writer = await asyncio.open_connection("127.0.0.1", self.target_port)
        self._clients.add(writer)
        for source, sink in ((reader, upstream_writer), (upstream_reader, writer)):
            pipe = asyncio.create_task(_pipe(source, sink))
            self._pipes.add(pipe)
            pipe.add_done_callback(self._pipes.discard)


async def _pipe(source: asyncio.StreamReader, sink: asyncio.StreamWriter) -> None:
    try:
        while data := await source.read(65536):
            sink.write(data)
            await sink.drain()
    except ConnectionError:
        pass
    finally:
        sink.transport.abort()


@dataclass
class Runner:
    """The publisher on the proxied database, running jobs the way ``kind`` does."""

    publisher: Publisher
    submit: Callable[..., Awaitable[PublishJob]]


@contextlib.asynccontextmanager
async def runner(
    kind: str, database: Database, proxied: Database, notifier: RecordingNotifier, catalog: Catalog
) -> AsyncIterator[Runner]:
    # Jobs are queued through the direct database; only the publisher that runs them goes through
    # the proxy, so the blip hits the job, not the queue.
    publisher = Publisher(proxied, notifier=notifier)
    queue = ProcrastinateRunner(database) if kind == "procrastinate" else None
    submitter = Publisher(database, runner=queue)
    local = InProcessRunner(publisher.execute, retry_base_delay=BASE_DELAY_S)

    async def submit(module: str, environment: str = "dev", request: str = "") -> PublishJob:
        job = await submitter.submit(
            team_id=TEAM,
            user_id=ALICE,
            spec=shop_integration(module),
            catalog=catalog,
            environment=environment,
            dedup_key=f"test:{module}{request}",
        )
        if queue is None:
            local.enqueue(job.id)
        return job

    if queue is None:
        await local.start()
        try:
            yield Runner(publisher, submit)
        finally:
            await local.stop()
        return
    await queue.start()
    worker = asyncio.create_task(
        run_workers(database, publisher.execute, concurrency=1, retry_base_delay=BASE_DELAY_S)
    )
    try:
        yield Runner(publisher, submit)
    finally:
        worker.cancel()
        await asyncio.gather(worker, return_exceptions=True)
        await queue.stop()


@pytest.fixture
async def database() -> AsyncIterator[Database]:
    template = await migrated_template(POSTGRES_URL)
    async with throwaway_postgres_database(POSTGRES_URL, template=template) as url:
        database = Database(url)
        try:
            yield database
        finally:
            await database.dispose()


@contextlib.asynccontextmanager
async def through_proxy(database: Database) -> AsyncIterator[tuple[FlakyProxy, Database]]:
    url = make_url(database.url.render_as_string(hide_password=False))
    async with FlakyProxy(url.port or 5432) as proxy:
        proxied = Database(url.set(host="127.0.0.1", port=proxy.port))
        try:
            yield proxy, proxied
        finally:
            await proxied.dispose()


async def finished(database: Database, job_id: str) -> PublishJob:
    """The job once its final notification is claimed."""

    async def notified() -> PublishJob | None:
        async with database.reader() as session:
            job = await PublishJobs(session).get(job_id)
        return job if job is not None and job.notified_at is not None else None

    return await wait_for(notified, STARTUP_LIMIT_S, what=f"publish job {job_id} to end")


async def versions(database: Database) -> int:
    async with database.reader() as session:
        return int(await session.scalar(select(func.count()).select_from(IntegrationVersion)) or 0)


@pytest.mark.parametrize("kind", ["procrastinate", "in-process"])
async def test_a_database_blip_is_retried_with_doubling_delays_then_publishes_once(
    kind: str, database: Database, shop: Catalog, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.WARNING, logger="generator.jobs")
    blips: list[str] = []

    async def blip_while_building(job: PublishJob, state: str) -> None:
        if state == "building" and not blips:
            blips.append(job.id)
            proxy.blip(refuse=2)

    notifier = RecordingNotifier(on_progress=blip_while_building)
    async with (
        through_proxy(database) as (proxy, proxied),
        runner(kind, database, proxied, notifier, shop) as running,
    ):
        job = await running.submit("blip")
        stored = await finished(database, job.id)

    retries = [match.groups() for match in map(RETRY.search, caplog.messages) if match]
    assert [(job_id, attempt, delay) for job_id, _, attempt, delay in retries] == [
        (job.id, "1", "0.2"),
        (job.id, "2", "0.4"),
    ]
    # The interrupted run and the one that finished claimed the job; the refused one never got to.
    assert (stored.state, stored.attempts) == ("published", 2)
    assert notifier.states(job.id) == ["generating", "building", "generating", "building", "publishing"]
    done = notifier.finished_for(job.id)
    assert [(entry.state, entry.version, entry.error) for entry in done] == [("published", "0.1.0", None)]
    assert await versions(database) == 1


@pytest.mark.parametrize("kind", ["procrastinate", "in-process"])
async def test_a_permanent_error_is_not_retried_and_the_user_is_told_once(
    kind: str, database: Database, shop: Catalog, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.WARNING, logger="generator.jobs")
    async with database.session() as session:
        await Environments(session).create("sandbox", development=True)

    async def remove_sandbox(job: PublishJob, state: str) -> None:
        if state == "building":  # an admin removes the target environment mid-job
            async with database.session() as session:
                environments = Environments(session)
                await environments.remove(await environments.require("sandbox"))

    notifier = RecordingNotifier(on_progress=remove_sandbox)
    async with (
        through_proxy(database) as (_, proxied),
        runner(kind, database, proxied, notifier, shop) as running,
    ):
        job = await running.submit("gone", "sandbox")
        stored = await finished(database, job.id)

    assert not [message for message in caplog.messages if RETRY.search(message)]
    assert (stored.state, stored.attempts) == ("failed", 1)
    done = notifier.finished_for(job.id)
    assert [(entry.state, entry.error) for entry in done] == [
        ("failed", "environment sandbox was removed while publishing; nothing was published")
    ]
    assert await versions(database) == 0


async def test_a_retry_while_the_job_is_deferred_again_and_published_again_ends_both_in_order(
    database: Database, shop: Catalog, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.WARNING)
    again: list[PublishJob] = []

    async def more_while_building(job: PublishJob, state: str) -> None:
        if state != "building" or again:
            return
        # While the job runs: a replica starts and defers every unfinished job (this one too),
        # and the user publishes the same integration again. Then the database blips.
        replica = ProcrastinateRunner(database)
        await Publisher(database, runner=replica).start()
        await replica.stop()  # once its deferrals are done
        again.append(await running.submit("twice", request=":again"))
        proxy.blip(refuse=2)

    notifier = RecordingNotifier(on_progress=more_while_building)
    async with (
        through_proxy(database) as (proxy, proxied),
        runner("procrastinate", database, proxied, notifier, shop) as running,
    ):
        first = await running.submit("twice")
        stored = await finished(database, first.id)
        second = await finished(database, again[0].id)

    retried = {match.group(1) for match in map(RETRY.search, caplog.messages) if match}
    assert retried == {first.id}
    assert not [f"{r.name}: {r.getMessage()}" for r in caplog.records if r.levelno >= logging.ERROR]
    assert (stored.state, second.state) == ("published", "published")
    # The retried job kept its turn: the second publish of the integration came after it.
    done = [notifier.finished_for(job.id) for job in (first, second)]
    assert [[(entry.state, entry.version) for entry in entries] for entries in done] == [
        [("published", "0.1.0")],
        [("published", "0.1.1")],
    ]
    assert await versions(database) == 2
