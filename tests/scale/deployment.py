"""`ib serve` replicas and `ib worker` processes on one database, as an operator runs them, and
synchronous reads of that database (SQLite or PostgreSQL) for tests that watch them."""

from __future__ import annotations

import asyncio
import subprocess
import sys
import time
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest
from sqlalchemy import URL, RowMapping, create_engine, make_url, text
from sqlalchemy.pool import NullPool

from storage import Database, Environments, RuntimeTokens
from tests.bot.test_serve import STARTUP_LIMIT_S, Served, free_port, serve_env, start_serve
from tests.fixtures.publish import ADMIN


@dataclass
class Deployment:
    """The processes of one service: `ib serve`, plus an `ib worker` on PostgreSQL (where the
    replicas only defer publish jobs)."""

    replica: Served
    workers: list[Served]

    @property
    def processes(self) -> list[Served]:
        return [self.replica, *self.workers]

    def log(self) -> str:
        return "\n".join(process.log() for process in self.processes)

    def kill(self) -> None:
        for process in self.processes:
            process.process.kill()
            process.process.wait()

    def stop(self) -> None:
        for process in self.processes:
            process.stop()


def start_deployment(folder: Path, database_url: str, env: Mapping[str, str]) -> Deployment:
    """`ib serve` in ``folder`` on ``database_url``, and an `ib worker` when that is PostgreSQL."""
    env = {**env, "IB_DATABASE_URL": database_url}
    replica = start_serve(folder, env)
    if make_url(database_url).get_backend_name() != "postgresql":
        return Deployment(replica, [])
    try:
        return Deployment(replica, [start_worker(folder, "worker", env)])
    except BaseException:
        replica.stop()
        raise


def start_replica(folder: Path, name: str, env: Mapping[str, str]) -> Served:
    """`ib serve` with its own folder (log, key file) and ``env`` (the shared database and keys)."""
    replica_folder = folder / name
    replica_folder.mkdir(exist_ok=True)
    return start_serve(replica_folder, env)


def start_worker(
    folder: Path, name: str, env: Mapping[str, str], *, niceness: int = 0, concurrency: int = 2
) -> Served:
    """`ib worker` in ``folder/name``, ready once its /metrics answers (``base_url``); ``niceness``
    lowers its CPU priority, as an operator does who runs workers beside the replicas;
    ``concurrency``: its jobs at a time (`ib worker --concurrency`)."""
    worker_folder = folder / name
    worker_folder.mkdir(exist_ok=True)
    port = free_port()
    log_path = worker_folder / "worker.log"
    command = [
        sys.executable,
        "-m",
        "bot.cli",
        "worker",
        "--concurrency",
        str(concurrency),
        "--metrics-port",
        str(port),
    ]
    if niceness:
        command = ["nice", "-n", str(niceness), *command]
    with log_path.open("wb") as log_file:
        process = subprocess.Popen(
            command,
            cwd=worker_folder,
            env=serve_env(worker_folder, env),
            stdout=log_file,
            stderr=subprocess.STDOUT,
        )
    worker = Served(process, f"http://127.0.0.1:{port}", log_path, worker_folder)
    deadline = time.monotonic() + STARTUP_LIMIT_S
    while time.monotonic() < deadline and process.poll() is None:
        try:
            if httpx.get(f"{worker.base_url}/metrics", timeout=2).status_code == 200:
                return worker
        except httpx.TransportError:
            time.sleep(0.1)
    worker.stop()
    pytest.fail(f"ib worker did not start:\n{worker.log()}")


def sync_url(database_url: str) -> URL:
    """The same database through a synchronous driver, for a test that reads it between steps."""
    url = make_url(database_url)
    return url.set(drivername="sqlite" if url.get_backend_name() == "sqlite" else "postgresql+psycopg")


def job_row(database_url: str, job_id: str) -> RowMapping:
    engine = create_engine(sync_url(database_url), poolclass=NullPool)
    try:
        with engine.connect() as connection:
            row = (
                connection.execute(text("SELECT * FROM publish_jobs WHERE id = :id"), {"id": job_id})
                .mappings()
                .first()
            )
    finally:
        engine.dispose()
    assert row is not None
    return row


def scalar(database_url: str, query: str) -> object:
    engine = create_engine(sync_url(database_url), poolclass=NullPool)
    try:
        with engine.connect() as connection:
            return connection.execute(text(query)).scalar()
    finally:
        engine.dispose()


def wait_for_state(database_url: str, job_id: str, states: set[str], *processes: Served) -> str:
    """The job's state once it is one of ``states``; fails when one of ``processes`` exits first."""
    deadline = time.monotonic() + STARTUP_LIMIT_S
    while time.monotonic() < deadline:
        state = str(job_row(database_url, job_id)["state"])
        if state in states:
            return state
        for process in processes:
            assert process.process.poll() is None, process.log()
        time.sleep(0.05)
    logs = "\n".join(process.log() for process in processes)
    pytest.fail(f"job {job_id} never reached {sorted(states)}:\n{logs}")


def wait_until_notified(database_url: str, job_id: str) -> None:
    """Until the job's final notification is claimed (it may follow the final state)."""
    deadline = time.monotonic() + STARTUP_LIMIT_S
    while job_row(database_url, job_id)["notified_at"] is None and time.monotonic() < deadline:
        time.sleep(0.05)


def dev_token(database_url: str) -> str:
    async def create() -> str:
        database = Database(database_url)
        try:
            async with database.session() as session:
                dev = await Environments(session).require("dev")
                _, token = await RuntimeTokens(session).create(dev, label="test", created_by=ADMIN)
            return token
        finally:
            await database.dispose()

    return asyncio.run(create())
