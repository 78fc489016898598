"""The migrations build exactly the schema the models describe, on SQLite and PostgreSQL."""

from __future__ import annotations

from typing import Any

import pytest
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from sqlalchemy import Column, Connection, Integer, MetaData, text
from sqlalchemy.exc import IntegrityError

from storage import Database, Environments, SchemaOutOfDate
from storage.migrate import ensure_current, head_revision, upgrade
from storage.models import Base, RuntimeToken


def schema_differences(connection: Connection, metadata: MetaData) -> list[Any]:
    return list(compare_metadata(MigrationContext.configure(connection), metadata))


async def test_migrated_schema_is_exactly_the_models(database: Database) -> None:
    async with database.engine.connect() as connection:
        assert await connection.run_sync(schema_differences, Base.metadata) == []


async def test_the_comparison_notices_a_column_the_migrations_lack(database: Database) -> None:
    extended = MetaData()
    for table in Base.metadata.tables.values():
        table.to_metadata(extended)
    extended.tables["environments"].append_column(Column("colour", Integer))
    async with database.engine.connect() as connection:
        differences = await connection.run_sync(schema_differences, extended)
    assert [(kind, column.name) for kind, _, _, column in differences] == [("add_column", "colour")]


async def test_dev_development_environment_exists_after_migrate(database: Database) -> None:
    async with database.session() as session:
        environments = await Environments(session).all()
    assert [(e.name, e.development) for e in environments] == [("dev", True)]


async def test_migrating_again_changes_nothing(database: Database) -> None:
    assert await database.migrate() == head_revision()
    await ensure_current(database.engine)
    async with database.session() as session:
        assert len(await Environments(session).all()) == 1


async def test_unmigrated_database_is_reported_out_of_date(database_url: str) -> None:
    database = Database(database_url)
    try:
        with pytest.raises(SchemaOutOfDate, match="run `ib migrate`"):
            await ensure_current(database.engine)
    finally:
        await database.dispose()


async def test_foreign_keys_are_enforced(database: Database) -> None:
    with pytest.raises(IntegrityError):
        async with database.session() as session:
            session.add(RuntimeToken(environment_id=999, token_hash="0" * 64, created_by="U1"))


def test_blocking_upgrade_for_the_cli_reaches_head(tmp_path: Any) -> None:
    url = f"sqlite+aiosqlite:///{tmp_path / 'cli.db'}"
    assert upgrade(url) == head_revision()


async def test_sqlite_runs_in_wal_mode(tmp_path: Any) -> None:
    database = Database(f"sqlite+aiosqlite:///{tmp_path / 'wal.db'}")
    try:
        async with database.engine.connect() as connection:
            mode = (await connection.execute(text("PRAGMA journal_mode"))).scalar_one()
        assert mode == "wal"
    finally:
        await database.dispose()
