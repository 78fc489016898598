"""Issue 7's runtime path: saved describes -> `ib generate --wheel` -> real pip install into a fresh
venv -> a script there creates, finds, updates and deletes Accounts in the fake org through the
driver, with a bearer token from a JWT bearer login."""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.fixtures.salesforce import SalesforceOrg, org_describes
from tests.fixtures.venvs import fresh_venv, pip_install, run_python
from tests.peers.salesforce_soql import Comparison, Literal

pytestmark = [pytest.mark.peers, pytest.mark.slow]
SCRIPT = Path(__file__).with_name("exercise_installed.py")
IB = Path(sys.executable).with_name("ib")
MODULE = "sf_installed"
NASTY = "O'Brien \\ ' OR Name != '"


@pytest.fixture(scope="module")
def python(tmp_path_factory: pytest.TempPathFactory) -> Path:
    describes, describe_global = org_describes()
    metadata = tmp_path_factory.mktemp("describes") / "org.json"
    metadata.write_text(json.dumps([describe_global, *describes]))
    out = tmp_path_factory.mktemp("sf_out")
    generate = [
        *(str(IB), "generate", "--provider", "salesforce", "--metadata", str(metadata), "--all"),
        *("--app", "Fake org", "--module", MODULE, "--out", str(out), "--wheel"),
    ]
    result = subprocess.run(generate, capture_output=True, text=True, timeout=120, check=False)
    assert result.returncode == 0, result.stderr
    python = fresh_venv(tmp_path_factory.mktemp("sf_venv"))
    pip_install(python, MODULE, find_links=(out,))
    return python


@pytest.fixture
def org(salesforce_org: SalesforceOrg) -> Iterator[SalesforceOrg]:
    salesforce_org.fake.clear("Account")
    for number in range(12):
        salesforce_org.fake.insert("Account", {"Name": f"page-{number:02d}"})
    yield salesforce_org
    salesforce_org.fake.clear("Account")


def _run(python: Path, org: SalesforceOrg, scenario: str) -> dict[str, Any]:
    # the token comes from a real JWT bearer login, as the Integration Manager would hand it out
    answer = asyncio.run(org.provider.connection_answer(org.values, org.secrets))
    env = {
        "SF_ROOT": answer["url"],
        "SF_TOKEN": answer["auth"]["token"],
        "SF_CA": str(org.fake.ca_path),
        "SF_NASTY": NASTY,
    }
    output = run_python(python, SCRIPT, [MODULE, scenario], env)
    return dict(json.loads(output.strip().splitlines()[-1]))


@pytest.mark.parametrize("scenario", ["sync", "async"])
def test_create_find_update_delete_from_a_pip_installed_package(
    python: Path, org: SalesforceOrg, scenario: str
) -> None:
    org.fake.fail_next("REQUEST_LIMIT_EXCEEDED")
    with org.fake.batches_of(4):
        seen = _run(python, org, scenario)

    assert (
        seen["rate_limited"]["class"] == "RateLimited"
        and seen["rate_limited"]["code"] == "REQUEST_LIMIT_EXCEEDED"
    )
    assert seen["found"] == [[seen["created_id"], NASTY, "Retail", "99.95"]]
    assert any(q.conditions == [Comparison("Name", "=", Literal("string", NASTY))] for q in org.fake.queries)
    assert seen["starts_with"] == [NASTY]
    assert seen["after_update"] == ["Renamed", "https://x.example", "2001-02-03"]
    assert seen["get_after_delete"] == "NotFound"
    pages = [f"page-{n:02d}" for n in range(12)]
    assert seen["count"] == 12
    assert seen["pages"] == [pages[:5], pages[5:10]]
    assert seen["iterated"] == pages
    cursor_reads = [path for method, path in org.fake.requests if "/query/01g" in path]
    assert cursor_reads, "the iterator follows nextRecordsUrl"


def test_a_field_removed_since_generation_is_named(python: Path, org: SalesforceOrg) -> None:
    with org.fake.removed_field("Account", "Website"):
        seen = _run(python, org, "removed-field")
    assert seen["search"]["class"] == "InvalidRequest"
    assert "the field Account.Website does not exist in Salesforce" in seen["search"]["text"]
    assert seen["count"] == 12
