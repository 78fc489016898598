"""Simulated users running the whole wizard and a publish, on the scaled-out service and on the
embedded default, in the same run on the same machine.

- scaled out: 2 `ib serve` replicas and 2 `ib worker` processes on one throwaway PostgreSQL
  database (``--postgres``); each request goes to the next replica in turn, as behind a load
  balancer that does not pin users (a user's consecutive requests land on different replicas).
  The workers run at a lower CPU priority (``--worker-nice``, 10), as an operator runs them beside
  the replicas on one machine: at equal priority, four package builds at a time take both cores
  from the replicas and acks wait seconds (the embedded default builds in threads of the one
  process, whose event loop keeps its share).
  Each worker runs ``--worker-concurrency`` jobs at a time (default: `ib worker`'s, the embedded
  runner's too), so the scaled-out setup has twice the embedded one's slots.
- embedded: 1 `ib serve` on its SQLite file, running the jobs in-process.

This process plays Slack (the fake Web API of tests/slack and signed requests). Each user, the
developer role in dev granted: `/ib new` -> provider -> uploads GWSAMPLE_BASIC.edmx -> picks two
objects (with searches) -> settings -> review; users start evenly over ``--ramp`` seconds (0: all
at once). Once all are at the review they press Publish, evenly over ``--publish-window`` seconds:
200 in 8 s (25/s) is faster than either setup publishes here, so jobs queue up and the publish
phase measures what the processes build and publish, not the users' pace (the run says when that
pace was the bound); much shorter windows measure the replicas acking a burst of presses instead
(200 in 2 s: ack p99 about 1 s on 2 busy cores). The users stand for those of ``--workspaces``
workspaces of a multi-workspace install: the fake applies that many workspaces' Slack limits (one
workspace allows 100 views.update and 50 chat.update a minute, which 200 users' modals and publish
DMs exceed within a minute: the run would measure Slack's limits, not the service).

What bounds publishes/s is the CPU, as the printed CPU share over the publish phase shows: scaled
out, the builds, PostgreSQL, the replicas and this process keep both cores busy; embedded, the
builds run in threads of one Python process, so about one core (50% of 2). Not Slack: a job's
slot is free once its final DM is claimed, the DM (paced, rate-limited by Slack) follows in the
background, and the phase ends at the last job's ``finished_at``; the final DMs are waited for and
counted afterwards.

Then it waits until every job ended (or nothing moved for STALL_S) and checks: no errors (every
ack 200 within Slack's 3 s, every journey at the publishing view), no lost publish (one published
job, one version and one final DM per user) and no duplicate. Prints
ack p50/p99 per kind, publishes per second (over the publish phase: first job queued to last job
finished), where a job's time went (waiting for a runner, running, until its final DM's claim), how
many jobs ran at once, the CPU share over the phase and the load average; exits 1 if a check fails
or the scaled-out ack p99 is over 150 ms.

    .venv/bin/python bench/load.py [--users 200] [--ramp 60] [--publish-window 8] [--workspaces 10]
        [--worker-nice 10] [--worker-concurrency 4]
        [--postgres postgresql+asyncpg://postgres@127.0.0.1/postgres]
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import sys
import tempfile
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from sqlalchemy import func, select  # noqa: E402

from generator.jobs import DEFAULT_CONCURRENCY  # noqa: E402
from storage import Database  # noqa: E402
from storage.models import IntegrationVersion, PublishJob  # noqa: E402
from tests.fixtures.corpora import corpus_file  # noqa: E402
from tests.fixtures.db import throwaway_postgres_database  # noqa: E402
from tests.journeys.publishing import state_of  # noqa: E402
from tests.journeys.wizard_user import WizardUser  # noqa: E402
from tests.scale.balancer import Replicated, replicated  # noqa: E402
from tests.slack import FakeSlack, SlackUser, wait_for  # noqa: E402

P99_BUDGET_MS = 150.0
JOURNEY_LIMIT_S = 300.0  # failure detection only: a stuck journey counts as an error
STALL_S = 60.0  # failure detection only: no job moved for this long
DM_GRACE_S = 30.0  # the final DM follows the job's final state
EDMX = corpus_file("sap-v2/GWSAMPLE_BASIC.edmx").read_bytes()


def _quantile(values: list[float], quantile: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(quantile * len(ordered)))] if ordered else 0.0


@dataclass
class Figures:
    name: str
    users: int
    errors: list[str] = field(default_factory=list)
    latencies: list[tuple[str, float]] = field(default_factory=list)
    publish_acks: int = 0  # the last ones of ``latencies``: acked once users pressed Publish
    published: int = 0
    jobs: int = 0
    versions: int = 0
    final_dms: int = 0
    lost: int = 0  # users at the publishing view without exactly one published job, version and DM
    duplicated: int = 0  # users with more than one job, version or final DM
    seconds: float = 0.0  # first `/ib new` to last job finished
    publish_seconds: float = 0.0  # first job queued to last job finished
    phase: list[str] = field(default_factory=list)  # where the publish phase went (:func:`phase`)

    def p(self, kind: str | None, quantile: float) -> float:
        return 1000 * _quantile(
            [latency for k, latency in self.latencies if kind is None or k == kind], quantile
        )

    @property
    def rate(self) -> float:
        return self.published / self.publish_seconds if self.publish_seconds else 0.0

    def report(self) -> None:
        print(f"\n{self.name}: {self.users} users, {len(self.latencies)} Slack requests")
        for kind in sorted({kind for kind, _ in self.latencies}):
            count = sum(1 for k, _ in self.latencies if k == kind)
            print(
                f"  {kind:18} n={count:5}  p50 {self.p(kind, 0.5):7.1f} ms  p99 {self.p(kind, 0.99):7.1f} ms"
            )
        print(f"  {'all':18}              p50 {self.p(None, 0.5):7.1f} ms  p99 {self.p(None, 0.99):7.1f} ms")
        if self.publish_acks:
            pressed = [latency for _, latency in self.latencies[-self.publish_acks :]]
            print(
                f"  of which once users pressed Publish: n={len(pressed)}, "
                f"p99 {1000 * _quantile(pressed, 0.99):.1f} ms"
            )
        print(
            f"  published {self.published}/{self.users} (jobs {self.jobs}, versions {self.versions}, "
            f"final DMs {self.final_dms}); lost {self.lost}, duplicated {self.duplicated}"
        )
        print(
            f"  publish phase {self.publish_seconds:.1f} s: "
            f"{self.rate:.2f} publishes/s; whole run {self.seconds:.1f} s; errors: {len(self.errors)}"
        )
        for line in self.phase:
            print(f"  {line}")
        for error in self.errors[:10]:
            print(f"    {error}")


class Gate:
    """Opens once every user got to the review (or failed on the way)."""

    def __init__(self, parties: int) -> None:
        self.left = parties
        self.opened = asyncio.Event()

    def arrive(self) -> None:
        self.left -= 1
        if self.left <= 0:
            self.opened.set()


async def journey(
    running: Replicated, member: SlackUser, index: int, start: float, gate: Gate, publish: float
) -> None:
    """The wizard from ``start`` seconds on, then Publish ``publish`` seconds after the gate opened."""
    await asyncio.sleep(start)
    fake = running.fake
    user = WizardUser(running.driver, fake, member)
    upload = fake.workspace.add_user_file(member.id, "GWSAMPLE_BASIC.edmx", EDMX, "application/xml")
    try:
        await user.start()
        await user.choose_provider("sap-odata")
        await user.give_source(metadata_file=[upload])
        await user.pick_objects(read_write=["BusinessPartnerSet"], read_only=["ProductSet"])
        await user.fill_settings(application_name=f"Load {index}", module_name=f"load_{index}")
        await user.wait_step("review")
    finally:
        gate.arrive()
    await gate.opened.wait()
    await asyncio.sleep(publish)
    await user.submit()
    await user.wait_step("publishing")


async def counted_at(gate: Gate, latencies: list[tuple[str, float]]) -> int:
    await gate.opened.wait()
    return len(latencies)


async def counts(database: Database) -> tuple[int, int, int, int]:
    """Jobs, ended jobs, published jobs, versions."""
    async with database.session() as session:
        jobs = select(func.count()).select_from(PublishJob)
        found = (
            await session.scalar(jobs),
            await session.scalar(jobs.where(PublishJob.state.in_(("published", "failed")))),
            await session.scalar(jobs.where(PublishJob.state == "published")),
            await session.scalar(select(func.count()).select_from(IntegrationVersion)),
        )
    return tuple(int(value or 0) for value in found)  # type: ignore[return-value]


class CpuSampler:
    """The machine's busy CPU time (``/proc/stat``, every process on it) sampled while it runs,
    to tell whether a publish phase was bound by the CPU."""

    def __init__(self, interval: float = 0.25) -> None:
        self.interval = interval
        self.samples: list[tuple[datetime, int, int]] = []  # (when, busy ticks, all ticks)

    def sample(self) -> None:
        ticks = _cpu_ticks()
        if ticks is not None:
            self.samples.append((datetime.now(UTC), *ticks))

    async def run(self) -> None:
        while True:
            self.sample()
            await asyncio.sleep(self.interval)

    def busy(self, start: datetime, end: datetime) -> float | None:
        """The share of all cores busy from ``start`` to ``end``; None without samples around it."""
        before = [sample for sample in self.samples if sample[0] <= start]
        after = [sample for sample in self.samples if sample[0] >= end]
        if not before or not after:
            return None
        (_, busy0, all0), (_, busy1, all1) = before[-1], after[0]
        return (busy1 - busy0) / (all1 - all0) if all1 > all0 else None


def _cpu_ticks() -> tuple[int, int] | None:
    """(busy, all) CPU ticks of the machine since boot; None when not on Linux."""
    try:
        with open("/proc/stat") as stat:
            ticks = [int(value) for value in stat.readline().split()[1:]]
    except OSError:
        return None
    return sum(ticks) - ticks[3] - ticks[4], sum(ticks)  # less idle and iowait


def _aware(moment: datetime) -> datetime:
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


def _p50_p99(values: list[float]) -> str:
    if not values:
        return "-"
    return f"p50 {_quantile(values, 0.5):.2f} s p99 {_quantile(values, 0.99):.2f} s"


async def phase(figures: Figures, database: Database, cpu: CpuSampler) -> None:
    """The publish phase (first job queued to last job finished) and where its time went: how fast
    the users queued jobs, each job's wait for a runner (queued to started), run (started to
    finished) and final DM claim (finished to claimed), how many jobs ran at once on average, and
    how busy the CPU was."""
    async with database.session() as session:
        rows = [
            tuple(_aware(moment) if moment else None for moment in row)
            for row in await session.execute(
                select(
                    PublishJob.created_at,
                    PublishJob.started_at,
                    PublishJob.finished_at,
                    PublishJob.notified_at,
                )
            )
        ]
    created = [row[0] for row in rows if row[0]]
    finished = [row[2] for row in rows if row[2]]
    if not created or not finished:
        return
    first, last = min(created), max(finished)
    figures.publish_seconds = (last - first).total_seconds()
    queueing = (max(created) - first).total_seconds()
    waited = [(s - c).total_seconds() for c, s, f, _ in rows if c and s and f]
    ran = [(f - s).total_seconds() for _, s, f, _ in rows if s and f]
    claimed = [(n - f).total_seconds() for _, _, f, n in rows if f and n]
    lines = [
        f"users queued {len(created)} jobs in {queueing:.1f} s"
        + (f" ({len(created) / queueing:.1f}/s)" if queueing else ""),
        f"jobs: waiting for a runner {_p50_p99(waited)}; running {_p50_p99(ran)}; "
        f"final DM claimed {_p50_p99(claimed)} after",
    ]
    at_once = sum(ran) / figures.publish_seconds if figures.publish_seconds else 0.0
    busy = cpu.busy(first, last)
    cpu_line = f"jobs running at once {at_once:.1f}"
    if busy is not None:
        cpu_line += f"; CPU busy {100 * busy:.0f}% of {os.cpu_count()} cores over the publish phase"
    lines.append(cpu_line)
    if queueing and figures.rate > 0.8 * len(created) / queueing:
        lines.append("the users' pace bounds this figure, not the service: shorten --publish-window")
    figures.phase = lines


async def per_user(database: Database) -> dict[str, tuple[int, int, int]]:
    """Per requester: jobs, published jobs, versions."""
    found: dict[str, tuple[int, int, int]] = {}
    async with database.session() as session:
        for user_id, jobs, published in await session.execute(
            select(
                PublishJob.requested_by,
                func.count(),
                func.count().filter(PublishJob.state == "published"),
            ).group_by(PublishJob.requested_by)
        ):
            found[user_id] = (int(jobs), int(published), 0)
        for user_id, versions in await session.execute(
            select(IntegrationVersion.created_by, func.count()).group_by(IntegrationVersion.created_by)
        ):
            jobs, published, _ = found.get(user_id, (0, 0, 0))
            found[user_id] = (jobs, published, int(versions))
    return found


def final_dms(fake: FakeSlack, user_ids: list[str]) -> dict[str, int]:
    """Per user, how many of their DMs show a finished publish."""
    return {
        user_id: sum(1 for m in fake.messages_for(user_id) if state_of(m.text) in ("published", "failed"))
        for user_id in user_ids
    }


async def settle(figures: Figures, database: Database, expected: int) -> None:
    """Until ``expected`` jobs exist and all ended; an error when nothing moves for STALL_S."""
    last: tuple[int, int, int, int] | None = None
    moved = time.monotonic()
    while True:
        now = await counts(database)
        jobs, ended, _, _ = now
        if jobs >= expected and ended == jobs:
            return
        if now != last:
            last, moved = now, time.monotonic()
        elif time.monotonic() - moved > STALL_S:
            figures.errors.append(f"stalled: {jobs} jobs, {ended} ended, nothing moved for {STALL_S:.0f} s")
            return
        await asyncio.sleep(0.5)


async def run(
    name: str, database_url: str, replicas: int, workers: int, args: argparse.Namespace, folder: Path
) -> Figures:
    users, ramp = args.users, args.ramp
    figures = Figures(name, users)
    async with replicated(
        folder,
        database_url,
        replicas=replicas,
        workers=workers,
        log_level="WARNING",
        limits_of_workspaces=args.workspaces,
        worker_niceness=args.worker_nice,
        worker_concurrency=args.worker_concurrency,
    ) as running:
        members = [running.fake.workspace.add_user(f"load{index}") for index in range(users)]
        user_ids = [member.id for member in members]
        await running.grant_developer(*user_ids)
        started = time.perf_counter()
        cpu = CpuSampler()
        sampling = asyncio.create_task(cpu.run())
        gate = Gate(users)
        # Where the wizard's acks end and those of the Publish presses (and of what follows) begin.
        wizard_acks = asyncio.create_task(counted_at(gate, running.driver.latencies))
        outcomes = await asyncio.gather(
            *(
                asyncio.wait_for(
                    journey(
                        running,
                        member,
                        index,
                        ramp * index / users,
                        gate,
                        args.publish_window * index / users,
                    ),
                    JOURNEY_LIMIT_S,
                )
                for index, member in enumerate(members)
            ),
            return_exceptions=True,
        )
        figures.errors += [
            f"{type(o).__name__}: {str(o)[:200]}" for o in outcomes if isinstance(o, BaseException)
        ]
        published_by = [user_ids[i] for i, o in enumerate(outcomes) if not isinstance(o, BaseException)]
        await settle(figures, running.database, len(published_by))
        sampling.cancel()
        await asyncio.gather(sampling, return_exceptions=True)
        cpu.sample()  # one after the last job finished, however recent
        figures.seconds = time.perf_counter() - started
        figures.jobs, _, figures.published, figures.versions = await counts(running.database)
        await phase(figures, running.database, cpu)
        with contextlib.suppress(AssertionError):  # counted below
            await wait_for(
                lambda: sum(final_dms(running.fake, user_ids).values()) >= figures.jobs,
                DM_GRACE_S,
                interval=0.5,
            )
        dms = final_dms(running.fake, user_ids)
        figures.final_dms = sum(dms.values())
        counted = await per_user(running.database)
        figures.lost = sum((*counted.get(u, (0, 0, 0))[1:], dms[u]) != (1, 1, 1) for u in published_by)
        figures.duplicated = sum(max(*counted.get(u, (0, 0, 0)), dms[u]) > 1 for u in user_ids)
        if figures.lost or figures.duplicated:
            figures.errors.append(f"{figures.lost} publishes lost, {figures.duplicated} duplicated")
        driver = running.driver
        figures.latencies = list(driver.latencies)
        figures.publish_acks = len(figures.latencies) - await wizard_acks
        figures.errors += driver.failures
        driver.failures.clear()  # reported here, not raised when the driver closes
        for process, log in running.logs().items():
            if "Traceback" in log:
                figures.errors.append(f"{process} logged a traceback")
    if (figures.published, figures.jobs, figures.versions) != (users, users, users):
        figures.errors.append(
            f"expected {users} published jobs and versions: {figures.published} published, "
            f"{figures.jobs} jobs, {figures.versions} versions"
        )
    return figures


def load_average() -> str:
    one, five, fifteen = os.getloadavg()
    return f"load average {one:.2f} {five:.2f} {fifteen:.2f} on {os.cpu_count()} cores"


async def main() -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--users", type=int, default=200)
    parser.add_argument("--ramp", type=float, default=60.0, help="seconds over which users start")
    parser.add_argument(
        "--publish-window", type=float, default=8.0, help="seconds over which the users press Publish"
    )
    parser.add_argument("--workspaces", type=int, default=10, help="whose Slack limits apply")
    parser.add_argument("--worker-nice", type=int, default=10, help="CPU niceness of the ib workers")
    parser.add_argument(
        "--worker-concurrency",
        type=int,
        default=DEFAULT_CONCURRENCY,
        help="jobs at a time per ib worker (the embedded runner runs DEFAULT_CONCURRENCY)",
    )
    parser.add_argument(
        "--postgres",
        default=os.environ.get(
            "IB_TEST_POSTGRES_URL", "postgresql+asyncpg://postgres@127.0.0.1:5432/postgres"
        ),
    )
    args = parser.parse_args()
    print(
        f"{args.users} users starting over {args.ramp:.0f} s, Slack limits of {args.workspaces} workspaces; "
        f"before: {load_average()}",
        flush=True,
    )
    with tempfile.TemporaryDirectory() as folder:
        async with throwaway_postgres_database(args.postgres) as url:
            scaled = Path(folder) / "scaled"
            scaled.mkdir()
            scaled_out = await run("2 replicas + 2 workers, PostgreSQL", url, 2, 2, args, scaled)
        scaled_out.report()
        print(f"  after: {load_average()}", flush=True)
        embedded = Path(folder) / "embedded"
        embedded.mkdir()
        sqlite_url = f"sqlite+aiosqlite:///{embedded / 'ib.db'}"
        embedded_default = await run("embedded (1 ib serve, SQLite)", sqlite_url, 1, 0, args, embedded)
        embedded_default.report()
        print(f"  after: {load_average()}")
    print(f"\n{'':36} {'ack p99':>9} {'publishes/s':>12} {'errors':>7}")
    for figures in (scaled_out, embedded_default):
        print(
            f"{figures.name:36} {figures.p(None, 0.99):7.1f}ms {figures.rate:12.2f} {len(figures.errors):7}"
        )
    if embedded_default.rate:
        print(f"publish throughput, scaled out / embedded: {scaled_out.rate / embedded_default.rate:.2f}x")
    over = scaled_out.p(None, 0.99) > P99_BUDGET_MS
    if over:
        print(f"scaled-out ack p99 is over the {P99_BUDGET_MS:.0f} ms budget")
    failed = bool(scaled_out.errors or embedded_default.errors) or over
    print("FAIL" if failed else "OK")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(asyncio.run(main()))
