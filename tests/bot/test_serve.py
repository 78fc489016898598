"""`ib serve` as a user runs it: a real process on 127.0.0.1 with a fresh database and key file."""

from __future__ import annotations

import os
import signal
import socket
import stat
import subprocess
import sys
import time
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest
from aiohttp.test_utils import TestClient, TestServer

from bot.config import Settings
from bot.web import create_app
from storage import Database, Environments

REPO = Path(__file__).resolve().parents[2]
STARTUP_LIMIT_S = 60.0  # a generous limit for failure detection, not a speed assertion


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@dataclass
class Served:
    process: subprocess.Popen[bytes]
    base_url: str
    log_path: Path
    folder: Path

    def log(self) -> str:
        return self.log_path.read_text(encoding="utf-8", errors="replace")

    def stop(self) -> int:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
        try:
            return self.process.wait(timeout=STARTUP_LIMIT_S)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()
            raise


def serve_env(folder: Path, extra: Mapping[str, str] | None = None) -> dict[str, str]:
    """The caller's environment without any IB_/SLACK_ setting, pointed at ``folder``."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("IB_", "SLACK_"))}
    env.update(
        IB_DATABASE_URL=f"sqlite+aiosqlite:///{folder / 'ib.db'}",
        IB_KEY_FILE=str(folder / "ib.key"),
        PYTHONPATH=os.pathsep.join(filter(None, (str(REPO), os.environ.get("PYTHONPATH")))),
    )
    env.update(extra or {})
    return env


def start_serve(folder: Path, extra_env: Mapping[str, str] | None = None) -> Served:
    """Start `ib serve` in ``folder`` and wait until it answers /healthz (or has exited)."""
    port = free_port()
    env = serve_env(folder, extra_env)
    log_path = folder / "serve.log"
    with log_path.open("wb") as log_file:
        process = subprocess.Popen(
            [sys.executable, "-m", "bot.cli", "serve", "--host", "127.0.0.1", "--port", str(port)],
            cwd=folder,
            env=env,
            stdout=log_file,
            stderr=subprocess.STDOUT,
        )
    served = Served(process, f"http://127.0.0.1:{port}", log_path, folder)
    deadline = time.monotonic() + STARTUP_LIMIT_S
    while time.monotonic() < deadline and process.poll() is None:
        try:
            if httpx.get(f"{served.base_url}/healthz", timeout=2).status_code == 200:
                return served
        except httpx.TransportError:
            time.sleep(0.1)
    if process.poll() is not None:
        pytest.fail(f"ib serve exited with {process.returncode}:\n{served.log()}")
    served.stop()
    pytest.fail(f"ib serve did not answer /healthz:\n{served.log()}")


@pytest.fixture
def served(tmp_path: Path) -> Iterator[Served]:
    served = start_serve(tmp_path)
    yield served
    served.stop()


def test_serve_answers_health_checks_and_stops_cleanly_on_sigterm(served: Served) -> None:
    health = httpx.get(f"{served.base_url}/healthz")
    ready = httpx.get(f"{served.base_url}/readyz")
    assert (health.status_code, health.json()) == (200, {"status": "ok"})
    assert (ready.status_code, ready.json()) == (200, {"status": "ready", "database": "ok"})

    assert served.stop() == 0
    log = served.log()
    assert (
        "Slack not connected: set SLACK_SIGNING_SECRET and SLACK_BOT_TOKEN "
        "(or SLACK_CLIENT_ID/SLACK_CLIENT_SECRET for multi-workspace install); see README" in log
    )
    assert "Traceback" not in log


def test_first_start_creates_a_private_key_file_and_says_so(served: Served) -> None:
    key_file = served.folder / "ib.key"
    assert stat.S_IMODE(key_file.stat().st_mode) == 0o600
    assert served.stop() == 0
    assert f"created the secret key file {key_file} (mode 0600)" in served.log()


def test_configured_slack_is_not_reported_missing_and_secrets_stay_out_of_debug_logs(tmp_path: Path) -> None:
    bot_token = "xoxb-1111-2222-" + "a1b2c3d4e5f6" * 2
    signing_secret = "8f742231b10e8888abcd99yyyzzz85a5"
    served = start_serve(
        tmp_path,
        {"SLACK_BOT_TOKEN": bot_token, "SLACK_SIGNING_SECRET": signing_secret, "IB_LOG_LEVEL": "DEBUG"},
    )
    assert httpx.get(f"{served.base_url}/readyz").status_code == 200
    assert served.stop() == 0
    log = served.log()
    assert "listening on" in log
    assert "Slack not connected" not in log
    assert bot_token not in log and signing_secret not in log


def test_a_taken_port_is_one_clear_line_and_exit_2(tmp_path: Path) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        result = subprocess.run(
            [sys.executable, "-m", "bot.cli", "serve", "--port", str(port)],
            cwd=tmp_path,
            env=serve_env(tmp_path),
            capture_output=True,
            text=True,
            timeout=STARTUP_LIMIT_S,
        )
    assert result.returncode == 2
    assert result.stderr.splitlines()[-1].startswith(f"ib serve: cannot listen on 127.0.0.1:{port}: ")
    assert "Traceback" not in result.stderr


async def test_readyz_is_503_when_the_database_does_not_answer(tmp_path: Path) -> None:
    database = Database(f"sqlite+aiosqlite:///{tmp_path / 'missing-folder' / 'ib.db'}")
    client = TestClient(TestServer(create_app(Settings(), database)))
    await client.start_server()
    try:
        health = await client.get("/healthz")
        ready = await client.get("/readyz")
        assert health.status == 200
        assert (ready.status, await ready.json()) == (
            503,
            {"status": "unavailable", "database": "unreachable"},
        )
    finally:
        await client.close()
        await database.dispose()


async def test_readyz_answers_while_a_write_is_in_progress(tmp_path: Path) -> None:
    database = Database(f"sqlite+aiosqlite:///{tmp_path / 'ib.db'}")
    await database.migrate()
    client = TestClient(TestServer(create_app(Settings(), database)))
    await client.start_server()
    try:
        async with database.session() as session:
            await Environments(session).create("qa")  # holds SQLite's write lock until the block ends
            ready = await client.get("/readyz")
            assert ready.status == 200
    finally:
        await client.close()
        await database.dispose()
