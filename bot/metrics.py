"""``/metrics``: Prometheus metrics of one ``ib serve`` replica (or one ``ib worker``).

Every process counts what it handled itself in prometheus_client's default registry and serves
it; Prometheus scrapes each replica and sums. The number of publish jobs per state is read from
the shared database at each scrape instead, so every replica reports the same true figure (take
the ``max`` across replicas, not the sum).

- ``ib_slack_requests_total{kind,status}`` and ``ib_slack_ack_seconds{kind}``: requests to
  ``/slack/events`` or over Socket Mode by Slack kind (``command``, ``block_actions``, ``view_submission``,
  ``block_suggestion``, ``event``, ...), and the time from receiving one to the end of its ack.
- ``ib_http_requests_total{route,status}``: every other route, by its pattern (so the manager
  runtime API is ``route="/manager/v1/integrations/{module}/connection"``).
- ``ib_publish_transitions_total{state}``, ``ib_publish_job_seconds{state}``: job steps this
  process ran, and the time from queueing to the end of jobs it finished (``published``/``failed``).
- ``ib_publish_jobs{state}``: jobs in the database per state, at scrape time.
- ``ib_errors_total{where}``: ``http`` (5xx answers and unhandled exceptions), ``publish`` (failed
  jobs), ``notification`` (a progress or final message that could not be sent).
"""

from __future__ import annotations

import json
import logging
import time
from collections import OrderedDict
from collections.abc import Awaitable, Callable, Mapping
from datetime import UTC, datetime
from typing import Any, Final
from urllib.parse import parse_qs

from aiohttp import web
from prometheus_client import CONTENT_TYPE_LATEST, Counter, Gauge, Histogram, generate_latest
from sqlalchemy import func, select

from bot.app_keys import DATABASE, PUBLISHER
from generator.publisher import PublishNotifier
from storage import Database
from storage.models import PUBLISH_STATES, IntegrationVersion, PublishJob

log = logging.getLogger(__name__)

METRICS_PATH: Final = "/metrics"
_EVENTS_PATH: Final = "/slack/events"
# Slack gives up on an ack after 3 s; the buckets resolve the range that matters below it.
_ACK_BUCKETS: Final = (0.005, 0.01, 0.025, 0.05, 0.1, 0.15, 0.25, 0.5, 1.0, 2.0, 3.0, 5.0)
_JOB_BUCKETS: Final = (0.5, 1, 2, 5, 10, 20, 30, 60, 120, 300, 600)

SLACK_REQUESTS = Counter(
    "ib_slack_requests",
    "Slack requests (HTTP or Socket Mode) by Slack kind and status",
    ["kind", "status"],
)
SLACK_ACK_SECONDS = Histogram(
    "ib_slack_ack_seconds",
    "Seconds from receiving a Slack request to the end of its ack",
    ["kind"],
    buckets=_ACK_BUCKETS,
)
HTTP_REQUESTS = Counter(
    "ib_http_requests", "Requests to routes other than /slack/events, by route pattern", ["route", "status"]
)
PUBLISH_TRANSITIONS = Counter(
    "ib_publish_transitions", "Publish job steps started in this process", ["state"]
)
PUBLISH_JOB_SECONDS = Histogram(
    "ib_publish_job_seconds",
    "Seconds from queueing a publish job to its end, for jobs this process finished",
    ["state"],
    buckets=_JOB_BUCKETS,
)
PUBLISH_JOBS = Gauge("ib_publish_jobs", "Publish jobs in the database per state", ["state"])
ERRORS = Counter("ib_errors", "Errors by where they happened", ["where"])


def payload_kind(payload: Mapping[str, Any]) -> str:
    """The Slack kind of a request's decoded payload (form fields, JSON body or Socket Mode envelope
    payload): ``command``, an interactivity payload's ``type``, ``event``."""
    if "command" in payload:
        return "command"
    kind = payload.get("type")
    return "event" if kind == "event_callback" else str(kind or "unknown")


