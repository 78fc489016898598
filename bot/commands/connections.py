"""`ib connection ...`: connections per environment and which integration uses which, for CI/CD.

The command acts as the first ``IB_ADMINS`` user (who holds every role) and follows the rules of
`/ib connections` (handlers/connections_service.py): a connection is saved only after its test
passed, and one still in use is not deleted. Secret fields come only from environment variables
(``--secret-env password=SAP_PASSWORD``), never from the command line, where `ps` and shell
histories would show them.
"""

from __future__ import annotations

import argparse
import os
from collections.abc import Awaitable, Callable, Sequence
from typing import Any, TypeVar

from bot.commands import CommandError
from bot.commands.db import load_secret_box
from bot.commands.env import print_table, run_on_database
from bot.config import Settings
from handlers.connections_service import ConnectionService, ConnectionServiceError, ConnectionSummary
from storage import Database, Environments

T = TypeVar("T")


def register(sub: Any) -> None:
    parser: argparse.ArgumentParser = sub.add_parser(
        "connection",
        help="create, test, associate and delete connections (acts as the first IB_ADMINS user)",
        description="Connections hold the credentials of an external system in one environment; an "
        "integration deployed there uses the one associated with it.",
    )
    actions = parser.add_subparsers(dest="connection_command", required=True, metavar="ACTION")

    listing = actions.add_parser("list", help="list connections, their last test and their users")
    listing.add_argument("--env", help="only this environment (default: all)")
    listing.set_defaults(handler=run_list)

    create = actions.add_parser(
        "create",
        help="test and save a new connection",
        description="Test the connection and save it only if the test passes. Secret fields (e.g. "
        "password, api_key) are read from environment variables with --secret-env.",
    )
    create.add_argument("--env", required=True, help="environment")
    create.add_argument("--provider", required=True, help="e.g. sap-odata")
    create.add_argument("--name", required=True, help="the connection's name in the environment")
    create.add_argument(
        "--field",
        action="append",
        default=[],
        metavar="NAME=VALUE",
        help="a non-secret field, e.g. url=https://host/sap/opu/odata/sap/SRV/ (repeatable)",
    )
    create.add_argument(
        "--secret-env",
        action="append",
        default=[],
        metavar="NAME=VAR",
        help="a secret field read from the environment variable VAR, e.g. password=SAP_PASSWORD",
    )
    create.set_defaults(handler=run_create)

    test = actions.add_parser("test", help="test a saved connection again (exit 1 if it fails)")
    test.add_argument("name")
    test.add_argument("--env", required=True)
    test.set_defaults(handler=run_test)

    associate = actions.add_parser(
        "associate", help="let an integration deployed to ENV use a connection there"
    )
    associate.add_argument("module", help="the integration's module name")
    associate.add_argument("environment", metavar="ENV")
    associate.add_argument("connection", help="the connection's name in ENV")
    associate.set_defaults(handler=run_associate)

    delete = actions.add_parser("delete", help="delete a connection no integration uses")
    delete.add_argument("name")
    delete.add_argument("--env", required=True)
    delete.set_defaults(handler=run_delete)


def _with_service(work: Callable[[ConnectionService, str, Database], Awaitable[T]]) -> T:
    """Run ``work`` with a connection service and the acting user (the first IB_ADMINS user)."""

    async def run(settings: Settings, database: Database) -> T:
        if not settings.admins:
            raise CommandError("set IB_ADMINS: `ib connection` acts as its first user")
        box = load_secret_box(settings, create=True)
        service = ConnectionService(database, box, admins=settings.admins)
        try:
            return await work(service, settings.admins[0], database)
        except ConnectionServiceError as error:
            raise CommandError(str(error)) from None

    return run_on_database(run)


def _pairs(items: Sequence[str], option: str) -> list[tuple[str, str]]:
    pairs = []
    for item in items:
        name, separator, value = item.partition("=")
        if not separator or not name:
            raise CommandError(f"{option} {item!r}: expected NAME=VALUE")
        pairs.append((name.strip(), value))
    return pairs


def run_list(args: argparse.Namespace) -> int:
    async def work(service: ConnectionService, actor: str, database: Database) -> list[tuple[str, ...]]:
        if args.env:
            names = [args.env]
        else:
            async with database.session() as session:
                names = [env.name for env in await Environments(session).all()]
        rows: list[tuple[str, ...]] = []
        for name in names:
            rows += [_row(connection) for connection in await service.list_connections(name)]
        return rows

    print_table(("NAME", "ENV", "PROVIDER", "LAST TEST", "USED BY"), _with_service(work))
    return 0


def _row(connection: ConnectionSummary) -> tuple[str, ...]:
    if connection.last_test_at is None:
        tested = "never"
    else:
        outcome = "ok" if connection.last_test_ok else "failed"
        tested = f"{outcome} {connection.last_test_at:%Y-%m-%d %H:%M}"
    return (
        connection.name,
        connection.environment,
        connection.provider,
        tested,
        ", ".join(connection.used_by) or "-",
    )


def run_create(args: argparse.Namespace) -> int:
    async def work(service: ConnectionService, actor: str, database: Database) -> str:
        secret_names = {field.name for field in service.connection_fields(args.provider) if field.secret}
        values: dict[str, str] = {}
        for name, value in _pairs(args.field, "--field"):
            if name in secret_names:
                raise CommandError(
                    f"{name} is secret: pass it with --secret-env {name}=VAR (an environment variable), "
                    "never on the command line"
                )
            values[name] = value
        for name, variable in _pairs(args.secret_env, "--secret-env"):
            secret = os.environ.get(variable)
            if not secret:
                raise CommandError(
                    f"--secret-env {name}={variable}: the environment variable {variable} is not set"
                )
            values[name] = secret
        saved = await service.create_connection(
            actor, environment=args.env, provider=args.provider, name=args.name, values=values
        )
        return f"created connection {saved.connection.name} in {args.env} ({saved.test.message})"

    print(_with_service(work))
    return 0


def run_test(args: argparse.Namespace) -> int:
    async def work(service: ConnectionService, actor: str, database: Database) -> bool:
        result = await service.test_connection(actor, environment=args.env, name=args.name)
        print(f"{args.name} in {args.env}: {'ok' if result.ok else 'failed'}: {result.message}")
        return result.ok

    return 0 if _with_service(work) else 1


def run_associate(args: argparse.Namespace) -> int:
    async def work(service: ConnectionService, actor: str, database: Database) -> None:
        await service.associate(
            actor, module_name=args.module, environment=args.environment, connection_name=args.connection
        )

    _with_service(work)
    print(f"{args.module} uses connection {args.connection} in {args.environment}")
    return 0


def run_delete(args: argparse.Namespace) -> int:
    async def work(service: ConnectionService, actor: str, database: Database) -> None:
        await service.delete_connection(actor, environment=args.env, name=args.name)

    _with_service(work)
    print(f"deleted connection {args.name} from {args.env}")
    return 0
