"""`ib keys generate` and `ib keys rotate`: the Fernet keys that encrypt stored secrets."""

from __future__ import annotations

import argparse
import asyncio
from typing import Any

from sqlalchemy.exc import DBAPIError

from bot.commands import CommandError
from bot.commands.db import database_failure, load_secret_box, load_settings, open_database
from storage import SchemaOutOfDate, SecretDecryptionError, generate_key, rotate_secrets
from storage.migrate import ensure_current


def register(sub: Any) -> None:
    parser: argparse.ArgumentParser = sub.add_parser("keys", help="generate and rotate secret keys")
    commands = parser.add_subparsers(dest="keys_command", required=True, metavar="ACTION")
    generate = commands.add_parser(
        "generate",
        help="print a new key",
        description="Print a new Fernet key. To rotate, put it first in IB_SECRET_KEYS "
        "(IB_SECRET_KEYS=new,old), run `ib keys rotate`, then drop the old key.",
    )
    generate.set_defaults(handler=run_generate)
    rotate = commands.add_parser(
        "rotate",
        help="re-encrypt every stored secret with the first key",
        description="Re-encrypt every stored secret with the first key of IB_SECRET_KEYS (or the key "
        "file); afterwards the other keys can be removed. All or nothing.",
    )
    rotate.set_defaults(handler=run_rotate)


def run_generate(args: argparse.Namespace) -> int:
    print(generate_key())
    return 0


def run_rotate(args: argparse.Namespace) -> int:
    settings = load_settings()
    box = load_secret_box(settings, create=False)

    async def run() -> int:
        database = open_database(settings)
        try:
            await ensure_current(database.engine)
            return await rotate_secrets(database, box)
        except (SchemaOutOfDate, SecretDecryptionError) as error:
            raise CommandError(str(error)) from None
        except (DBAPIError, OSError, TimeoutError) as error:
            raise database_failure(database, error) from None
        finally:
            await database.dispose()

    count = asyncio.run(run())
    print(f"re-encrypted {count} secret value(s) with the first key; the other keys can now be removed")
    return 0
