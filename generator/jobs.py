"""Where publish jobs run: the :class:`JobRunner` interface and the in-process runner.

The embedded default runs jobs as asyncio tasks inside ``ib serve``; their state lives in the
database, so a runner is only a scheduler and may be replaced without touching the job steps: on
PostgreSQL, ``generator/workers.py`` defers jobs to procrastinate and ``ib worker`` processes call
the executor with the job id.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from typing import Protocol

log = logging.getLogger(__name__)

Executor = Callable[[str], Awaitable[None]]
PendingJobs = Callable[[], Awaitable[list[str]]]

DEFAULT_CONCURRENCY = 4
# Jobs queued by another process (`ib publish` next to `ib serve`) are found this often.
DEFAULT_POLL_INTERVAL_S = 1.0
# Jobs still running at shutdown get this long; the rest resume at the next start.
DEFAULT_STOP_GRACE_S = 5.0


class JobRunner(Protocol):
    """Runs job ids through an executor; at most once at a time per id within the runner."""

    async def start(self) -> None: ...

    async def stop(self) -> None: ...

    def enqueue(self, job_id: str) -> None: ...


class InProcessRunner:
    """asyncio tasks with a concurrency limit, plus a poll of ``pending`` for job ids to run (at
    start, then every ``poll_interval`` seconds; ids already running here are skipped)."""

    def __init__(
        self,
        execute: Executor,
        *,
        pending: PendingJobs | None = None,
        concurrency: int = DEFAULT_CONCURRENCY,
        poll_interval: float = DEFAULT_POLL_INTERVAL_S,
        stop_grace: float = DEFAULT_STOP_GRACE_S,
    ) -> None:
        self._execute = execute
        self._pending = pending
        self._slots = asyncio.Semaphore(concurrency)
        self._poll_interval = poll_interval
        self._stop_grace = stop_grace
        # The event loop keeps only weak references to tasks: without this set they could vanish.
        self._tasks: set[asyncio.Task[None]] = set()
        self._active: set[str] = set()
        self._poller: asyncio.Task[None] | None = None
        self._running = False

    async def start(self) -> None:
        self._running = True
        if self._pending is not None and self._poller is None:
            self._poller = start_polling(self._pending, self.enqueue, self._poll_interval)

    async def stop(self) -> None:
        self._running = False
        await stop_polling(self._poller)
        self._poller = None
        if self._tasks:
            _, pending = await asyncio.wait(set(self._tasks), timeout=self._stop_grace)
            for task in pending:
                task.cancel()
            await asyncio.gather(*pending, return_exceptions=True)

    def enqueue(self, job_id: str) -> None:
        if not self._running or job_id in self._active:
            return
        self._active.add(job_id)
        task = asyncio.create_task(self._run(job_id), name=f"publish-job-{job_id}")
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _run(self, job_id: str) -> None:
        try:
            async with self._slots:
                await self._execute(job_id)
        except asyncio.CancelledError:
            raise
        except Exception:
            log.exception("publish job %s stopped on an unexpected error", job_id)
        finally:
            self._active.discard(job_id)


def start_polling(
    pending: PendingJobs, enqueue: Callable[[str], None], interval: float
) -> asyncio.Task[None]:
    """A task that enqueues ``pending()``'s job ids every ``interval`` seconds until cancelled."""

    async def poll() -> None:
        while True:
            try:
                job_ids = await pending()
            except Exception as error:  # a database hiccup must not end the poll for good
                log.warning("cannot look for publish jobs to run: %s", error.__class__.__name__)
                job_ids = []
            for job_id in job_ids:
                enqueue(job_id)
            await asyncio.sleep(interval)

    return asyncio.create_task(poll(), name="publish-job-poll")


async def stop_polling(poller: asyncio.Task[None] | None) -> None:
    if poller is not None:
        poller.cancel()
        await asyncio.gather(poller, return_exceptions=True)
