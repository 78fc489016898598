"""`ib migrate` and `ib keys` through the real CLI entry point."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest
from cryptography.fernet import Fernet

from bot.cli import main
from storage import Connections, Database, Environments, SecretBox, generate_key
from storage.migrate import head_revision

SECRET = {"password": "rotate-me-please"}


@pytest.fixture
def env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> str:
    """A database URL in tmp_path, set as IB_DATABASE_URL with no keys configured."""
    url = f"sqlite+aiosqlite:///{tmp_path / 'ib.db'}"
    monkeypatch.setenv("IB_DATABASE_URL", url)
    monkeypatch.setenv("IB_KEY_FILE", str(tmp_path / "ib.key"))
    monkeypatch.delenv("IB_SECRET_KEYS", raising=False)
    return url


def store_connection(url: str, box: SecretBox) -> None:
    async def run() -> None:
        database = Database(url)
        try:
            async with database.session() as session:
                dev = await Environments(session).require("dev")
                await Connections(session, box).create(
                    dev, provider="sap-odata", name="erp", settings={}, secret=SECRET, created_by="U1"
                )
        finally:
            await database.dispose()

    asyncio.run(run())


def read_secret(url: str, box: SecretBox) -> dict[str, object]:
    async def run() -> dict[str, object]:
        database = Database(url)
        try:
            async with database.session() as session:
                dev = await Environments(session).require("dev")
                connections = Connections(session, box)
                (connection,) = await connections.in_environment(dev)
                return connections.read_secret(connection)
        finally:
            await database.dispose()

    return asyncio.run(run())


def test_migrate_reports_the_revision(env: str, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["migrate"]) == 0
    assert capsys.readouterr().out.startswith(f"database {env} is at revision ")


def test_keys_generate_prints_a_usable_key(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["keys", "generate"]) == 0
    key = capsys.readouterr().out.strip()
    Fernet(key.encode())


def test_keys_rotate_lets_the_old_key_go(
    env: str, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    old_key, new_key = generate_key(), generate_key()
    assert main(["migrate"]) == 0
    store_connection(env, SecretBox([old_key]))

    monkeypatch.setenv("IB_SECRET_KEYS", f"{new_key},{old_key}")
    assert main(["keys", "rotate"]) == 0
    assert "re-encrypted 1 secret value(s) with the first key" in capsys.readouterr().out
    assert read_secret(env, SecretBox([new_key])) == SECRET


def test_keys_rotate_refuses_an_unmigrated_database(
    env: str, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("IB_SECRET_KEYS", generate_key())
    assert main(["keys", "rotate"]) == 2
    assert capsys.readouterr().err.splitlines() == [
        "ib keys: database schema is at revision none, the code needs "
        f"{head_revision()}: run `ib migrate` first"
    ]


def test_keys_rotate_without_keys_does_not_mint_one(
    env: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["keys", "rotate"]) == 2
    assert "IB_SECRET_KEYS is not set" in capsys.readouterr().err
    assert not (tmp_path / "ib.key").exists()
