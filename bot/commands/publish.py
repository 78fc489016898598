"""`ib publish` and `ib deploy`: the wizard's publish job and promotion, for integrations kept in git.

Both follow the same rules as Slack: publishing goes to development environments only, an open
integration publishes once, a module name belongs to one owner per workspace, and deploying needs
the deployer role in the target (IB_ADMINS users hold every role).
"""

from __future__ import annotations

import argparse
import sys
import uuid
from pathlib import Path
from typing import Any

from bot.commands import CommandError
from bot.commands.env import run_on_database
from bot.commands.generate import ALLOW_PRIVATE_ENV, _discover, _metadata_source, _password, _read_spec
from bot.config import Settings
from generator.publisher import (
    Publisher,
    PublishRefused,
    deploy,
    install_command,
)
from generator.spec import IntegrationSpec
from providers.model import Catalog
from storage import Associations, Database, Integrations
from storage.models import IntegrationVersion, PublishJob

DEFAULT_WAIT_S = 600.0


def register(sub: Any) -> None:
    publish = sub.add_parser(
        "publish",
        help="publish an integration.json to a development environment (a new version)",
        description="Generate, build and publish a new version of the integration an integration.json "
        "describes, as the wizard's Publish does. With --wait the job runs here and the version and "
        "sha256 are printed; without it the job is queued for `ib serve`.",
    )
    publish.add_argument("--spec", type=Path, required=True, help="the integration.json")
    publish.add_argument("--env", default="dev", help="development environment to publish to (default: dev)")
    publish.add_argument("--metadata", help="metadata file or URL instead of the one the spec names")
    publish.add_argument("--user", help="user for a metadata URL behind basic auth")
    publish.add_argument(
        "--password-env", metavar="VAR", help="environment variable holding the password for --user"
    )
    publish.add_argument("--odata-version", choices=("2.0", "4.0"), help="when the metadata does not say")
    publish.add_argument(
        "--allow-private-urls",
        action="store_true",
        help=f"let the metadata URL be a private or loopback address (like {ALLOW_PRIVATE_ENV}=1)",
    )
    _add_team(publish)
    publish.add_argument(
        "--as",
        dest="actor",
        metavar="USER",
        help="Slack user id publishing (default: the integration's owner, else the first IB_ADMINS user)",
    )
    publish.add_argument(
        "--dedup-key", help="idempotency key: publishing again with the same key returns the first job"
    )
    publish.add_argument("--wait", action="store_true", help="run the job here and wait for its result")
    publish.add_argument(
        "--timeout",
        type=float,
        default=DEFAULT_WAIT_S,
        help=f"seconds --wait waits (default {DEFAULT_WAIT_S:g})",
    )
    publish.set_defaults(handler=run_publish)

    promote = sub.add_parser(
        "deploy",
        help="deploy a published version to another environment (byte for byte)",
        description="Promote a published version (the newest unless --version) to ENV. The files "
        "and their sha256 stay the same; the integration has no connection in ENV until one is picked.",
    )
    promote.add_argument("module", help="the integration's module name")
    promote.add_argument("environment", metavar="ENV", help="target environment")
    promote.add_argument("--version", help="version to deploy (default: the newest)")
    _add_team(promote)
    promote.add_argument(
        "--as",
        dest="actor",
        metavar="USER",
        help="Slack user id deploying; needs the deployer role in ENV (default: the first IB_ADMINS user)",
    )
    promote.set_defaults(handler=run_deploy)


def _add_team(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--team", help="Slack workspace id (T...); needed only when the database holds several workspaces"
    )


async def _team(database: Database, module_name: str, given: str | None) -> str:
    if given:
        return given
    async with database.session() as session:
        integrations = Integrations(session)
        teams = await integrations.teams(module_name) or await integrations.teams()
    if len(teams) == 1:
        return teams[0]
    raise CommandError("give --team with the Slack workspace id (T...) the integration belongs to")


