"""Issue 6's SharePoint runtime path: saved Graph list JSON -> `ib generate --wheel` -> real pip
install into a fresh venv -> a script there pages, filters (folder too), creates, updates and
deletes list items on the Graph fake, with a token from the identity peer and a 429 storm first."""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.fixtures.microsoft import GraphSite
from tests.fixtures.venvs import fresh_venv, pip_install, run_python

pytestmark = [pytest.mark.peers, pytest.mark.slow]
SCRIPT = Path(__file__).with_name("exercise_sharepoint.py")
IB = Path(sys.executable).with_name("ib")
MODULE = "sp_installed"
ARCHIVE = "/sites/sales/Lists/ProjectTasks/Archive"


@pytest.fixture(scope="module")
def python(graph_site: GraphSite, tmp_path_factory: pytest.TempPathFactory) -> Path:
    work = tmp_path_factory.mktemp("sp_out")
    (work / "lists.json").write_bytes(graph_site.saved_lists())
    generate = [
        *(str(IB), "generate", "--provider", "sharepoint", "--metadata", str(work / "lists.json")),
        *(
            "--objects",
            "Project Tasks",
            "--app",
            "Sales lists",
            "--module",
            MODULE,
            "--out",
            str(work),
            "--wheel",
        ),
    ]
    result = subprocess.run(generate, capture_output=True, text=True, timeout=120, check=False)
    assert result.returncode == 0, result.stderr
    python = fresh_venv(tmp_path_factory.mktemp("sp_venv"))
    pip_install(python, MODULE, find_links=(work,))
    return python


@pytest.fixture
def site(graph_site: GraphSite) -> Iterator[GraphSite]:
    graph_site.fake.clear(graph_site.tasks)
    for number in range(1, 13):
        graph_site.fake.add_item(
            graph_site.site, graph_site.tasks, {"Title": f"Task {number:02d}", "Hours": number}
        )
    for name in ("Old A", "Old B", "Old C"):
        graph_site.fake.add_item(graph_site.site, graph_site.tasks, {"Title": name}, folder=ARCHIVE)
    graph_site.fake.requests.clear()
    yield graph_site
    graph_site.fake.clear(graph_site.tasks)


def _run(python: Path, site: GraphSite, scenario: str) -> dict[str, Any]:
    values, secrets = site.connection()
    answer = asyncio.run(site.provider.connection_answer(values, secrets))
    site.fake.throttle(1, retry_after=4)  # the package's first call
    env = {
        "SP_ROOT": answer["url"],
        "SP_TOKEN": answer["auth"]["token"],
        "SP_CA": str(site.fake.ca_path),
        "SP_ARCHIVE": ARCHIVE,
    }
    output = run_python(python, SCRIPT, [MODULE, scenario], env)
    return dict(json.loads(output.strip().splitlines()[-1]))


@pytest.mark.parametrize("scenario", ["sync", "async"])
def test_list_items_from_a_pip_installed_package(python: Path, site: GraphSite, scenario: str) -> None:
    seen = _run(python, site, scenario)

    assert seen["has_count"] is False
    assert seen["throttled"] == ["RateLimited", 4.0, "TooManyRequests"]
    titles = [f"Task {n:02d}" for n in range(1, 13)]
    assert seen["pages"] == [titles[:5], titles[5:10], None]
    assert seen["iterated"] == 12
    assert seen["archived"] == ["Old A", "Old B", "Old C"]
    assert seen["created"] == [
        f"New {scenario}",
        "1500.25",
        7.5,
        False,
        "2025-03-04T12:30:00+00:00",
        "Active",
        ["Red"],
        None,
        True,
    ]
    assert seen["renamed"] == f"Renamed {scenario}"
    assert seen["stale"] == "Conflict" and seen["after_delete"] == "NotFound"

    reads = [
        (url, headers) for method, url, headers in site.fake.requests if method == "GET" and "/items" in url
    ]
    assert all("$skip=" not in url and "$count" not in url for url, _ in reads)
    filtered = [headers for url, headers in reads if "$filter" in url]
    assert filtered and all(
        h.get("prefer") == "HonorNonIndexedQueriesWarningMayFailRandomly" for h in filtered
    )
    assert any("$skiptoken" in url for url, _ in reads)
