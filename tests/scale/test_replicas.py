"""Two `ib serve` replicas and two `ib worker` processes on one PostgreSQL database.

A publish queued next to the service runs on a worker; that worker is killed in the middle of the
job (``IB_TEST_PUBLISH_STEP_DELAY`` holds each step) and the other worker finishes it: one version,
one final notification, and both replicas serve the same package index and metrics.
"""

from __future__ import annotations

import base64
import hashlib
import json
import re
import subprocess
import sys
from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest

from generator.publisher import STEP_DELAY_ENV
from storage import generate_key
from tests.bot.test_serve import STARTUP_LIMIT_S, serve_env
from tests.fixtures.corpora import corpus_file
from tests.fixtures.db import POSTGRES_URL, throwaway_postgres_database
from tests.fixtures.publish import ADMIN
from tests.scale.deployment import (
    dev_token,
    job_row,
    scalar,
    start_replica,
    start_worker,
    wait_for_state,
    wait_until_notified,
)
from tests.scale.test_metrics import sample

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(not POSTGRES_URL, reason="several replicas need PostgreSQL: set IB_TEST_POSTGRES_URL"),
]
FINISHED = re.compile(r"publish job (\S+) finished: published")


@pytest.fixture
async def postgres_url() -> AsyncIterator[str]:
    async with throwaway_postgres_database(POSTGRES_URL) as url:
        yield url


def queue_publish(folder: Path, env: dict[str, str]) -> str:
    spec = folder / "integration.json"
    spec.write_text(
        json.dumps(
            {
                "provider": "sap-odata",
                "application_name": "Scale",
                "module_name": "gw_scale",
                "objects": ["BusinessPartnerSet", "ProductSet"],
            }
        ),
        encoding="utf-8",
    )
    metadata = str(corpus_file("sap-v2/GWSAMPLE_BASIC.edmx"))
    queued = subprocess.run(
        [
            sys.executable,
            "-m",
            "bot.cli",
            "publish",
            "--spec",
            str(spec),
            "--team",
            "T0SCALE",
            "--metadata",
            metadata,
        ],
        cwd=folder,
        env=serve_env(folder, env),
        capture_output=True,
        text=True,
        timeout=STARTUP_LIMIT_S,
        check=False,
    )
    assert queued.returncode == 0, queued.stderr
    return queued.stdout.split()[3]


def test_a_worker_killed_mid_job_leaves_it_to_the_other_and_replicas_share_everything(
    tmp_path: Path, postgres_url: str
) -> None:
    env = {
        "IB_DATABASE_URL": postgres_url,
        "IB_ADMINS": ADMIN,
        "IB_SECRET_KEYS": generate_key(),
        STEP_DELAY_ENV: "2",
    }
    # The first replica migrates the database; the others find it at the head revision.
    processes = [start_replica(tmp_path, "serve-a", env)]
    try:
        processes.append(start_replica(tmp_path, "serve-b", env))
        processes += [start_worker(tmp_path, "worker-1", env), start_worker(tmp_path, "worker-2", env)]
        replicas, workers = processes[:2], processes[2:]

        job_id = queue_publish(tmp_path, env)
        wait_for_state(postgres_url, job_id, {"building"}, *processes)
        running = [worker for worker in workers if f"publish job {job_id} " in worker.log()]
        assert len(running) == 1, "exactly one worker runs the job"
        killed = running[0]
        killed.process.kill()
        killed.process.wait()
        survivor = next(worker for worker in workers if worker is not killed)

        wait_for_state(postgres_url, job_id, {"published", "failed"}, *replicas, survivor)
        token = dev_token(postgres_url)
        auth = {"Authorization": "Basic " + base64.b64encode(f"__token__:{token}".encode()).decode()}
        # Requests alternate between the replicas, as behind a load balancer.
        pages = [
            httpx.get(f"{replica.base_url}/envs/dev/simple/gw-scale/", headers=auth) for replica in replicas
        ]
        wheels = [
            httpx.get(f"{replica.base_url}/envs/dev/files/gw_scale-0.1.0-py3-none-any.whl", headers=auth)
            for replica in reversed(replicas)
        ]
        wait_until_notified(postgres_url, job_id)
        replica_metrics = [httpx.get(f"{replica.base_url}/metrics").text for replica in replicas]
        survivor_metrics = httpx.get(f"{survivor.base_url}/metrics").text
    finally:
        for process in processes:
            if process.process.poll() is None:
                process.stop()

    job = job_row(postgres_url, job_id)
    assert (job["state"], job["error"], job["attempts"]) == ("published", None, 2)
    assert job["notified_at"] is not None
    assert scalar(postgres_url, "SELECT count(*) FROM integration_versions") == 1
    sha256 = scalar(postgres_url, "SELECT sha256 FROM integration_versions")
    for page in pages:
        assert page.status_code == 200
        assert re.findall(r"\.whl#sha256=([0-9a-f]{64})", page.text) == [sha256]
    assert [hashlib.sha256(wheel.content).hexdigest() for wheel in wheels] == [sha256, sha256]

    logs = {process.folder.name: process.log() for process in processes}
    assert FINISHED.findall(survivor.log()) == [job_id]
    assert sum(len(FINISHED.findall(log)) for log in logs.values()) == 1
    assert "another worker resumes it" in survivor.log()
    assert all("Traceback" not in log for log in logs.values()), logs

    for metrics in replica_metrics:  # read from the database: the same on every replica
        assert sample(metrics, "ib_publish_jobs", state="published") == 1
    assert (
        sum(
            sample(metrics, "ib_http_requests_total", route="/envs/{env}/simple/{project}/", status="200")
            for metrics in replica_metrics
        )
        == 2
    )
    assert sample(survivor_metrics, "ib_publish_job_seconds_count", state="published") == 1
    assert sample(survivor_metrics, "ib_publish_transitions_total", state="publishing") == 1