async def _publishing_user(
    settings: Settings, database: Database, team_id: str, spec: IntegrationSpec
) -> str:
    async with database.session() as session:
        integration = await Integrations(session).by_module(team_id, spec.module_name)
    if integration is not None:
        return integration.owner_user_id
    if settings.admins:
        return settings.admins[0]
    raise CommandError("set IB_ADMINS or give --as USER: a new integration needs a Slack user as its owner")


class _ProgressOnStderr:
    """Progress lines on stderr; the result is printed by the command itself."""

    async def progress(self, job: PublishJob, state: str) -> None:
        print(f"ib publish: {state}", file=sys.stderr)

    async def finished(
        self,
        job: PublishJob,
        version: IntegrationVersion | None,
        error: str | None,
        artifacts: list[tuple[str, bytes]],
    ) -> None:
        return None


def run_publish(args: argparse.Namespace) -> int:
    spec = _read_spec(args.spec)
    source, source_ref = _metadata_source(args, _password(args), spec, args.spec)
    catalog = _discover(spec.provider, source, args.allow_private_urls, [o.name for o in spec.objects])
    spec.source = source_ref

    async def work(settings: Settings, database: Database) -> int:
        return await _publish(settings, database, args, spec, catalog)

    return run_on_database(work)


async def _publish(
    settings: Settings, database: Database, args: argparse.Namespace, spec: IntegrationSpec, catalog: Catalog
) -> int:
    team_id = await _team(database, spec.module_name, args.team)
    user_id = args.actor or await _publishing_user(settings, database, team_id, spec)
    publisher = Publisher(database, notifier=_ProgressOnStderr(), base_url=settings.public_base_url)
    try:
        job = await publisher.submit(
            team_id=team_id,
            user_id=user_id,
            spec=spec,
            catalog=catalog,
            environment=args.env,
            dedup_key=args.dedup_key or f"cli:{uuid.uuid4()}",
        )
    except PublishRefused as refused:
        raise CommandError(str(refused)) from None
    if not args.wait:
        print(f"queued publish job {job.id} for {spec.module_name} in {args.env}; `ib serve` runs it")
        return 0
    # Runs here unless a running `ib serve` took the job first; then this only waits for it.
    await publisher.execute(job.id)
    try:
        job = await publisher.wait(job.id, timeout=args.timeout)
    except TimeoutError:
        raise CommandError(f"publish job {job.id} did not finish within {args.timeout:g} s") from None
    if job.state != "published" or job.result_version_id is None:
        print(f"ib publish: failed: {job.error}", file=sys.stderr)
        return 1
    async with database.session() as session:
        version = await session.get(IntegrationVersion, job.result_version_id)
    assert version is not None
    print(f"published {spec.module_name} {version.version} to {job.environment}")
    print(f"{version.wheel_filename} sha256={version.sha256}")
    if version.sdist_filename:
        print(f"{version.sdist_filename} sha256={version.sdist_sha256}")
    print(install_command(settings.public_base_url, job.environment, spec.module_name))
    return 0


def run_deploy(args: argparse.Namespace) -> int:
    async def work(settings: Settings, database: Database) -> str:
        actor = args.actor or (settings.admins[0] if settings.admins else None)
        if actor is None:
            raise CommandError("set IB_ADMINS (ib deploy acts as its first user) or give --as USER")
        team_id = await _team(database, args.module, args.team)
        try:
            deployment = await deploy(
                database,
                team_id=team_id,
                module_name=args.module,
                environment=args.environment,
                version=args.version,
                actor=actor,
                admins=settings.admins,
            )
        except PublishRefused as refused:
            raise CommandError(str(refused)) from None
        async with database.session() as session:
            association = await Associations(session).get(deployment.integration_id, deployment.environment)
        version = deployment.version
        lines = [
            f"deployed {args.module} {version.version} to {args.environment} (sha256 {version.sha256})",
            install_command(settings.public_base_url, args.environment, args.module),
        ]
        if association is None or association.connection_id is None:
            lines.append(
                f"{args.module} has no connection in {args.environment} yet: pick one with /ib connections"
            )
        return "\n".join(lines)

    print(run_on_database(work))
    return 0
