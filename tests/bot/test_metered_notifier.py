"""/metrics counts a publish job once when it ends, even when its final notification is offered
again because Slack refused it for a while."""

from __future__ import annotations

from prometheus_client import REGISTRY

from bot.metrics import MeteredNotifier
from generator.publisher import NotifyLater
from storage.models import IntegrationVersion, PublishJob, utcnow


class RefusedOnce:
    """A notifier whose first final notification is rate limited, as Slack's 429 makes it."""

    def __init__(self) -> None:
        self.delivered = 0
        self.refused = 0

    async def progress(self, job: PublishJob, state: str) -> None:
        pass

    async def finished(
        self,
        job: PublishJob,
        version: IntegrationVersion | None,
        error: str | None,
        artifacts: list[tuple[str, bytes]],
    ) -> None:
        if not self.refused:
            self.refused += 1
            raise NotifyLater("rate limited", after=1.0)
        self.delivered += 1


def counted(state: str) -> float:
    return REGISTRY.get_sample_value("ib_publish_job_seconds_count", {"state": state}) or 0.0


async def test_a_job_whose_final_dm_is_retried_counts_once() -> None:
    inner = RefusedOnce()
    notifier = MeteredNotifier(inner)
    job = PublishJob(id="job-metered-1", state="failed", created_at=utcnow())
    before, errors_before = (
        counted("failed"),
        REGISTRY.get_sample_value("ib_errors_total", {"where": "publish"}) or 0,
    )

    try:
        await notifier.finished(job, None, "boom", [])
    except NotifyLater:
        pass
    await notifier.finished(job, None, "boom", [])

    assert inner.delivered == 1
    assert counted("failed") - before == 1
    assert (REGISTRY.get_sample_value("ib_errors_total", {"where": "publish"}) or 0) - errors_before == 1

    await notifier.finished(
        PublishJob(id="job-metered-2", state="failed", created_at=utcnow()), None, "x", []
    )
    assert counted("failed") - before == 2
