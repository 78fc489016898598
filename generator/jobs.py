"""Where publish jobs run: the :class:`JobRunner` interface and the in-process runner.

The embedded default runs jobs as asyncio tasks inside ``ib serve``; their state lives in the
database, so a runner is only a scheduler and may be replaced without touching the job steps: on
PostgreSQL, ``generator/workers.py`` defers jobs to procrastinate and ``ib worker`` processes call
the executor with the job id.

Both runners retry a job whose run ended on a transient failure (:func:`is_transient`) after
:func:`retry_delay` (the base delay, then twice as long each time, up to :data:`RETRY_RUNS` runs),
and both can withdraw a job that no runner started yet (:meth:`JobRunner.cancel`).
"""

from __future__ import annotations

import asyncio
import errno
import logging
import socket
from collections.abc import Awaitable, Callable
from typing import Final, Protocol

from sqlalchemy.exc import DBAPIError, InterfaceError, OperationalError

log = logging.getLogger(__name__)

Executor = Callable[[str], Awaitable[None]]
PendingJobs = Callable[[], Awaitable[list[str]]]

DEFAULT_CONCURRENCY = 4
# Jobs queued by another process (`ib publish` next to `ib serve`) are found this often.
DEFAULT_POLL_INTERVAL_S = 1.0
# Jobs still running at shutdown get this long; the rest resume at the next start.
DEFAULT_STOP_GRACE_S = 5.0
# Runs of one job, the first included, while its runs end on transient failures.
RETRY_RUNS: Final = 5
RETRY_BASE_DELAY_S: Final = 2.0


# OSErrors of a network that did not answer; a full disk or a missing permission is not one: running
# the job again would fail the same way, so it fails at once and says so.
_NETWORK_ERRNOS: Final = frozenset(
    {
        errno.ECONNREFUSED,
        errno.ECONNRESET,
        errno.ECONNABORTED,
        errno.EPIPE,
        errno.ETIMEDOUT,
        errno.EHOSTUNREACH,
        errno.EHOSTDOWN,
        errno.ENETUNREACH,
        errno.ENETDOWN,
        errno.ENETRESET,
    }
)


def is_transient(error: BaseException) -> bool:
    """True when the database or the network did not answer (a restart, a blip, a lock held too
    long): the job's state is in the database, so running the same job again later resumes it."""
    if isinstance(error, DBAPIError):
        return error.connection_invalidated or isinstance(error, OperationalError | InterfaceError)
    if isinstance(error, ConnectionError | TimeoutError | socket.gaierror):
        return True
    return isinstance(error, OSError) and error.errno in _NETWORK_ERRNOS


def retry_delay(job_id: str, error: BaseException, runs: int, base_delay: float) -> float | None:
    """Seconds to wait before running ``job_id`` again after ``error`` ended its run number
    ``runs`` (``base_delay``, then twice as long each time); None when it is not run again."""
    if not is_transient(error):
        return None
    reason = error.__class__.__name__
    if runs >= RETRY_RUNS:
        log.error(
            "publish job %s: %s in each of %d runs; it is not retried until the service restarts",
            job_id,
            reason,
            runs,
        )
        return None
    delay = base_delay * 2 ** (runs - 1)
    log.warning(
        "publish job %s: transient failure (%s); retry %d of %d in %g s",
        job_id,
        reason,
        runs,
        RETRY_RUNS - 1,
        delay,
    )
    return delay


class JobRunner(Protocol):
    """Runs job ids through an executor; at most once at a time per id within the runner."""

    async def start(self) -> None: ...

    async def stop(self) -> None: ...

    def enqueue(self, job_id: str) -> None: ...

    async def cancel(self, job_id: str) -> bool:
        """Withdraw ``job_id`` from this runner's queue unless a run of it started; False when one
        did. The job's own state (``publish_jobs``) is the caller's to change."""
        ...


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
        retry_base_delay: float = RETRY_BASE_DELAY_S,
    ) -> None:
        self._execute = execute
        self._pending = pending
        self._slots = asyncio.Semaphore(concurrency)
        self._poll_interval = poll_interval
        self._stop_grace = stop_grace
        self._retry_base_delay = retry_base_delay
        # The event loop keeps only weak references to tasks: without this dict they could vanish.
        self._tasks: dict[str, asyncio.Task[None]] = {}
        self._started: set[str] = set()  # ids whose first run began (waiting for a slot no more)
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
            _, pending = await asyncio.wait(set(self._tasks.values()), timeout=self._stop_grace)
            for task in pending:
                task.cancel()
            await asyncio.gather(*pending, return_exceptions=True)

    def enqueue(self, job_id: str) -> None:
        if not self._running or job_id in self._tasks:
            return
        task = asyncio.create_task(self._run(job_id), name=f"publish-job-{job_id}")
        self._tasks[job_id] = task
        task.add_done_callback(lambda _: self._forget(job_id))

    def _forget(self, job_id: str) -> None:
        self._tasks.pop(job_id, None)
        self._started.discard(job_id)

    async def cancel(self, job_id: str) -> bool:
        if job_id in self._started:
            return False
        task = self._tasks.get(job_id)
        if task is not None:  # still waiting for a slot
            task.cancel()
            await asyncio.gather(task, return_exceptions=True)
        return True

    async def _run(self, job_id: str) -> None:
        runs = 0
        while True:
            runs += 1
            try:
                async with self._slots:
                    self._started.add(job_id)
                    await self._execute(job_id)
                return
            except asyncio.CancelledError:
                raise
            except Exception as error:
                delay = retry_delay(job_id, error, runs, self._retry_base_delay)
                if delay is None:
                    if not is_transient(error):
                        log.exception("publish job %s stopped on an unexpected error", job_id)
                    return
            await asyncio.sleep(delay)


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
