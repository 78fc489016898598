"""`ib access ...`: who may do what in which environment.

Roles: ``developer`` (publish from the wizard), ``deployer`` (promote versions),
``connection_admin`` (create and associate connections), per environment or in all of them
(``*``). The users in ``IB_ADMINS`` hold every role everywhere.
"""

from __future__ import annotations

import argparse
import re
from typing import Any

from bot.commands import CommandError
from bot.commands.env import CLI_ACTOR, print_table, run_on_database
from bot.config import Settings
from storage import AccessGrants, AlreadyExists, AuditLog, Database
from storage.models import ALL_ENVIRONMENTS, ROLES

# Slack user ids: U... for workspace members, W... for Enterprise Grid users.
_SLACK_USER_ID = re.compile(r"^[UW][A-Z0-9]{2,}$")


def register(sub: Any) -> None:
    parser: argparse.ArgumentParser = sub.add_parser(
        "access",
        help="grant and revoke roles per environment",
        description="Roles per environment: developer, deployer, connection_admin. ENV '*' (quote it "
        "in the shell) means every environment. IB_ADMINS users hold every role everywhere.",
    )
    actions = parser.add_subparsers(dest="access_command", required=True, metavar="ACTION")
    for name, handler, text in (
        ("grant", run_grant, "give a Slack user a role in an environment"),
        ("revoke", run_revoke, "take a role away"),
    ):
        action = actions.add_parser(name, help=text)
        action.add_argument("user", help="Slack user id, e.g. U0123ABCD")
        action.add_argument("role", choices=ROLES)
        action.add_argument("environment", metavar="ENV", help="environment name, or '*' for all")
        action.set_defaults(handler=handler)
    listing = actions.add_parser("list", help="list every grant and the IB_ADMINS users")
    listing.set_defaults(handler=run_list)


def _user(text: str) -> str:
    if not _SLACK_USER_ID.match(text):
        raise CommandError(
            f"{text!r} is not a Slack user id such as U0123ABCD (profile > ... > Copy member ID)"
        )
    return text


def _where(environment: str) -> str:
    return "every environment" if environment == ALL_ENVIRONMENTS else environment


def run_grant(args: argparse.Namespace) -> int:
    user = _user(args.user)

    async def work(settings: Settings, database: Database) -> bool:
        async with database.session() as session:
            try:
                await AccessGrants(session).grant(user, args.role, args.environment, created_by=CLI_ACTOR)
            except AlreadyExists:
                return False
            await AuditLog(session).record(
                actor=CLI_ACTOR,
                action="access.granted",
                subject_type="user",
                subject_id=user,
                details={"role": args.role, "environment": args.environment},
            )
        return True

    granted = run_on_database(work)
    verb = "granted" if granted else "already had"
    print(f"{user} {verb} the {args.role} role in {_where(args.environment)}")
    return 0


def run_revoke(args: argparse.Namespace) -> int:
    user = _user(args.user)

    async def work(settings: Settings, database: Database) -> None:
        async with database.session() as session:
            if not await AccessGrants(session).revoke(user, args.role, args.environment):
                raise CommandError(f"{user} has no {args.role} grant in {_where(args.environment)}")
            await AuditLog(session).record(
                actor=CLI_ACTOR,
                action="access.revoked",
                subject_type="user",
                subject_id=user,
                details={"role": args.role, "environment": args.environment},
            )
        if user in settings.admins:
            print(f"note: {user} is in IB_ADMINS and keeps every role until removed from there")

    run_on_database(work)
    print(f"revoked the {args.role} role of {user} in {_where(args.environment)}")
    return 0


def run_list(args: argparse.Namespace) -> int:
    async def work(settings: Settings, database: Database) -> list[tuple[str, ...]]:
        async with database.session() as session:
            grants = await AccessGrants(session).all()
        rows: list[tuple[str, ...]] = [
            (admin, "every role", ALL_ENVIRONMENTS, "IB_ADMINS") for admin in settings.admins
        ]
        rows += [(g.slack_user_id, g.role, g.environment, g.created_by) for g in grants]
        return rows

    print_table(("USER", "ROLE", "ENV", "GRANTED BY"), run_on_database(work))
    return 0
