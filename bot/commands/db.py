"""`ib migrate`, and opening the configured database for the commands that need it."""

from __future__ import annotations

import argparse
import asyncio
from typing import Any

from sqlalchemy.exc import ArgumentError, DBAPIError, InvalidRequestError

from bot.commands import CommandError
from bot.config import ConfigError, Settings
from storage import Database, SecretBox, StorageError


def register(sub: Any) -> None:
    parser: argparse.ArgumentParser = sub.add_parser(
        "migrate",
        help="create or upgrade the database schema (IB_DATABASE_URL)",
        description="Apply every pending migration; safe to run again and from several replicas at once.",
    )
    parser.set_defaults(handler=run_migrate)


def load_settings() -> Settings:
    try:
        return Settings.from_env()
    except ConfigError as error:
        raise CommandError(str(error)) from None


def load_secret_box(settings: Settings, *, create: bool) -> SecretBox:
    try:
        return SecretBox.load(settings.secret_keys, settings.key_file, create=create)
    except StorageError as error:
        raise CommandError(str(error)) from None


def open_database(settings: Settings) -> Database:
    try:
        return Database(settings.database_url)
    except (ArgumentError, InvalidRequestError):
        # The URL is not echoed: it may carry a password.
        raise CommandError(
            "IB_DATABASE_URL is not an async database URL such as sqlite+aiosqlite:///./ib.db "
            "or postgresql+asyncpg://user@host/dbname"
        ) from None


def database_failure(database: Database, error: Exception) -> CommandError:
    """One line naming the database (password masked) and the driver's own first line."""
    reason = error.orig if isinstance(error, DBAPIError) else error
    first_line = (str(reason).splitlines() or [""])[0] or reason.__class__.__name__
    return CommandError(f"database {database.display_url}: {first_line}")


async def migrate(database: Database) -> str:
    try:
        return await database.migrate()
    except (DBAPIError, OSError, TimeoutError) as error:
        raise database_failure(database, error) from None


def run_migrate(args: argparse.Namespace) -> int:
    settings = load_settings()

    async def run() -> None:
        database = open_database(settings)
        try:
            revision = await migrate(database)
        finally:
            await database.dispose()
        print(f"database {database.display_url} is at revision {revision}")

    asyncio.run(run())
    return 0
