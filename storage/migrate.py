"""Alembic migrations, run from code: no ``alembic.ini`` is needed at run time.

``ib migrate`` and the start of ``ib serve`` call :func:`upgrade` / :func:`upgrade_engine`.
Replicas starting together on PostgreSQL take an advisory lock, so only one of them migrates;
on SQLite the ``BEGIN IMMEDIATE`` of every transaction does the same.

To write a new revision, change ``storage/models.py`` and let Alembic draft it against a database
at head, then review it like code::

    python -c "from alembic import command; from storage.migrate import alembic_config; \
command.revision(alembic_config('sqlite+aiosqlite:///./ib.db'), 'what changes', autogenerate=True)"
"""

from __future__ import annotations

import asyncio
import logging
from pathlib import Path

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import Connection, text
from sqlalchemy.engine import URL
from sqlalchemy.ext.asyncio import AsyncEngine

from storage.engine import create_engine
from storage.errors import SchemaOutOfDate

log = logging.getLogger(__name__)

MIGRATIONS_DIR = Path(__file__).resolve().with_name("migrations")
# Any constant works; it only has to be the same in every replica.
_POSTGRES_MIGRATION_LOCK = 0x1B_5EED


def alembic_config(url: str | URL | None = None) -> Config:
    """An Alembic configuration built in code; ``url`` is only needed by the ``alembic`` tooling."""
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS_DIR))
    if url is not None:
        rendered = url.render_as_string(hide_password=False) if isinstance(url, URL) else url
        # configparser interpolation would eat a '%' in an URL-encoded password.
        config.set_main_option("sqlalchemy.url", rendered.replace("%", "%%"))
    return config


def head_revision() -> str:
    head = ScriptDirectory.from_config(alembic_config()).get_current_head()
    assert head is not None, "storage/migrations/versions holds no revision"
    return head


def _current(connection: Connection) -> str | None:
    return MigrationContext.configure(connection).get_current_revision()


def _upgrade(connection: Connection, revision: str) -> str | None:
    before = _current(connection)
    config = alembic_config()
    config.attributes["connection"] = connection
    command.upgrade(config, revision)
    after = _current(connection)
    if after != before:
        log.info("migrated the database from revision %s to %s", before or "none", after)
    return after


async def upgrade_engine(engine: AsyncEngine, revision: str = "head") -> str:
    """Migrate the database behind ``engine`` in one transaction; return the revision reached."""
    async with engine.begin() as connection:
        if connection.dialect.name == "postgresql":
            await connection.execute(
                text("SELECT pg_advisory_xact_lock(:lock)"), {"lock": _POSTGRES_MIGRATION_LOCK}
            )
        reached = await connection.run_sync(_upgrade, revision)
    return reached or ""


def upgrade(url: str | URL, revision: str = "head") -> str:
    """Migrate the database at ``url`` (blocking; for the CLI); return the revision reached."""

    async def run() -> str:
        engine = create_engine(url)
        try:
            return await upgrade_engine(engine, revision)
        finally:
            await engine.dispose()

    return asyncio.run(run())


async def ensure_current(engine: AsyncEngine) -> None:
    """Raise :class:`SchemaOutOfDate` unless the database is at the code's head revision."""
    async with engine.connect() as connection:
        current = await connection.run_sync(_current)
    if current != head_revision():
        raise SchemaOutOfDate(
            f"database schema is at revision {current or 'none'}, the code needs {head_revision()}: "
            "run `ib migrate` first"
        )