def slack_kind(body: bytes, content_type: str) -> str:
    """The kind of a Slack HTTP request (see :func:`payload_kind`)."""
    try:
        if content_type == "application/json":
            return payload_kind(json.loads(body))
        form = parse_qs(body.decode("utf-8"))
        if "command" in form:
            return "command"
        if "payload" in form:
            return payload_kind(json.loads(form["payload"][0]))
    except (ValueError, AttributeError, UnicodeDecodeError):
        pass
    return "unknown"


def count_slack_request(kind: str, status: int, started: float) -> None:
    """Count one Slack request, HTTP or Socket Mode, acked now (``started``: its perf_counter)."""
    SLACK_REQUESTS.labels(kind, str(status)).inc()
    SLACK_ACK_SECONDS.labels(kind).observe(time.perf_counter() - started)


Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


@web.middleware
async def measure_requests(request: web.Request, handler: Handler) -> web.StreamResponse:
    started = time.perf_counter()
    slack = request.path == _EVENTS_PATH and request.method == "POST"
    # aiohttp keeps the body it read, so the handler reads the same bytes again.
    kind = slack_kind(await request.read(), request.content_type) if slack else ""
    status = 500
    try:
        response = await handler(request)
        status = response.status
        return response
    except web.HTTPException as http_error:
        status = http_error.status
        raise
    finally:
        if status >= 500:
            ERRORS.labels("http").inc()
        if slack:
            count_slack_request(kind, status, started)
        elif request.path != METRICS_PATH:
            route = request.match_info.route.resource
            pattern = route.canonical if route is not None else "unmatched"
            HTTP_REQUESTS.labels(pattern, str(status)).inc()


_COUNTED_JOBS = 4096


class MeteredNotifier:
    """Counts a publisher's transitions and finished jobs, then hands them to ``inner``."""

    def __init__(self, inner: PublishNotifier) -> None:
        self.inner = inner
        # A final notification Slack refuses is offered again (the publisher retries it): the job
        # ended once, so it is counted once. Bounded: only recent jobs can be offered again.
        self._counted: OrderedDict[str, None] = OrderedDict()

    async def progress(self, job: PublishJob, state: str) -> None:
        PUBLISH_TRANSITIONS.labels(state).inc()
        try:
            await self.inner.progress(job, state)
        except Exception:
            ERRORS.labels("notification").inc()
            raise

    async def finished(
        self,
        job: PublishJob,
        version: IntegrationVersion | None,
        error: str | None,
        artifacts: list[tuple[str, bytes]],
    ) -> None:
        if job.id not in self._counted:
            self._counted[job.id] = None
            if len(self._counted) > _COUNTED_JOBS:
                self._counted.popitem(last=False)
            created = job.created_at if job.created_at.tzinfo else job.created_at.replace(tzinfo=UTC)
            PUBLISH_JOB_SECONDS.labels(job.state).observe((datetime.now(UTC) - created).total_seconds())
            if job.state == "failed":
                ERRORS.labels("publish").inc()
        try:
            await self.inner.finished(job, version, error, artifacts)
        except Exception:
            ERRORS.labels("notification").inc()
            raise


async def count_jobs(database: Database) -> None:
    """Set ``ib_publish_jobs`` from the database (every state, zero included)."""
    async with database.reader() as session:
        rows = (
            await session.execute(select(PublishJob.state, func.count()).group_by(PublishJob.state))
        ).all()
    counts = {str(state): int(count) for state, count in rows}
    for state in PUBLISH_STATES:
        PUBLISH_JOBS.labels(state).set(counts.get(state, 0))


async def metrics(request: web.Request) -> web.Response:
    try:
        await count_jobs(request.app[DATABASE])
    except Exception as error:  # the process's own counters are still worth serving
        log.warning("metrics: cannot count publish jobs: %s", error.__class__.__name__)
    return web.Response(body=generate_latest(), headers={"Content-Type": CONTENT_TYPE_LATEST})


def install_metrics(app: web.Application) -> None:
    """``/metrics``, the request middleware, and the metered publisher notifier.

    Comes after every installer that replaces ``app[PUBLISHER].notifier``, so it wraps the final one.
    """
    app.router.add_get(METRICS_PATH, metrics)
    app.middlewares.append(measure_requests)
    if PUBLISHER in app:
        publisher = app[PUBLISHER]
        publisher.notifier = MeteredNotifier(publisher.notifier)
