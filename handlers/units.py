"""Units of work for listeners: reads that wait for no writer, writes that queue instead of polling.

``Database.session()`` begins every unit of work as a writer (on SQLite ``BEGIN IMMEDIATE`` takes
the write lock), so an ack that only looks something up would wait for every write in the process.
And SQLite has one writer at a time: a second one sleeps in its busy handler, polling with growing
pauses (up to 100 ms), which is where slow acks would come from. Here reads run outside any
transaction, and this process's writes take turns in order on an asyncio lock.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from sqlalchemy.ext.asyncio import AsyncSession

from storage import Database


class UnitsOfWork:
    def __init__(self, database: Database) -> None:
        self.database = database
        embedded = database.url.get_backend_name() == "sqlite"
        # Whether other processes answer the same users on this database: PostgreSQL is how
        # replicas are run (DESIGN.md section 7), a SQLite file is the single-process embedded
        # default. On a shared database, what a process keeps in memory across requests must be
        # checked against the database before anything is answered from it.
        self.shared = not embedded
        # Only SQLite serialises writers; PostgreSQL runs them side by side.
        self._turn = asyncio.Lock() if embedded else None

    @asynccontextmanager
    async def reading(self) -> AsyncIterator[AsyncSession]:
        """Reads only; each statement sees the latest committed state."""
        async with self.database.engine.connect() as connection:
            autocommit = await connection.execution_options(isolation_level="AUTOCOMMIT")
            async with AsyncSession(bind=autocommit, expire_on_commit=False) as session:
                yield session

    @asynccontextmanager
    async def writing(self) -> AsyncIterator[AsyncSession]:
        """One unit of work (committed at the end, rolled back if it raises), after this process's
        earlier writes."""
        if self._turn is None:
            async with self.database.session() as session:
                yield session
            return
        async with self._turn, self.database.session() as session:
            yield session
