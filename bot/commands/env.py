"""`ib env ...`: environments and their runtime tokens.

Also home of :func:`run_on_database`, which every command that works on the service's
database uses (``ib access``, ``ib publish``, ``ib deploy``).
"""

from __future__ import annotations

import argparse
import asyncio
import sys
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

from sqlalchemy.exc import DBAPIError

from bot.commands import CommandError
from bot.commands.db import database_failure, load_settings, open_database
from bot.config import Settings
from storage import AuditLog, Database, Environments, RuntimeTokens, StorageError
from storage.migrate import ensure_current

T = TypeVar("T")

# Who the audit log names for changes made on the command line (no Slack user is involved).
CLI_ACTOR = "cli"


def run_on_database(work: Callable[[Settings, Database], Awaitable[T]]) -> T:
    """Run ``work`` on the configured, migrated database; storage and database errors become
    one-line :class:`CommandError`s."""
    settings = load_settings()

    async def run() -> T:
        database = open_database(settings)
        try:
            await ensure_current(database.engine)
            return await work(settings, database)
        except StorageError as error:
            raise CommandError(str(error)) from None
        except (DBAPIError, OSError, TimeoutError) as error:
            raise database_failure(database, error) from None
        finally:
            await database.dispose()

    return asyncio.run(run())


def register(sub: Any) -> None:
    parser: argparse.ArgumentParser = sub.add_parser(
        "env",
        help="manage environments (dev, qa, prod, ...) and their runtime tokens",
        description="Environments are the stages integrations are deployed to; each has its own "
        "package index and runtime tokens.",
    )
    actions = parser.add_subparsers(dest="env_command", required=True, metavar="ACTION")

    add = actions.add_parser("add", help="add an environment")
    add.add_argument("name", help="lowercase letters, digits and '-', e.g. qa")
    add.add_argument(
        "--development", action="store_true", help="the wizard may publish here (like the built-in dev)"
    )
    add.set_defaults(handler=run_add)

    listing = actions.add_parser("list", help="list environments")
    listing.set_defaults(handler=run_list)

    remove = actions.add_parser(
        "remove",
        help="remove an environment",
        description="Remove an environment with its runtime tokens and role grants. One that still "
        "has deployments or connections is refused unless --force, which deletes those too.",
    )
    remove.add_argument("name")
    remove.add_argument("--force", action="store_true", help="also delete its deployments and connections")
    remove.set_defaults(handler=run_remove)

    token = actions.add_parser("token", help="create, revoke or list runtime tokens")
    token_actions = token.add_subparsers(dest="token_command", required=True, metavar="ACTION")
    create = token_actions.add_parser(
        "create",
        help="create a runtime token (printed once)",
        description="Print a new runtime token of the environment on stdout. It is shown only now "
        "(only its hash is stored): for pip (`__token__:<token>`) and for apps (IB_RUNTIME_TOKEN).",
    )
    create.add_argument("name", help="environment")
    create.add_argument("--label", default="", help="what the token is for, e.g. 'ci' or 'orders-app'")
    create.set_defaults(handler=run_token_create)
    revoke = token_actions.add_parser("revoke", help="revoke a runtime token")
    revoke.add_argument("name", help="environment")
    revoke.add_argument("token_id", type=int, help="the token's number from `ib env token list`")
    revoke.set_defaults(handler=run_token_revoke)
    tokens = token_actions.add_parser(
        "list", help="list an environment's runtime tokens (never their values)"
    )
    tokens.add_argument("name", help="environment")
    tokens.set_defaults(handler=run_token_list)


def run_add(args: argparse.Namespace) -> int:
    async def work(settings: Settings, database: Database) -> None:
        async with database.session() as session:
            environment = await Environments(session).create(args.name, development=args.development)
            await AuditLog(session).record(
                actor=CLI_ACTOR,
                action="environment.added",
                subject_type="environment",
                subject_id=environment.name,
                details={"development": environment.development},
            )

    run_on_database(work)
    print(f"added environment {args.name}" + (" (development)" if args.development else ""))
    return 0


