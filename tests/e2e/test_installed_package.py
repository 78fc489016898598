"""Issue 2's end-to-end path: live $metadata -> `ib generate --wheel` -> real pip install into a
fresh venv -> a script there calls every action, sync and async, against SAP's CAP server."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.fixtures.venvs import fresh_venv, pip_install, run_python
from tests.peers.cap import CapServer

pytestmark = [pytest.mark.peers, pytest.mark.slow]
SCRIPT = Path(__file__).with_name("exercise_cap.py")
IB = Path(sys.executable).with_name("ib")


@pytest.fixture(scope="module", params=["2.0", "4.0"], ids=["v2", "v4"])
def installed(
    request: pytest.FixtureRequest, cap_server: CapServer, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[tuple[Path, str, str]]:
    version = request.param
    root = cap_server.v2_url if version == "2.0" else cap_server.v4_url
    module = f"cap_shop_v{version[0]}"
    out = tmp_path_factory.mktemp(f"{module}_out")
    env = {**os.environ, "IB_E2E_PASSWORD": cap_server.users["alice"]}
    env.pop("IB_ALLOW_PRIVATE_URLS", None)
    generate = [
        *(str(IB), "generate", "--provider", "sap-odata", "--metadata", root),
        *("--user", "alice", "--password-env", "IB_E2E_PASSWORD", "--allow-private-urls"),
        *("--all", "--app", "CAP shop", "--module", module, "--out", str(out), "--wheel"),
    ]
    result = subprocess.run(generate, capture_output=True, text=True, env=env, timeout=120, check=False)
    assert result.returncode == 0, result.stderr
    wheels = list(out.glob(f"{module}-*.whl"))
    assert len(wheels) == 1, f"expected one wheel in {out}: {sorted(p.name for p in out.iterdir())}"
    python = fresh_venv(tmp_path_factory.mktemp(f"{module}_venv"))
    pip_install(python, module, find_links=(out,))
    yield python, module, root


@pytest.mark.parametrize("mode", ["sync", "async"])
def test_every_action_works_from_a_pip_installed_package(
    installed: tuple[Path, str, str], mode: str, cap_server: CapServer
) -> None:
    python, module, root = installed
    key = 700_000 + (1 if mode == "sync" else 2) * 10 + int(module[-1])
    cap_server.clear_requests()
    env = {
        "CAP_ROOT": root,
        "CAP_BASE": cap_server.base_url,
        "CAP_USER": "alice",
        "CAP_PASSWORD": cap_server.users["alice"],
        "KEY": str(key),
    }
    seen = json.loads(run_python(python, SCRIPT, [module, mode], env).strip().splitlines()[-1])

    assert seen["page_size"] == 5
    assert seen["total"] == seen["count"] > 5
    assert seen["all_cheap"] and seen["ordered"] and seen["second_page_disjoint"]
    assert seen["iterated"] == seen["count"]
    assert seen["quote_in_value_ok"]
    assert seen["created_by"] == "alice"
    assert seen["get_price"] == "12.34"
    assert seen["get_available_from"] == "2026-11-29T08:30:00+00:00"
    assert seen["nulls_reported"] and seen["etag"]
    assert seen["stale_etag"] == "Conflict"
    assert seen["after_update"] == [4, "renamed without etag"]
    assert seen["get_after_delete"] == "NotFound"
    assert seen["wrong_password"] == "Unauthorized"
    assert seen["read_only_has_no_create"]

    writes = [r for r in cap_server.requests() if r["method"] in ("POST", "MERGE", "PATCH", "PUT", "DELETE")]
    writes = [r for r in writes if not r["path"].startswith("/test/")]
    statuses = [(r["method"], r["status"]) for r in writes]
    assert statuses[0] == ("POST", 201)
    # after the tokens expired, the update is refused once, then retried with a fresh token
    assert statuses[1][1] == 403 and statuses[2] == (statuses[1][0], 204), statuses
    assert all(r["query"].get("sap-client") == "100" for r in cap_server.requests() if r["user"] == "alice")
