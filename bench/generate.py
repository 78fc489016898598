"""How fast metadata becomes a package: parse, generate + wheel, peak memory, and pyodata for scale.

Each corpus document (../shared/corpora/{sap-v2,odata-v4,dataverse}) is measured in a fresh
subprocess, so peak RSS is that document's alone and the timings are what a first `ib generate`
pays (imports excluded, template compilation included); "warm gen" is a second generate + wheel in
the same process. Every object is selected.
For OData V2 documents the last column compares our parse + generate with pyodata's metadata
parse alone (``MetadataBuilder(xml).build()``, errors ignored).

Run: ``.venv/bin/python bench/generate.py`` (or ``make bench``). Exits 1 if a budget is missed.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
CORPORA = Path(os.environ.get("IB_CORPORA", ROOT.parent / "shared" / "corpora"))
FOLDERS = ("sap-v2", "odata-v4", "dataverse")
# (file name, max seconds for parse + generate + wheel, max peak RSS in MB or None)
BUDGETS = {
    "API_BUSINESS_PARTNER.edmx": (2.0, None),
    "dynamics-crm-v9.1.xml": (6.0, 600.0),
}


def measure(path: Path) -> dict[str, Any]:
    """Parse, generate and build one document; runs in its own process."""
    sys.path.insert(0, str(ROOT))
    from generator import build_wheel, generate_package
    from generator.names import suggest_module_name
    from generator.spec import IntegrationSpec, ObjectSelection
    from providers.sap_odata import SAP_ODATA_PROVIDER

    data = path.read_bytes()
    started = time.perf_counter()
    catalog = SAP_ODATA_PROVIDER.parse_metadata(data)
    parsed = time.perf_counter()
    spec = IntegrationSpec(
        provider=catalog.provider,
        application_name=path.name,
        module_name=suggest_module_name(f"{path.parent.name}_{path.stem}"),
        objects=[ObjectSelection(o.name) for o in catalog.objects],
    )
    package = generate_package(catalog, spec)
    wheel = build_wheel(package)
    generated = time.perf_counter()
    build_wheel(generate_package(catalog, spec))
    warm = time.perf_counter() - generated
    result: dict[str, Any] = {
        "objects": len(catalog.objects),
        "attributes": sum(len(o.attributes) for o in catalog.objects),
        "parse_s": parsed - started,
        "generate_s": generated - parsed,
        "warm_generate_s": warm,
        "wheel_kb": len(wheel.data) / 1024,
        "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
        "odata_version": catalog.runtime.get("odata_version"),
    }
    if result["odata_version"] == "2.0":
        result["pyodata_s"] = _pyodata_parse_seconds(data)
    return result


def _pyodata_parse_seconds(data: bytes) -> float | None:
    """pyodata's metadata parse alone, or None when it cannot read the document."""
    import logging

    from pyodata.v2.model import Config, MetadataBuilder, ParserError, PolicyIgnore

    logging.getLogger("pyodata").setLevel(logging.CRITICAL)  # it logs every ignored problem
    config = Config(
        default_error_policy=PolicyIgnore(),
        custom_error_policies={error: PolicyIgnore() for error in ParserError},
    )
    # pyodata refuses a BOM or blank line before the XML declaration; give it the document without
    xml = data.removeprefix(b"\xef\xbb\xbf").lstrip()
    started = time.perf_counter()
    try:
        MetadataBuilder(xml, config=config).build()
    except Exception:  # whatever it raises, pyodata cannot read this document
        return None
    return time.perf_counter() - started


def _run_one(path: Path) -> dict[str, Any]:
    completed = subprocess.run(
        [sys.executable, __file__, "--one", str(path)], capture_output=True, text=True, check=False
    )
    if completed.returncode != 0:
        return {"error": (completed.stderr.strip().splitlines() or ["failed"])[-1]}
    result: dict[str, Any] = json.loads(completed.stdout)
    return result


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--one", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.one:
        print(json.dumps(measure(args.one)))
        return 0
    folders = [CORPORA / folder for folder in FOLDERS if (CORPORA / folder).is_dir()]
    files = [path for folder in folders for path in sorted(folder.iterdir())]
    if not files:
        print(f"no corpora under {CORPORA}", file=sys.stderr)
        return 1
    header = (
        f"{'document':<40} {'objects':>7} {'attrs':>6} {'parse s':>8} {'gen+whl s':>9} {'total s':>8} "
        f"{'warm gen':>8} {'peak MB':>8} {'wheel KB':>8} {'vs pyodata':>13}"
    )
    print(header)
    print("-" * len(header))
    missed: list[str] = []
    for path in files:
        name = f"{path.parent.name}/{path.name}"
        result = _run_one(path)
        if "error" in result:
            print(f"{name:<40} error: {result['error']}")
            missed.append(f"{name} did not generate")  # a figure of nothing would read as a pass
            continue
        total = result["parse_s"] + result["generate_s"]
        if result.get("odata_version") != "2.0":
            ratio = ""
        elif result.get("pyodata_s") is None:
            ratio = "pyodata fails"
        else:
            ratio = f"{total / result['pyodata_s']:.2f}x"
        print(
            f"{name:<40} {result['objects']:>7} {result['attributes']:>6} {result['parse_s']:>8.3f} "
            f"{result['generate_s']:>9.3f} {total:>8.3f} {result['warm_generate_s']:>8.3f} "
            f"{result['peak_rss_mb']:>8.0f} {result['wheel_kb']:>8.0f} {ratio:>13}"
        )
        seconds, megabytes = BUDGETS.get(path.name, (None, None))
        if seconds is not None and total > seconds:
            missed.append(f"{name}: {total:.2f} s > {seconds} s")
        if megabytes is not None and result["peak_rss_mb"] > megabytes:
            missed.append(f"{name}: {result['peak_rss_mb']:.0f} MB > {megabytes} MB")
    print()
    for budget_file, (seconds, megabytes) in BUDGETS.items():
        limit = f"<= {seconds} s" + (f", <= {megabytes:.0f} MB peak" if megabytes else "")
        print(f"budget {budget_file}: {limit}")
    print("budgets missed: " + "; ".join(missed) if missed else "all budgets met")
    return 1 if missed else 0


if __name__ == "__main__":
    sys.exit(main())