def run_list(args: argparse.Namespace) -> int:
    async def work(settings: Settings, database: Database) -> list[tuple[str, ...]]:
        rows: list[tuple[str, ...]] = []
        async with database.session() as session:
            environments = Environments(session)
            for environment in await environments.all():
                usage = await environments.usage(environment)
                rows.append(
                    (
                        environment.name,
                        "yes" if environment.development else "no",
                        str(usage.deployments),
                        str(usage.connections),
                        str(usage.live_tokens),
                    )
                )
        return rows

    print_table(("NAME", "DEVELOPMENT", "DEPLOYMENTS", "CONNECTIONS", "TOKENS"), run_on_database(work))
    return 0


def run_remove(args: argparse.Namespace) -> int:
    async def work(settings: Settings, database: Database) -> None:
        async with database.session() as session:
            environments = Environments(session)
            await environments.remove(await environments.require(args.name), force=args.force)
            await AuditLog(session).record(
                actor=CLI_ACTOR,
                action="environment.removed",
                subject_type="environment",
                subject_id=args.name,
                details={"force": args.force},
            )

    run_on_database(work)
    print(f"removed environment {args.name}")
    return 0


def run_token_create(args: argparse.Namespace) -> int:
    async def work(settings: Settings, database: Database) -> tuple[int, str]:
        async with database.session() as session:
            environment = await Environments(session).require(args.name)
            row, token = await RuntimeTokens(session).create(
                environment, label=args.label, created_by=CLI_ACTOR
            )
            await AuditLog(session).record(
                actor=CLI_ACTOR,
                action="runtime_token.created",
                subject_type="environment",
                subject_id=environment.name,
                details={"token_id": row.id, "label": args.label},
            )
        return row.id, token

    token_id, token = run_on_database(work)
    # The note goes to stderr so that `TOKEN=$(ib env token create qa)` captures only the token.
    print(
        f"ib env: runtime token #{token_id} of {args.name}; it is shown only now, store it safely",
        file=sys.stderr,
    )
    print(token)
    return 0


def run_token_revoke(args: argparse.Namespace) -> int:
    async def work(settings: Settings, database: Database) -> None:
        async with database.session() as session:
            environment = await Environments(session).require(args.name)
            tokens = RuntimeTokens(session)
            owned = {row.id for row in await tokens.in_environment(environment)}
            if args.token_id not in owned or not await tokens.revoke(args.token_id):
                raise CommandError(f"{args.name} has no live runtime token #{args.token_id}")
            await AuditLog(session).record(
                actor=CLI_ACTOR,
                action="runtime_token.revoked",
                subject_type="environment",
                subject_id=environment.name,
                details={"token_id": args.token_id},
            )

    run_on_database(work)
    print(f"revoked runtime token #{args.token_id} of {args.name}")
    return 0


def run_token_list(args: argparse.Namespace) -> int:
    async def work(settings: Settings, database: Database) -> list[tuple[str, ...]]:
        async with database.session() as session:
            environment = await Environments(session).require(args.name)
            return [
                (
                    f"#{row.id}",
                    row.label or "-",
                    row.created_by,
                    row.created_at.strftime("%Y-%m-%d %H:%M"),
                    "revoked " + row.revoked_at.strftime("%Y-%m-%d %H:%M") if row.revoked_at else "live",
                )
                for row in await RuntimeTokens(session).in_environment(environment)
            ]

    print_table(("TOKEN", "LABEL", "CREATED BY", "CREATED (UTC)", "STATE"), run_on_database(work))
    return 0


def print_table(header: tuple[str, ...], rows: list[tuple[str, ...]]) -> None:
    widths = [max(len(row[column]) for row in (header, *rows)) for column in range(len(header))]
    for row in (header, *rows):
        print("  ".join(cell.ljust(width) for cell, width in zip(row, widths, strict=True)).rstrip())
