"""`python -m tests.scale.postgres_check`: exit 1 with one line unless IB_TEST_POSTGRES_URL answers.

Run by `make test` and `.ci/run` before the suite, so a PostgreSQL that is down fails in one
clear line instead of as hundreds of fixture errors.
"""

from __future__ import annotations

import asyncio
import os
import sys

from sqlalchemy import make_url, text
from sqlalchemy.exc import ArgumentError
from sqlalchemy.ext.asyncio import create_async_engine

PROBE_TIMEOUT_S = 5.0


async def probe(url: str) -> None:
    engine = create_async_engine(url, connect_args={"timeout": PROBE_TIMEOUT_S})
    try:
        async with engine.connect() as connection:
            await connection.execute(text("SELECT 1"))
    finally:
        await engine.dispose()


def main() -> int:
    url = os.environ.get("IB_TEST_POSTGRES_URL", "")
    try:
        parsed = make_url(url)
    except ArgumentError:
        print(f"IB_TEST_POSTGRES_URL is not a database URL: {url!r}", file=sys.stderr)
        return 1
    shown = parsed.render_as_string(hide_password=True)
    if parsed.get_backend_name() != "postgresql":
        print(f"IB_TEST_POSTGRES_URL must be a postgresql+asyncpg:// URL, not {shown}", file=sys.stderr)
        return 1
    try:
        asyncio.run(probe(url))
    except Exception as error:  # any failure to connect is reported the same way
        reason = str(error).splitlines()[0] if str(error) else ""
        print(f"PostgreSQL at {shown} does not answer: {error.__class__.__name__} {reason}", file=sys.stderr)
        return 1
    print(f"PostgreSQL at {shown} answers: database tests run on SQLite and again on PostgreSQL")
    return 0


if __name__ == "__main__":
    sys.exit(main())
