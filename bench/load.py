"""Simulated users running the whole wizard and a publish, on the scaled-out service and on the
embedded default, in the same run on the same machine.

- scaled out: 2 `ib serve` replicas and 2 `ib worker` processes on one throwaway PostgreSQL
  database (``--postgres``); each user's requests alternate between the replicas, as behind a load
  balancer that does not pin sessions.
- embedded: 1 `ib serve` on its SQLite file, running the jobs in-process.

This process plays Slack (the fake Web API of tests/slack and signed requests). Each user: `/ib
new` -> provider -> uploads GWSAMPLE_BASIC.edmx -> picks two objects (with searches) -> settings ->
review -> Publish, all users at once. Then it waits until every job ended and checks: no errors
(every ack 200 within Slack's 3 s), no lost publish (one published version per user) and no
duplicate (one job and one version per user). Prints ack p50/p99 per kind and publishes per
second; exits 1 if a check fails or the scaled-out ack p99 is over 150 ms.

    .venv/bin/python bench/load.py [--users 200] [--postgres postgresql+asyncpg://postgres@127.0.0.1/postgres]
"""

from __future__ import annotations

import argparse
import asyncio
import itertools
import os
import secrets
import sys
import tempfile
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from sqlalchemy import func, select  # noqa: E402

from storage import Database, generate_key  # noqa: E402
from storage.models import IntegrationVersion, PublishJob  # noqa: E402
from tests.bot.test_serve import Served  # noqa: E402
from tests.fixtures.corpora import corpus_file  # noqa: E402
from tests.fixtures.db import throwaway_postgres_database  # noqa: E402
from tests.journeys.wizard_user import WizardUser  # noqa: E402
from tests.scale.deployment import start_replica, start_worker  # noqa: E402
from tests.slack import Driver, FakeSlack  # noqa: E402

P99_BUDGET_MS = 150.0
PUBLISH_LIMIT_S = 1800.0  # failure detection only
JOURNEY_LIMIT_S = 600.0  # failure detection only: a stuck journey counts as an error
EDMX = corpus_file("sap-v2/GWSAMPLE_BASIC.edmx").read_bytes()


class RoundRobinDriver(Driver):
    """Slack delivering each request to the next replica in turn."""

    def __init__(self, app_urls: Sequence[str], signing_secret: str, fake: FakeSlack) -> None:
        super().__init__(app_urls[0], signing_secret, fake)
        self._urls = itertools.cycle([url.rstrip("/") + "/slack/events" for url in app_urls])

    @property
    def url(self) -> str:
        return next(self._urls)

    @url.setter
    def url(self, value: str) -> None:
        """Driver's constructor sets one URL; the rotation replaces it."""


@dataclass
class Figures:
    name: str
    users: int
    errors: list[str] = field(default_factory=list)
    latencies: list[tuple[str, float]] = field(default_factory=list)
    published: int = 0
    jobs: int = 0
    versions: int = 0
    seconds: float = 0.0

    def p(self, kind: str | None, quantile: float) -> float:
        values = sorted(latency for k, latency in self.latencies if kind is None or k == kind)
        if not values:
            return 0.0
        return 1000 * values[min(len(values) - 1, int(quantile * len(values)))]

    def report(self) -> None:
        print(f"\n{self.name}: {self.users} users, {len(self.latencies)} Slack requests")
        for kind in sorted({kind for kind, _ in self.latencies}):
            count = sum(1 for k, _ in self.latencies if k == kind)
            print(
                f"  {kind:18} n={count:5}  p50 {self.p(kind, 0.5):7.1f} ms  p99 {self.p(kind, 0.99):7.1f} ms"
            )
        print(f"  {'all':18}              p50 {self.p(None, 0.5):7.1f} ms  p99 {self.p(None, 0.99):7.1f} ms")
        rate = self.published / self.seconds if self.seconds else 0.0
        print(
            f"  published {self.published}/{self.users} (jobs {self.jobs}, versions {self.versions}) in "
            f"{self.seconds:.1f} s: {rate:.2f} publishes/s; errors: {len(self.errors)}"
        )
        for error in self.errors[:10]:
            print(f"    {error}")


async def journey(driver: Driver, fake: FakeSlack, index: int) -> None:
    member = fake.workspace.add_user(f"load{index}")
    user = WizardUser(driver, fake, member)
    upload = fake.workspace.add_user_file(member.id, "GWSAMPLE_BASIC.edmx", EDMX, "application/xml")
    await user.start()
    await user.choose_provider("sap-odata")
    await user.give_source(metadata_file=[upload])
    await user.pick_objects(read_write=["BusinessPartnerSet"], read_only=["ProductSet"])
    await user.fill_settings(application_name=f"Load {index}", module_name=f"load_{index}")
    await user.wait_step("review")
    await user.submit()
    await user.wait_step("publishing")


