"""`ib connection ...` and `ib keys rotate` on connection secrets, through the real CLI entry point."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

import httpx
import pytest
from cryptography.fernet import Fernet, InvalidToken
from sqlalchemy import select

from bot.cli import main
from storage import Database, generate_key
from storage.models import ExternalConnection
from tests.fixtures.connections import CAP_MODULE
from tests.fixtures.publish import ADMIN, TEAM
from tests.peers.cap import CapServer

pytestmark = pytest.mark.peers
OLD_KEY, NEW_KEY = generate_key(), generate_key()


@pytest.fixture
def url(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> str:
    """A migrated SQLite database configured through the environment, as a user does."""
    url = f"sqlite+aiosqlite:///{tmp_path / 'ib.db'}"
    monkeypatch.setenv("IB_DATABASE_URL", url)
    monkeypatch.setenv("IB_SECRET_KEYS", OLD_KEY)
    monkeypatch.setenv("IB_ADMINS", ADMIN)
    monkeypatch.setenv("IB_ALLOW_PRIVATE_URLS", "1")
    monkeypatch.delenv("IB_BASE_URL", raising=False)
    assert main(["migrate"]) == 0
    return url


@pytest.fixture
def published(url: str, tmp_path: Path, cap_server: CapServer, capsys: pytest.CaptureFixture[str]) -> None:
    """`cap_shop` published to dev with `ib publish`, from the CAP peer's $metadata saved as a file."""
    metadata = httpx.get(
        cap_server.v2_url + "$metadata", auth=("alice", cap_server.users["alice"]), trust_env=False
    )
    metadata.raise_for_status()
    (tmp_path / "cap.edmx").write_bytes(metadata.content)
    spec = {
        "provider": "sap-odata",
        "application_name": "CAP shop",
        "module_name": CAP_MODULE,
        "objects": ["Categories", "Products"],
        "source": {"kind": "file", "location": "cap.edmx"},
    }
    (tmp_path / "integration.json").write_text(json.dumps(spec), encoding="utf-8")
    assert main(["publish", "--spec", str(tmp_path / "integration.json"), "--team", TEAM, "--wait"]) == 0
    capsys.readouterr()


def run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    code = main(list(argv))
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def create_args(cap: CapServer, *extra: str) -> list[str]:
    return [
        *("connection", "create", "--env", "dev", "--provider", "sap-odata", "--name", "cap"),
        *("--field", f"url={cap.v2_url}", "--field", "user=alice", *extra),
    ]


def stored_secret(url: str) -> bytes:
    async def read() -> bytes:
        database = Database(url)
        try:
            async with database.session() as session:
                token = await session.scalar(select(ExternalConnection.secret))
        finally:
            await database.dispose()
        assert token is not None
        return token

    return asyncio.run(read())


@pytest.mark.usefixtures("published")
def test_the_cli_creates_tests_associates_and_refuses_to_delete_a_connection_in_use(
    capsys: pytest.CaptureFixture[str], cap_server: CapServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    password = cap_server.users["alice"]
    seen: list[str] = []

    def step(*argv: str) -> tuple[int, str, str]:
        code, out, err = run(capsys, *argv)
        seen.append(out + err)
        return code, out, err

    code, _, err = step(*create_args(cap_server, "--field", f"password={password}"))
    assert code == 2 and "password is secret: pass it with --secret-env password=VAR" in err
    code, _, err = step(*create_args(cap_server, "--secret-env", "password=CAP_PASSWORD"))
    assert (code, err.strip()) == (
        2,
        "ib connection: --secret-env password=CAP_PASSWORD: the environment variable CAP_PASSWORD is not set",
    )
    monkeypatch.setenv("CAP_PASSWORD", "wrong")
    code, _, err = step(*create_args(cap_server, "--secret-env", "password=CAP_PASSWORD"))
    assert code == 2 and "connection test failed, nothing was saved" in err and "401" in err
    assert step("connection", "list")[1].splitlines() == ["NAME  ENV  PROVIDER  LAST TEST  USED BY"]

    monkeypatch.setenv("CAP_PASSWORD", password)
    code, out, _ = step(*create_args(cap_server, "--secret-env", "password=CAP_PASSWORD"))
    assert code == 0 and out.startswith("created connection cap in dev (connected: ")
    code, out, _ = step("connection", "test", "cap", "--env", "dev")
    assert code == 0 and out.startswith("cap in dev: ok: connected")
    assert step("connection", "associate", CAP_MODULE, "dev", "cap")[:2] == (
        0,
        f"{CAP_MODULE} uses connection cap in dev\n",
    )
    code, _, err = step("connection", "delete", "cap", "--env", "dev")
    assert (code, err.strip()) == (
        2,
        f"ib connection: connection 'cap' is used by {CAP_MODULE} in dev: associate it with another "
        "connection first",
    )
    code, out, _ = step("connection", "list", "--env", "dev")
    header, row = out.splitlines()
    assert header.split() == ["NAME", "ENV", "PROVIDER", "LAST", "TEST", "USED", "BY"]
    assert row.split()[:4] == ["cap", "dev", "sap-odata", "ok"] and row.split()[-1] == CAP_MODULE
    code, _, err = step("connection", "associate", CAP_MODULE, "qa", "cap")
    assert (code, err.strip()) == (2, "ib connection: there is no environment named 'qa'; see `ib env list`")
    assert password not in "".join(seen)


@pytest.mark.usefixtures("url")
def test_keys_rotate_re_encrypts_connection_secrets_so_the_old_key_can_go(
    url: str, capsys: pytest.CaptureFixture[str], cap_server: CapServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("CAP_PASSWORD", cap_server.users["alice"])
    assert run(capsys, *create_args(cap_server, "--secret-env", "password=CAP_PASSWORD"))[0] == 0
    Fernet(OLD_KEY).decrypt(stored_secret(url))

    monkeypatch.setenv("IB_SECRET_KEYS", f"{NEW_KEY},{OLD_KEY}")
    code, out, _ = run(capsys, "keys", "rotate")
    assert code == 0 and out.startswith("re-encrypted 1 secret value(s)")
    monkeypatch.setenv("IB_SECRET_KEYS", NEW_KEY)
    assert run(capsys, "connection", "test", "cap", "--env", "dev")[0] == 0
    assert json.loads(Fernet(NEW_KEY).decrypt(stored_secret(url))) == {"password": cap_server.users["alice"]}
    with pytest.raises(InvalidToken):
        Fernet(OLD_KEY).decrypt(stored_secret(url))

    monkeypatch.setenv("IB_SECRET_KEYS", f"{generate_key()},{OLD_KEY}")
    code, out, err = run(capsys, "connection", "test", "cap", "--env", "dev")
    assert code == 2 and out == ""
    assert err.startswith("ib connection: a stored secret cannot be decrypted with the configured keys")
    code, _, err = run(capsys, "keys", "rotate")
    assert code == 2 and "does not open with the configured keys; nothing was re-encrypted" in err
