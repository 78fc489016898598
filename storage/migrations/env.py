"""Alembic environment: runs on the connection handed in by ``storage.migrate``.

When started by the ``alembic`` tooling instead (no connection given), it opens its own async
engine on ``sqlalchemy.url`` with the same per-backend settings as the service.
"""

from __future__ import annotations

import asyncio
from typing import Any, Literal

from alembic import context
from sqlalchemy import Connection

from storage.engine import DEFAULT_DATABASE_URL, create_engine
from storage.models import Base, UtcDateTime

config = context.config


def render_item(kind: str, item: Any, autogen_context: Any) -> str | Literal[False]:
    # Revisions must not import the models (they change later); spell the column type out instead.
    if kind == "type" and isinstance(item, UtcDateTime):
        return "sa.DateTime(timezone=True)"
    return False


def run_migrations(connection: Connection) -> None:
    context.configure(
        connection=connection,
        target_metadata=Base.metadata,
        # SQLite can ALTER almost nothing; batch mode lets later revisions change tables anyway.
        render_as_batch=True,
        compare_type=True,
        render_item=render_item,
    )
    with context.begin_transaction():
        context.run_migrations()


async def run_standalone(url: str) -> None:
    engine = create_engine(url)
    try:
        async with engine.begin() as connection:
            await connection.run_sync(run_migrations)
    finally:
        await engine.dispose()


if context.is_offline_mode():
    context.configure(
        url=config.get_main_option("sqlalchemy.url") or DEFAULT_DATABASE_URL,
        target_metadata=Base.metadata,
        literal_binds=True,
    )
    with context.begin_transaction():
        context.run_migrations()
elif (given := config.attributes.get("connection")) is not None:
    run_migrations(given)
else:
    asyncio.run(run_standalone(config.get_main_option("sqlalchemy.url") or DEFAULT_DATABASE_URL))
