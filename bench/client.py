"""Listing 1,000 rows: the generated client against raw httpx and against pyodata's own client.

Starts the SAP CAP peer (tests/peers, `make peers`), generates the CAP shop package for OData V2
and V4 from its live $metadata, and lists 1,000 Products repeatedly, alternating the contenders
and flipping their order round by round so machine and server noise hits all of them alike:

- raw httpx: the very GET the generated client sends, then ``response.json()`` (sync/async);
- the generated package: ``driver.search_products(client, top=1000)`` with an open client, and
  ``search_products_async`` with an open async client (decoded into typed dataclasses);
- pyodata (V2 only: it has no V4 client): ``get_entities().top(1000).execute()``.

Prints medians and the ratios generated/raw (budget <= 1.15) and generated/pyodata (budget < 1).
Run: ``.venv/bin/python bench/client.py [--rounds 30]`` (or ``make bench``). Exits 1 on a miss.
"""

from __future__ import annotations

import argparse
import asyncio
import importlib
import logging
import os
import statistics
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import httpx
import pyodata
import requests

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from generator import generate_package  # noqa: E402
from generator.spec import IntegrationSpec, ObjectSelection  # noqa: E402
from providers.base import MetadataSource  # noqa: E402
from providers.sap_odata import SapODataProvider  # noqa: E402
from tests.peers.cap import CapServer, start_cap_server  # noqa: E402

ROWS = 1000
# pyodata warns once per vocabulary term it does not know (the CAP V2 document has many)
logging.getLogger("pyodata").setLevel(logging.ERROR)
RAW_BUDGET = 1.15
# headers httpx sets itself for any request
_TRANSPORT_HEADERS = {"host", "connection", "content-length", "user-agent", "accept-encoding"}


def generate(cap: CapServer, root: str, module: str, out: Path) -> Any:
    provider = SapODataProvider(allow_private=True)
    source = MetadataSource(kind="url", location=root, user="alice", password=cap.users["alice"])
    catalog = asyncio.run(provider.discover(source))
    spec = IntegrationSpec(
        provider=catalog.provider,
        application_name="CAP shop",
        module_name=module,
        objects=[ObjectSelection(name=name) for name in catalog.object_names()],
    )
    package = generate_package(catalog, spec)
    for name, content in package.files.items():
        target = out / name
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_bytes(content)
    if str(out) not in sys.path:
        sys.path.insert(0, str(out))
    return importlib.import_module(module)


def timed(call: Callable[[], Any]) -> float:
    started = time.perf_counter()
    call()
    return time.perf_counter() - started


async def atimed(call: Callable[[], Awaitable[Any]]) -> float:
    started = time.perf_counter()
    await call()
    return time.perf_counter() - started


def measure_version(cap: CapServer, version: str, rounds: int, out: Path) -> dict[str, float]:
    root = cap.v2_url if version == "2.0" else cap.v4_url
    package = generate(cap, root, f"bench_cap_v{version[0]}", out)
    driver = importlib.import_module(f"{package.__name__}.driver")
    auth = ("alice", cap.users["alice"])
    connection = package.Connection(root, auth=package.BasicAuth(*auth))
    client = driver.open_client(connection)
    # raw httpx sends exactly the request the generated client sends, so the ratio is the client's
    # own cost (URL building, decoding into typed records), not a difference in what is asked
    cap.clear_requests()
    assert len(driver.search_products(client, top=ROWS).items) == ROWS
    sent = cap.requests()[-1]
    url = cap.base_url + sent["url"]
    params: dict[str, str] = {}
    # the same headers too: Accept (IEEE754Compatible), OData-Version and the like change how the
    # server serialises the answer, so leaving them out would time a different response
    same_headers = {k: v for k, v in sent["headers"].items() if k not in _TRANSPORT_HEADERS}
    samples: dict[str, list[float]] = {}

    def record(name: str, seconds: float) -> None:
        samples.setdefault(name, []).append(seconds)

    def raw_rows(payload: Any) -> int:
        return len(payload["d"]["results"] if version == "2.0" else payload["value"])

    raw = httpx.Client(auth=auth, timeout=60, headers=same_headers)
    odata = None
    if version == "2.0":
        session = requests.Session()
        session.auth = auth
        session.trust_env = False
        odata = pyodata.Client(root, session)

    async def async_rounds() -> None:
        async with httpx.AsyncClient(auth=auth, timeout=60, headers=same_headers) as araw:
            aclient = driver.open_async_client(connection)

            async def raw_get_and_decode() -> None:
                (await araw.get(url, params=params)).json()

            async def generated_search() -> None:
                await driver.search_products_async(aclient, top=ROWS)

            await raw_get_and_decode()
            await generated_search()
            contenders = [("raw httpx async", raw_get_and_decode), ("generated async", generated_search)]
            for round_number in range(rounds):
                for name, call in contenders[:: 1 if round_number % 2 else -1]:
                    record(name, await atimed(call))
            await aclient.aclose()

    # warm-up: connections, caches and the server's own first-request costs
    assert raw_rows(raw.get(url, params=params).json()) == ROWS
    contenders: list[tuple[str, Callable[[], Any]]] = [
        ("raw httpx", lambda: raw.get(url, params=params).json()),
        ("generated sync", lambda: driver.search_products(client, top=ROWS)),
    ]
    if odata is not None:
        contenders.append(("pyodata", lambda: odata.entity_sets.Products.get_entities().top(ROWS).execute()))
    for round_number in range(rounds):
        # the order flips every round: a request right after another pays for the server's
        # clean-up of the previous answer, and that must not always fall on the same contender
        for name, call in contenders[:: 1 if round_number % 2 else -1]:
            record(name, timed(call))
    asyncio.run(async_rounds())
    raw.close()
    client.close()
    return {name: statistics.median(values) for name, values in samples.items()}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=30)
    args = parser.parse_args()
    missed = False
    print(f"load average before: {os.getloadavg()[0]:.2f} on {os.cpu_count()} cores (noise warning above 1)")
    with start_cap_server() as cap, tempfile.TemporaryDirectory() as tmp:
        for version in ("2.0", "4.0"):
            medians = measure_version(cap, version, args.rounds, Path(tmp))
            print(f"\nOData {version}: list {ROWS} rows, median of {args.rounds} rounds")
            for name, seconds in sorted(medians.items()):
                print(f"  {name:<24} {seconds * 1000:8.1f} ms")
            sync_ratio = medians["generated sync"] / medians["raw httpx"]
            async_ratio = medians["generated async"] / medians["raw httpx async"]
            print(f"  generated sync / raw httpx        {sync_ratio:5.2f}  (budget <= {RAW_BUDGET})")
            print(f"  generated async / raw httpx async {async_ratio:5.2f}  (budget <= {RAW_BUDGET})")
            missed |= sync_ratio > RAW_BUDGET or async_ratio > RAW_BUDGET
            if "pyodata" in medians:
                vs = medians["generated sync"] / medians["pyodata"]
                print(f"  generated sync / pyodata          {vs:5.2f}  (budget < 1)")
                missed |= vs >= 1
    print("\nbudgets:", "MISSED" if missed else "met")
    return 1 if missed else 0


if __name__ == "__main__":
    sys.exit(main())
