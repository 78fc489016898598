"""`/metrics` of a replica after Slack traffic: requests and ack latency per Slack kind, routes."""

from __future__ import annotations

import re

import httpx

from storage import Database
from tests.journeys.service import running_service, slack_settings
from tests.slack import DEVELOPER, Driver, FakeSlack


def sample(metrics: str, name: str, **labels: str) -> float:
    """The value of one sample of ``name`` with exactly ``labels`` (0 when absent)."""
    for line in metrics.splitlines():
        match = re.fullmatch(rf"{name}\{{(.*)\}} (\S+)", line)
        if match and dict(re.findall(r'(\w+)="([^"]*)"', match.group(1))) == labels:
            return float(match.group(2))
    return 0.0


async def test_metrics_count_slack_requests_by_kind_and_routes_and_jobs_per_state(
    database: Database, database_url: str, fake_slack: FakeSlack, slack_signing_secret: str
) -> None:
    settings = slack_settings(database_url, fake_slack, slack_signing_secret)
    async with running_service(settings, database) as service, httpx.AsyncClient() as client:
        before = (await client.get(f"{service.url}/metrics")).text
        async with Driver(service.url, slack_signing_secret, fake_slack) as driver:
            for _ in range(3):
                assert (await driver.slash_command(DEVELOPER, "help")).status == 200
            assert (await driver.event(DEVELOPER)).status == 200
        await client.get(f"{service.url}/healthz")
        response = await client.get(f"{service.url}/metrics")

    assert response.status_code == 200
    assert response.headers["Content-Type"].startswith("text/plain")
    after = response.text

    def grew(name: str, **labels: str) -> float:
        return sample(after, name, **labels) - sample(before, name, **labels)

    # Counters are per process, and other tests of this process count too: compare before/after.
    assert grew("ib_slack_requests_total", kind="command", status="200") == 3
    assert grew("ib_slack_ack_seconds_count", kind="command") == 3
    assert grew("ib_slack_requests_total", kind="event", status="200") == 1
    assert grew("ib_http_requests_total", route="/healthz", status="200") >= 1
    assert sample(after, "ib_publish_jobs", state="queued") == 0
    assert 'ib_publish_jobs{state="published"}' in after
