"""Secrets at rest: Fernet round trips, loud failures, the key file, rotation, no plaintext on disk."""

from __future__ import annotations

import logging
import stat
from pathlib import Path

import pytest
from sqlalchemy import select

from storage import (
    Connections,
    Database,
    Environments,
    SecretBox,
    SecretDecryptionError,
    SecretKeyError,
    generate_key,
    rotate_secrets,
)
from storage.models import ExternalConnection

SECRET = {"password": "Tr0ub4dor&3-very-secret", "client_secret": "s3cr3t-client-value"}


async def store_connection(database: Database, box: SecretBox, name: str = "erp") -> int:
    async with database.session() as session:
        dev = await Environments(session).require("dev")
        connection = await Connections(session, box).create(
            dev,
            provider="sap-odata",
            name=name,
            settings={"url": "https://erp.example.test/sap/opu/odata/sap/API", "user": "ALICE"},
            secret=SECRET,
            created_by="U1",
        )
        return connection.id


async def read_secret(database: Database, box: SecretBox, connection_id: int) -> dict[str, object]:
    async with database.session() as session:
        connections = Connections(session, box)
        connection = await connections.get(connection_id)
        assert connection is not None
        return connections.read_secret(connection)


def test_json_round_trip(secret_box: SecretBox) -> None:
    token = secret_box.encrypt_json(SECRET)
    assert SECRET["password"].encode() not in token
    assert secret_box.decrypt_json(token) == SECRET


def test_wrong_key_fails_loudly(secret_box: SecretBox) -> None:
    token = secret_box.encrypt_json(SECRET)
    with pytest.raises(SecretDecryptionError, match="cannot be decrypted with the configured keys"):
        SecretBox([generate_key()]).decrypt_json(token)


def test_malformed_key_is_named_by_position_not_echoed() -> None:
    with pytest.raises(SecretKeyError) as caught:
        SecretBox.load(f"{generate_key()}, not-a-fernet-key")
    assert "#2" in str(caught.value)
    assert "not-a-fernet-key" not in str(caught.value)


def test_key_file_is_created_private_once_and_said_so(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    key_file = tmp_path / "ib.key"
    with caplog.at_level(logging.WARNING, logger="storage.secrets"):
        first = SecretBox.load(None, key_file)
        second = SecretBox.load(None, key_file)
    assert stat.S_IMODE(key_file.stat().st_mode) == 0o600
    assert [r.getMessage() for r in caplog.records if "created the secret key file" in r.getMessage()] == [
        f"created the secret key file {key_file} (mode 0600); it encrypts stored credentials: back it up, "
        "or set IB_SECRET_KEYS instead"
    ]
    assert second.decrypt_json(first.encrypt_json(SECRET)) == SECRET
    assert list(tmp_path.iterdir()) == [key_file]


def test_environment_keys_win_over_the_key_file(tmp_path: Path) -> None:
    key = generate_key()
    box = SecretBox.load(key, tmp_path / "ib.key")
    assert SecretBox([key]).decrypt_json(box.encrypt_json(SECRET)) == SECRET
    assert not (tmp_path / "ib.key").exists()


def test_reading_commands_do_not_mint_a_key(tmp_path: Path) -> None:
    with pytest.raises(SecretKeyError, match="does not exist"):
        SecretBox.load(None, tmp_path / "missing.key", create=False)
    assert not (tmp_path / "missing.key").exists()


async def test_rotation_re_encrypts_so_the_old_key_can_go(database: Database) -> None:
    old_key, new_key = generate_key(), generate_key()
    old_box = SecretBox([old_key])
    first = await store_connection(database, old_box, "erp")
    second = await store_connection(database, old_box, "crm")

    assert await rotate_secrets(database, SecretBox([new_key, old_key])) == 2

    new_only = SecretBox([new_key])
    assert await read_secret(database, new_only, first) == SECRET
    assert await read_secret(database, new_only, second) == SECRET
    with pytest.raises(SecretDecryptionError):
        await read_secret(database, old_box, first)


async def test_rotation_without_the_old_key_writes_nothing(database: Database) -> None:
    old_box = SecretBox([generate_key()])
    connection_id = await store_connection(database, old_box)
    async with database.session() as session:
        before = await session.scalar(select(ExternalConnection.secret))

    with pytest.raises(SecretDecryptionError, match=f"connections #{connection_id}"):
        await rotate_secrets(database, SecretBox([generate_key()]))

    async with database.session() as session:
        assert await session.scalar(select(ExternalConnection.secret)) == before
    assert await read_secret(database, old_box, connection_id) == SECRET


def database_files_bytes(folder: Path) -> bytes:
    return b"".join(path.read_bytes() for path in sorted(folder.glob("ib.db*")))


async def test_no_plaintext_secret_in_the_sqlite_files(tmp_path: Path, secret_box: SecretBox) -> None:
    database = Database(f"sqlite+aiosqlite:///{tmp_path / 'ib.db'}")
    await database.migrate()
    try:
        await store_connection(database, secret_box)
        while_open = database_files_bytes(tmp_path)
    finally:
        await database.dispose()
    for on_disk in (while_open, database_files_bytes(tmp_path)):
        assert b"ALICE" in on_disk  # the non-secret settings are there in clear, so the search is real
        for value in SECRET.values():
            assert value.encode() not in on_disk
