"""How long a Publish takes: submit -> published, and 20 publishes at once, on the embedded SQLite.

Measures what the wizard's Publish click costs once the catalog is in hand (the wizard keeps it
from the objects step): queueing, generating, building the wheel and sdist, storing them and
deploying to dev, with the in-process runner of `ib serve`. Every object of GWSAMPLE_BASIC and
API_BUSINESS_PARTNER (../shared/corpora/sap-v2) is selected; each publish is a new version.

Run: ``.venv/bin/python bench/publish.py`` (or ``make bench``). Exits 1 if a budget is missed.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from generator.publisher import Publisher  # noqa: E402
from generator.spec import IntegrationSpec, ObjectSelection  # noqa: E402
from providers.base import MetadataSource, get_provider  # noqa: E402
from providers.model import Catalog  # noqa: E402
from storage import Database  # noqa: E402
from storage.models import IntegrationVersion, PublishJob  # noqa: E402

CORPORA = Path(os.environ.get("IB_CORPORA", ROOT.parent / "shared" / "corpora"))
# corpus file -> budget in seconds for submit -> published (median)
BUDGETS = {"GWSAMPLE_BASIC.edmx": 2.0, "API_BUSINESS_PARTNER.edmx": 5.0}
CONCURRENT = 20
TEAM, USER = "T0BENCH", "U0BENCH"


class Quiet:
    """A notifier that only counts final notifications (where the Slack DM would be sent)."""

    def __init__(self) -> None:
        self.announced = 0

    async def progress(self, job: PublishJob, state: str) -> None:
        return None

    async def finished(
        self,
        job: PublishJob,
        version: IntegrationVersion | None,
        error: str | None,
        artifacts: list[tuple[str, bytes]],
    ) -> None:
        self.announced += 1


async def read_catalog(name: str, data: bytes) -> Catalog:
    return await get_provider("sap-odata").discover(MetadataSource(kind="file", location=name, data=data))


def every_object(catalog: Catalog, module: str) -> IntegrationSpec:
    return IntegrationSpec(
        provider=catalog.provider,
        application_name=module,
        module_name=module,
        objects=[ObjectSelection(name) for name in catalog.object_names()],
    )


async def publish_times(publisher: Publisher, catalog: Catalog, module: str, runs: int) -> list[float]:
    times = []
    for run in range(runs):
        started = time.perf_counter()
        job = await publisher.submit(
            team_id=TEAM,
            user_id=USER,
            spec=every_object(catalog, module),
            catalog=catalog,
            dedup_key=f"{module}-{run}",
        )
        done = await publisher.wait(job.id, timeout=120)
        times.append(time.perf_counter() - started)
        if done.state != "published":
            raise SystemExit(f"{module}: publish failed: {done.error}")
    return times


async def concurrent(publisher: Publisher, catalog: Catalog) -> tuple[float, list[str]]:
    started = time.perf_counter()
    jobs = await asyncio.gather(
        *(
            publisher.submit(
                team_id=TEAM,
                user_id=USER,
                spec=every_object(catalog, f"concurrent_{n}"),
                catalog=catalog,
                dedup_key=f"concurrent-{n}",
            )
            for n in range(CONCURRENT)
        )
    )
    done = await asyncio.gather(*(publisher.wait(job.id, timeout=300) for job in jobs))
    return time.perf_counter() - started, [job.state for job in done]


async def main(runs: int) -> int:
    folder = CORPORA / "sap-v2"
    if not all((folder / name).is_file() for name in BUDGETS):
        print(f"skipped: {folder} does not hold {', '.join(BUDGETS)} (../shared/corpora beside the repo)")
        return 0
    logging.basicConfig(level=logging.WARNING)
    documents = {name: (folder / name).read_bytes() for name in BUDGETS}
    failures = []
    with tempfile.TemporaryDirectory() as scratch:
        database = Database(f"sqlite+aiosqlite:///{Path(scratch) / 'ib.db'}")
        await database.migrate()
        notifier = Quiet()
        publisher = Publisher(database, notifier=notifier)
        await publisher.start()
        try:
            print(
                f"{'metadata':<28} {'objects':>7} {'median s':>9} {'min s':>7} {'max s':>7} {'budget s':>9}"
            )
            catalogs = {}
            for name, budget in BUDGETS.items():
                catalog = catalogs[name] = await read_catalog(name, documents[name])
                module = Path(name).stem.lower()
                times = await publish_times(publisher, catalog, module, runs)
                median = statistics.median(times)
                print(
                    f"{name:<28} {len(catalog.objects):>7} {median:>9.3f} {min(times):>7.3f} "
                    f"{max(times):>7.3f} {budget:>9.1f}"
                )
                if median > budget:
                    failures.append(f"{name}: median {median:.2f} s > {budget} s")
            elapsed, states = await concurrent(publisher, catalogs["GWSAMPLE_BASIC.edmx"])
            published = states.count("published")
            print(
                f"{CONCURRENT} concurrent GWSAMPLE_BASIC publishes: {published} published in {elapsed:.2f} s "
                f"({CONCURRENT / elapsed:.1f} publishes/s), {notifier.announced} final notifications"
            )
            if published != CONCURRENT or notifier.announced != CONCURRENT + runs * len(BUDGETS):
                failures.append(f"concurrent: {published}/{CONCURRENT} published")
        finally:
            await publisher.stop()
            await database.dispose()
    for failure in failures:
        print(f"BUDGET MISSED: {failure}")
    return 1 if failures else 0


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=5, help="publishes per document (default 5)")
    sys.exit(asyncio.run(main(parser.parse_args().runs)))
