"""Engine creation per backend.

SQLite (the embedded default) gets WAL, foreign keys and a busy timeout on every connection, and
every transaction starts with ``BEGIN IMMEDIATE``: a deferred transaction that reads and then
writes fails at once with "database is locked" when another connection wrote in between, whereas
an immediate one waits for the busy timeout. SQLite serialises writers anyway, and units of work
are short, so the lost read concurrency is not felt, except on hot read-only paths: connections
carrying the :data:`READ_ONLY` execution option (``Database.reader()``) begin a plain deferred
transaction, which in WAL mode reads its snapshot beside any writer and takes no lock.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import event, make_url
from sqlalchemy.engine import URL
from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine

DEFAULT_DATABASE_URL = "sqlite+aiosqlite:///./ib.db"
READ_ONLY = "ib_read_only"  # execution option of connections that never write
SQLITE_BUSY_TIMEOUT_MS = 10_000
POSTGRES_CONNECT_TIMEOUT_S = 10


def create_engine(url: str | URL) -> AsyncEngine:
    """An async engine for ``url`` with the per-backend settings described above."""
    parsed = make_url(url)
    if parsed.get_backend_name() == "sqlite":
        engine = create_async_engine(parsed)
        _configure_sqlite(engine)
        return engine
    if parsed.get_backend_name() == "postgresql":
        return create_async_engine(
            parsed, pool_pre_ping=True, connect_args={"timeout": POSTGRES_CONNECT_TIMEOUT_S}
        )
    return create_async_engine(parsed, pool_pre_ping=True)


def _configure_sqlite(engine: AsyncEngine) -> None:
    @event.listens_for(engine.sync_engine, "connect")
    def _on_connect(dbapi_connection: Any, connection_record: Any) -> None:
        # The driver's own implicit BEGIN breaks SAVEPOINT and cannot be made IMMEDIATE.
        dbapi_connection.isolation_level = None
        cursor = dbapi_connection.cursor()
        cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute("PRAGMA foreign_keys=ON")
        cursor.execute(f"PRAGMA busy_timeout={SQLITE_BUSY_TIMEOUT_MS}")
        cursor.close()

    @event.listens_for(engine.sync_engine, "begin")
    def _on_begin(connection: Any) -> None:
        options = connection.get_execution_options()
        # AUTOCOMMIT connections (health probes) want no transaction, least of all a write lock.
        if options.get("isolation_level") != "AUTOCOMMIT":
            connection.exec_driver_sql("BEGIN" if options.get(READ_ONLY) else "BEGIN IMMEDIATE")
