"""The engine and the unit of work.

One :class:`Database` per process; one ``async with database.session()`` per unit of work (a
Slack request, a job step), committed when the block ends and rolled back when it raises.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from sqlalchemy import make_url, text
from sqlalchemy.engine import URL
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from storage.engine import DEFAULT_DATABASE_URL, READ_ONLY, create_engine
from storage.migrate import upgrade_engine

# Readiness probes give up after a few seconds; a database slower than that is not ready.
PING_TIMEOUT_S = 5.0


class Database:
    """The engine, the session factory and the operations the service needs on them."""

    def __init__(self, url: str | URL = DEFAULT_DATABASE_URL) -> None:
        self.url = make_url(url)
        self.engine = create_engine(self.url)
        self._sessions = async_sessionmaker(self.engine, expire_on_commit=False)

    @property
    def display_url(self) -> str:
        """The URL with its password masked: the only form that may appear in logs."""
        return self.url.render_as_string(hide_password=True)

    @asynccontextmanager
    async def session(self) -> AsyncIterator[AsyncSession]:
        """One unit of work: committed at the end of the block, rolled back if it raises."""
        async with self._sessions() as session, session.begin():
            yield session

    @asynccontextmanager
    async def reader(self) -> AsyncIterator[AsyncSession]:
        """A unit of work that only reads (a consistent snapshot). On SQLite it takes no write
        lock, unlike :meth:`session`, so hot read paths (the runtime API) run side by side with
        each other and with writers. Writing through it is a programming error."""
        async with self.engine.connect() as connection:
            await connection.execution_options(**{READ_ONLY: True})
            async with AsyncSession(bind=connection, expire_on_commit=False) as session, session.begin():
                yield session

    async def ping(self) -> None:
        """Raise if the database does not answer a trivial query within PING_TIMEOUT_S seconds."""
        async with asyncio.timeout(PING_TIMEOUT_S), self.engine.connect() as connection:
            autocommit = await connection.execution_options(isolation_level="AUTOCOMMIT")
            await autocommit.execute(text("SELECT 1"))

    async def migrate(self) -> str:
        """Upgrade the schema to the newest revision; return that revision."""
        return await upgrade_engine(self.engine)

    async def dispose(self) -> None:
        await self.engine.dispose()
