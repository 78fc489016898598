"""Work that runs after the ack: kept in tasks the service holds on to, started once the ack left.

Slack waits 3 s for an ack; fetching and parsing metadata, opening views and publishing take
longer or talk to Slack, so listeners ack first and hand the rest to :class:`BackgroundTasks`.
asyncio keeps only weak references to tasks and bolt keeps none, so without this set a running
task could be garbage-collected mid-way; it also lets shutdown wait for (or cancel) what runs.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Coroutine, Mapping
from typing import Any

log = logging.getLogger(__name__)

ACK_SENT = "ib_ack_sent"
"""Context key of an :class:`asyncio.Event` the HTTP and Socket Mode adapters set once the ack has
been sent (see ``bot/slack_app.py``)."""

# Slack applies an ack (a `response_action: update`, say) when it arrives; a views.update sent
# before that would be overwritten by it. An ack that is not sent within this time never will be.
ACK_WAIT_S = 3.0


async def after_ack(context: Mapping[str, Any]) -> None:
    """Return once the ack of the current request has left (at once when the adapter cannot tell)."""
    sent = context.get(ACK_SENT)
    if isinstance(sent, asyncio.Event):
        try:
            async with asyncio.timeout(ACK_WAIT_S):
                await sent.wait()
        except TimeoutError:
            log.warning("the ack was not sent within %.0f s; going on", ACK_WAIT_S)


class BackgroundTasks:
    """The service's after-the-ack tasks; failures are logged, never lost silently."""

    def __init__(self) -> None:
        self._running: set[asyncio.Task[None]] = set()
        self._closed = False

    def spawn(self, work: Coroutine[Any, Any, None], *, name: str) -> asyncio.Task[None] | None:
        """Run ``work`` in a task held until it ends; None (and ``work`` dropped) after :meth:`close`."""
        if self._closed:
            work.close()
            log.warning("not starting %s: the service is stopping", name)
            return None
        task = asyncio.create_task(work, name=name)
        self._running.add(task)
        task.add_done_callback(self._finished)
        return task

    def _finished(self, task: asyncio.Task[None]) -> None:
        self._running.discard(task)
        if not task.cancelled() and task.exception() is not None:
            log.error("background task %s failed", task.get_name(), exc_info=task.exception())

    @property
    def running(self) -> int:
        return len(self._running)

    async def close(self, grace_s: float = 5.0) -> None:
        """Refuse new work, give running tasks ``grace_s`` seconds, then cancel what is left."""
        self._closed = True
        if not self._running:
            return
        _, pending = await asyncio.wait(set(self._running), timeout=grace_s)
        for task in pending:
            task.cancel()
        if pending:
            await asyncio.wait(pending)
