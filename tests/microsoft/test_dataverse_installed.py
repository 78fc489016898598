"""Issue 6's Dataverse runtime path: the environment's $metadata -> `ib generate --wheel` -> real pip
install into a fresh venv -> a script there pages, counts, creates, updates and deletes accounts on
the Dataverse-shaped CAP peer with a bearer token from the identity peer."""

from __future__ import annotations

import asyncio
import json
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import httpx
import pytest

from generator.spec import IntegrationSpec, ObjectSelection, SourceRef
from tests.fixtures.microsoft import DataverseEnvironmentPeer
from tests.fixtures.venvs import fresh_venv, pip_install, run_python

pytestmark = [pytest.mark.peers, pytest.mark.slow]
SCRIPT = Path(__file__).with_name("exercise_dataverse.py")
IB = Path(sys.executable).with_name("ib")
MODULE = "dv_installed"


@pytest.fixture(scope="module")
def python(dataverse_environment: DataverseEnvironmentPeer, tmp_path_factory: pytest.TempPathFactory) -> Path:
    work = tmp_path_factory.mktemp("dv_out")
    metadata = work / "metadata.xml"
    response = httpx.get(
        dataverse_environment.api_url + "$metadata",
        headers={"Authorization": f"Bearer {dataverse_environment.user_token()}"},
    )
    response.raise_for_status()
    metadata.write_bytes(response.content)
    spec = IntegrationSpec(
        provider="dataverse",
        application_name="CRM",
        module_name=MODULE,
        objects=[
            ObjectSelection("accounts"),
            ObjectSelection("contacts", expand=["parentcustomerid_account"]),
        ],
        source=SourceRef(kind="file", location="metadata.xml"),
    )
    (work / "integration.json").write_text(spec.to_json())
    out = work / "out"
    generate = [str(IB), "generate", "--spec", str(work / "integration.json"), "--out", str(out), "--wheel"]
    result = subprocess.run(generate, capture_output=True, text=True, timeout=120, check=False)
    assert result.returncode == 0, result.stderr
    python = fresh_venv(tmp_path_factory.mktemp("dv_venv"))
    pip_install(python, MODULE, find_links=(out,))
    return python


def _run(python: Path, environment: DataverseEnvironmentPeer, scenario: str) -> dict[str, Any]:
    # the token comes from a real client credentials sign-in, as the Integration Manager hands it out
    values, secrets = environment.connection()
    answer = asyncio.run(environment.provider().connection_answer(values, secrets))
    env = {"DV_ROOT": answer["url"], "DV_TOKEN": answer["auth"]["token"]}
    output = run_python(python, SCRIPT, [MODULE, scenario], env)
    return dict(json.loads(output.strip().splitlines()[-1]))


@pytest.mark.parametrize("scenario", ["sync", "async"])
def test_page_count_create_update_delete_from_a_pip_installed_package(
    python: Path, dataverse_environment: DataverseEnvironmentPeer, scenario: str
) -> None:
    dataverse_environment.cap.clear_requests()
    seen = _run(python, dataverse_environment, scenario)

    names = [f"Seed account {n:02d}" for n in range(1, 26)]
    assert seen["pages"] == [names[:10], names[10:20]]
    assert seen["total"] == 25 and seen["count"] == 25 and seen["iterated"] == 25
    assert seen["skip"] == names[20:]
    assert seen["created"] == [f"Contoso {scenario}", 3, "1234.5", True]
    assert seen["renamed"] == f"Contoso {scenario} renamed"
    assert seen["stale_etag"] == "Conflict"
    assert seen["after_delete"] == "NotFound"
    assert seen["update_missing"] == "NotFound"
    assert seen["lookup"] == ["a0000000-0000-4000-8000-000000000001", "Seed account 01"]

    # formatted values: only when asked for, as Dataverse formats them, on every page
    assert seen["unformatted"] == {}
    first, second = seen["formatted_page"]
    assert first == {
        "industrycode": "Agriculture and Non-petrol Natural Resource Extraction",
        "revenue": "$1,000.50",
        "numberofemployees": "10",
        "statecode": "Active",
        "createdon": first["createdon"],
        "modifiedon": first["modifiedon"],
    }
    assert re.fullmatch(r"\d{1,2}/\d{1,2}/\d{4} \d{1,2}:\d{2} [AP]M", first["createdon"])
    assert second["industrycode"] == "Broadcasting Printing and Publishing"
    assert seen["formatted_next_page"] == ["Brokers", "Building Supply Retail"]
    assert seen["formatted_iterated"] == ["Active"]
    lookup_name, expanded_industry, formatted_names = seen["formatted_contact"]
    assert lookup_name == "Seed account 01" and expanded_industry.startswith("Agriculture")
    assert formatted_names == ["createdon", "modifiedon", "parentcustomerid_value"]
    assert seen["formatted_then_plain"] == {}

    # lookups written through links (@odata.bind), read back as the lookup column
    assert seen["links"] == [
        "a0000000-0000-4000-8000-000000000001",
        "a0000000-0000-4000-8000-000000000002",
        "Seed account 02",
        None,
    ]
    error, message = seen["missing_account"]
    assert error == "NotFound"
    assert "a0000000-0000-4000-8000-0000000000ff Does Not Exist" in message
    assert seen["orphans"] == 0

    requests = dataverse_environment.cap.requests()
    assert requests and all(r["user"] == "dataverse-app" for r in requests)
    searches = [r for r in requests if r["method"] == "GET" and r["path"].endswith("/accounts")]
    assert all("$skip" not in r["query"] and "$top" not in r["query"] for r in searches)
    assert any(r["headers"].get("prefer") == "odata.maxpagesize=10" for r in searches)
    assert any("$skiptoken" in r["query"] for r in searches)
    annotated = 'odata.include-annotations="OData.Community.Display.V1.FormattedValue"'
    asked = [r for r in requests if annotated in r["headers"].get("prefer", "")]
    # search, next page, three pages of iter (9 of 25 at a time), two gets
    assert len(asked) == 7
    assert any(r["headers"]["prefer"] == f"odata.maxpagesize=2,{annotated}" for r in asked)
    assert all(r["method"] == "GET" for r in asked)
    writes = [r for r in requests if r["method"] in ("PATCH", "DELETE")]
    assert writes and all(r["headers"].get("if-match") for r in writes)
    assert not any(r["headers"].get("x-csrf-token") for r in requests)