async def count(database: Database) -> tuple[int, int, int]:
    async with database.session() as session:
        jobs = await session.scalar(select(func.count()).select_from(PublishJob))
        ended = await session.scalar(
            select(func.count()).select_from(PublishJob).where(PublishJob.state.in_(("published", "failed")))
        )
        versions = await session.scalar(select(func.count()).select_from(IntegrationVersion))
    return int(jobs or 0), int(ended or 0), int(versions or 0)


async def run(name: str, database_url: str, users: int, replicas: int, workers: int, folder: Path) -> Figures:
    figures = Figures(name, users)
    secret = secrets.token_hex(16)
    async with FakeSlack() as fake:
        env = {
            "IB_DATABASE_URL": database_url,
            "IB_SECRET_KEYS": generate_key(),
            "IB_ALLOW_PRIVATE_URLS": "1",
            "IB_LOG_LEVEL": "WARNING",
            "SLACK_SIGNING_SECRET": secret,
            "SLACK_BOT_TOKEN": fake.bot_token,
            "IB_SLACK_API_URL": fake.api_url,
        }
        processes: list[Served] = []
        database = Database(database_url)
        try:
            # The first replica migrates; the rest start against the migrated database.
            processes.append(await asyncio.to_thread(start_replica, folder, "serve-0", env))
            for number in range(1, replicas):
                processes.append(await asyncio.to_thread(start_replica, folder, f"serve-{number}", env))
            for number in range(workers):
                processes.append(await asyncio.to_thread(start_worker, folder, f"worker-{number}", env))
            urls = [process.base_url for process in processes[:replicas]]
            async with RoundRobinDriver(urls, secret, fake) as driver:
                started = time.perf_counter()
                outcomes = await asyncio.gather(
                    *(
                        asyncio.wait_for(journey(driver, fake, index), JOURNEY_LIMIT_S)
                        for index in range(users)
                    ),
                    return_exceptions=True,
                )
                figures.errors += [
                    f"{type(o).__name__}: {o}" for o in outcomes if isinstance(o, BaseException)
                ]
                deadline = time.monotonic() + PUBLISH_LIMIT_S
                while time.monotonic() < deadline:
                    jobs, ended, _ = await count(database)
                    if jobs >= users - len(figures.errors) and ended == jobs:
                        break
                    await asyncio.sleep(0.2)
                figures.seconds = time.perf_counter() - started
                figures.latencies = list(driver.latencies)
                figures.errors += driver.failures
                driver.failures.clear()
            figures.jobs, _, figures.versions = await count(database)
            async with database.session() as session:
                figures.published = int(
                    await session.scalar(
                        select(func.count()).select_from(PublishJob).where(PublishJob.state == "published")
                    )
                    or 0
                )
        finally:
            for process in processes:
                await asyncio.to_thread(process.stop)
            await database.dispose()
    if figures.published != users or figures.jobs != users or figures.versions != users:
        figures.errors.append(
            f"expected {users} published jobs and versions: {figures.published} published, "
            f"{figures.jobs} jobs, {figures.versions} versions"
        )
    return figures


async def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--users", type=int, default=200)
    parser.add_argument(
        "--postgres",
        default=os.environ.get(
            "IB_TEST_POSTGRES_URL", "postgresql+asyncpg://postgres@127.0.0.1:5432/postgres"
        ),
    )
    args = parser.parse_args()
    results: list[Figures] = []
    with tempfile.TemporaryDirectory() as folder:
        async with throwaway_postgres_database(args.postgres) as url:
            scaled = Path(folder) / "scaled"
            scaled.mkdir()
            results.append(await run("2 replicas + 2 workers, PostgreSQL", url, args.users, 2, 2, scaled))
            results[-1].report()
        embedded = Path(folder) / "embedded"
        embedded.mkdir()
        sqlite_url = f"sqlite+aiosqlite:///{embedded / 'ib.db'}"
        results.append(await run("embedded (1 ib serve, SQLite)", sqlite_url, args.users, 1, 0, embedded))
        results[-1].report()
    scaled_out, embedded_default = results
    if embedded_default.seconds and scaled_out.seconds:
        ratio = (scaled_out.published / scaled_out.seconds) / max(
            embedded_default.published / embedded_default.seconds, 1e-9
        )
        print(f"\nthroughput scaled out / embedded: {ratio:.2f}x")
    failed = any(figures.errors for figures in results) or scaled_out.p(None, 0.99) > P99_BUDGET_MS
    print("FAIL" if failed else "OK")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(asyncio.run(main()))
