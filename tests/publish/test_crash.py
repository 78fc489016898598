"""The service killed in the middle of a publish job finishes it exactly once after a restart.

The job is queued with `ib publish` (no --wait), as a CI step next to a running service would;
``IB_TEST_PUBLISH_STEP_DELAY`` (test-only) holds each step long enough to kill the service in it.
On SQLite the service is `ib serve`; on PostgreSQL `ib serve` and the `ib worker` that runs the job.
"""

from __future__ import annotations

import base64
import hashlib
import json
import re
import subprocess
import sys
from pathlib import Path

import httpx
import pytest

from generator.publisher import STEP_DELAY_ENV
from tests.bot.test_serve import serve_env
from tests.fixtures.corpora import corpus_file
from tests.fixtures.publish import ADMIN
from tests.scale.deployment import (
    dev_token,
    job_row,
    scalar,
    start_deployment,
    wait_for_state,
    wait_until_notified,
)

pytestmark = pytest.mark.slow
LIMIT_S = 60.0  # failure detection only, not a speed assertion
FINISHED = re.compile(r"publish job (\S+) finished: published")


def test_a_job_killed_mid_way_finishes_once_after_the_restart(tmp_path: Path, database_url: str) -> None:
    spec = tmp_path / "integration.json"
    spec.write_text(
        json.dumps(
            {
                "provider": "sap-odata",
                "application_name": "Crash",
                "module_name": "gw_crash",
                "objects": ["BusinessPartnerSet", "ProductSet"],
            }
        ),
        encoding="utf-8",
    )
    slow = {"IB_ADMINS": ADMIN, STEP_DELAY_ENV: "2"}
    first = start_deployment(tmp_path, database_url, slow)
    try:
        queued = subprocess.run(
            [
                sys.executable,
                "-m",
                "bot.cli",
                "publish",
                "--spec",
                str(spec),
                "--team",
                "T0CRASH",
                "--metadata",
                str(corpus_file("sap-v2/GWSAMPLE_BASIC.edmx")),
            ],
            cwd=tmp_path,
            env=serve_env(tmp_path, {**slow, "IB_DATABASE_URL": database_url}),
            capture_output=True,
            text=True,
            timeout=LIMIT_S,
            check=False,
        )
        assert queued.returncode == 0, queued.stderr
        job_id = queued.stdout.split()[3]
        wait_for_state(database_url, job_id, {"building"}, *first.processes)
        first.kill()
    finally:
        first.stop()
    first_log = first.log()  # the restart writes the same log file again
    assert job_row(database_url, job_id)["state"] == "building"

    second = start_deployment(tmp_path, database_url, {"IB_ADMINS": ADMIN})
    try:
        wait_for_state(database_url, job_id, {"published", "failed"}, *second.processes)
        token = dev_token(database_url)
        auth = {"Authorization": "Basic " + base64.b64encode(f"__token__:{token}".encode()).decode()}
        page = httpx.get(f"{second.replica.base_url}/envs/dev/simple/gw-crash/", headers=auth)
        wheel = httpx.get(
            f"{second.replica.base_url}/envs/dev/files/gw_crash-0.1.0-py3-none-any.whl", headers=auth
        )
        wait_until_notified(database_url, job_id)
    finally:
        second.stop()

    job = job_row(database_url, job_id)
    assert (job["state"], job["error"], job["attempts"]) == ("published", None, 2)
    assert scalar(database_url, "SELECT count(*) FROM publish_jobs") == 1
    assert scalar(database_url, "SELECT count(*) FROM integration_versions") == 1
    sha256 = scalar(database_url, "SELECT sha256 FROM integration_versions")
    assert page.status_code == 200
    assert re.findall(r"#sha256=([0-9a-f]{64})", page.text)[0] == sha256
    assert len(re.findall(r"\.whl#sha256=", page.text)) == 1
    assert hashlib.sha256(wheel.content).hexdigest() == sha256
    second_log = second.log()
    assert FINISHED.findall(first_log) + FINISHED.findall(second_log) == [job_id]
    assert "resuming 1 publish job(s)" in second.replica.log()
    assert "Traceback" not in first_log + second_log
