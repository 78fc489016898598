"""Dataverse at the size of a real environment: the 2.36 MB Dynamics CRM $metadata (../shared/corpora).

- catalog ready: ``DataverseProvider.discover`` of a live environment URL (the document served by a
  local HTTP server at ``/api/data/v9.2/$metadata``, fetched with a bearer token, parsed, columns
  adjusted, Dynamics tables first): cold (a fresh provider) and cached (the same document again).
  Budget: cold <= 3 s.
- generation: ``generate_package`` for the first 20 tables of the Dynamics 365 catalog (account,
  contact, ... with all their columns). Budget: <= 1 s.

Prints medians. Run: ``.venv/bin/python bench/microsoft.py [--rounds 5]``. Exits 1 on a miss.
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import sys
import threading
import time
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from generator import generate_package  # noqa: E402
from generator.spec import IntegrationSpec, ObjectSelection  # noqa: E402
from providers.base import MetadataSource  # noqa: E402
from providers.dataverse import DYNAMICS_TABLES, DataverseProvider  # noqa: E402
from providers.oauth import HttpOptions  # noqa: E402

CORPUS = ROOT.parent / "shared" / "corpora" / "dataverse" / "dynamics-crm-v9.1.xml"
CATALOG_BUDGET_S = 3.0
GENERATE_BUDGET_S = 1.0
TABLES = 20


def serve(document: bytes) -> ThreadingHTTPServer:
    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            found = (
                self.path == "/api/data/v9.2/$metadata" and self.headers.get("authorization") == "Bearer t"
            )
            self.send_response(200 if found else 404)
            self.send_header("Content-Type", "application/xml")
            self.send_header("Content-Length", str(len(document) if found else 0))
            self.end_headers()
            if found:
                self.wfile.write(document)

        def log_message(self, *args: object) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server


def provider() -> DataverseProvider:
    return DataverseProvider(
        "dynamics365",
        "Microsoft Dynamics 365",
        featured=DYNAMICS_TABLES,
        featured_group="Dynamics 365",
        other_group="Dataverse",
        http=HttpOptions(allow_private=True),
    )


def median_s(action: Callable[[], Any], rounds: int) -> tuple[float, Any]:
    timings, result = [], None
    for _ in range(rounds):
        started = time.perf_counter()
        result = action()
        timings.append(time.perf_counter() - started)
    return statistics.median(timings), result


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=5)
    rounds = parser.parse_args().rounds
    if not CORPUS.is_file():
        print(f"{CORPUS} is absent: nothing to measure")
        return 1
    server = serve(CORPUS.read_bytes())
    url = f"http://127.0.0.1:{server.server_address[1]}"
    source = MetadataSource(kind="url", location=url, password="t")
    try:
        cold, catalog = median_s(lambda: asyncio.run(provider().discover(source)), rounds)
        warm_provider = provider()
        asyncio.run(warm_provider.discover(source))
        warm, _ = median_s(lambda: asyncio.run(warm_provider.discover(source)), rounds)
    finally:
        server.shutdown()
        server.server_close()
    chosen = [o.name for o in catalog.objects[:TABLES]]
    spec = IntegrationSpec(
        provider="dynamics365",
        application_name="CRM",
        module_name="crm_bench",
        objects=[ObjectSelection(name) for name in chosen],
    )
    generation, package = median_s(lambda: generate_package(catalog, spec), rounds)
    columns = sum(len(catalog.object(name).attributes) for name in chosen)

    print(f"Dataverse $metadata: {CORPUS.stat().st_size / 1e6:.2f} MB, {len(catalog.objects)} tables")
    print(f"catalog ready (fetch + parse), cold:   {cold:6.3f} s   (budget <= {CATALOG_BUDGET_S:g} s)")
    print(f"catalog ready, same document cached:   {warm:6.3f} s")
    budget = f"(budget <= {GENERATE_BUDGET_S:g} s)"
    print(f"generate {TABLES} tables ({columns} columns):   {generation:6.3f} s   {budget}")
    print(f"  package files: {len(package.files)}")
    missed = cold > CATALOG_BUDGET_S or generation > GENERATE_BUDGET_S
    print("MISSED a budget" if missed else "within budget")
    return 1 if missed else 0


if __name__ == "__main__":
    sys.exit(main())
