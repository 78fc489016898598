"""`ib serve`: migrate the database, then serve the web app until SIGTERM or SIGINT.

With ``--socket-mode`` Slack's requests come over a Socket Mode connection (``SLACK_APP_TOKEN``)
instead of ``/slack/events``; the rest of the HTTP surface (package index, health) is served all
the same.
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import logging
import signal
from dataclasses import replace
from typing import Any

import aiohttp
from aiohttp import web
from slack_sdk.errors import SlackApiError

from bot.commands import CommandError
from bot.commands.db import load_secret_box, load_settings, migrate, open_database
from bot.config import Settings
from bot.log import QuietAccessLogger, configure_logging
from bot.slack_app import SLACK_BOT, SlackBot
from bot.web import create_app, serve_installers
from handlers.connections import tell_requesters_of_expiry

log = logging.getLogger("ib.serve")

# Requests still running at shutdown get this long; orchestrators send SIGKILL after ~30 s.
SHUTDOWN_GRACE_S = 10.0


def tcp_port(value: str) -> int:
    if not value.isdigit() or not 0 < int(value) < 65536:
        raise argparse.ArgumentTypeError(f"must be a TCP port (1-65535), not {value!r}")
    return int(value)


def register(sub: Any) -> None:
    parser: argparse.ArgumentParser = sub.add_parser(
        "serve",
        help="run the service (Slack endpoints, package index, runtime API, health checks)",
        description="Migrate the database, then serve HTTP until SIGTERM or SIGINT.",
    )
    parser.add_argument("--host", help="address to listen on (default: IB_HOST or 127.0.0.1)")
    parser.add_argument("--port", type=tcp_port, help="port to listen on (default: IB_PORT or 8080)")
    parser.add_argument(
        "--socket-mode",
        action="store_true",
        help="receive Slack's requests over Socket Mode (SLACK_APP_TOKEN) instead of /slack/events",
    )
    parser.set_defaults(handler=run_serve)


def run_serve(args: argparse.Namespace) -> int:
    settings = load_settings()
    settings = replace(settings, host=args.host or settings.host, port=args.port or settings.port)
    configure_logging(settings.log_level, settings.secret_values())
    return asyncio.run(serve(settings, socket_mode=args.socket_mode))


async def serve(settings: Settings, *, socket_mode: bool = False) -> int:
    host, port = settings.host, settings.port
    secret_box = load_secret_box(settings, create=True)
    database = open_database(settings)
    runner: web.AppRunner | None = None
    housekeeping: asyncio.Task[None] | None = None
    try:
        revision = await migrate(database)
        log.info("database %s is at revision %s", database.display_url, revision)
        app = create_app(settings, database, secret_box, installers=serve_installers(database))
        runner = web.AppRunner(app, access_log_class=QuietAccessLogger)
        await runner.setup()
        # Everything loaded so far (modules, the app) lives as long as the process: keeping it out
        # of the cyclic GC's full collections spares every request a pause of a tenth of a second.
        gc.freeze()
        try:
            await web.TCPSite(runner, host, port, shutdown_timeout=SHUTDOWN_GRACE_S).start()
        except OSError as error:
            raise CommandError(f"cannot listen on {host}:{port}: {error.strerror}") from None
        log.info("listening on http://%s:%d", host, port)
        _log_what_is_missing(settings, socket_mode)
        if socket_mode and not settings.missing_for_slack(socket_mode=True) and SLACK_BOT in app:
            await _connect_socket_mode(app[SLACK_BOT], settings.slack_app_token)
        if SLACK_BOT in app:
            housekeeping = asyncio.create_task(
                _housekeeping(app[SLACK_BOT], settings.housekeeping_seconds), name="housekeeping"
            )
        await _until_stopped()
        if housekeeping is not None:
            housekeeping.cancel()
        log.info("stopping")
    finally:
        if runner is not None:
            await runner.cleanup()
        await database.dispose()
    return 0


async def _housekeeping(bot: SlackBot, every_seconds: int) -> None:
    """Periodic upkeep no Slack request brings: expired admin requests are told to their
    requesters (once across replicas) and old idempotency keys go."""
    service = bot.services.connections
    while True:
        await asyncio.sleep(every_seconds)
        if service is None:
            continue
        try:
            told = await tell_requesters_of_expiry(service, bot.client, bot.bot_token)
            pruned = await service.prune_dedup_keys()
        except Exception:  # a failed round is retried at the next; the service keeps serving
            log.exception("housekeeping failed")
            continue
        if told or pruned:
            log.info("housekeeping: %d expired admin requests told, %d old dedup keys pruned", told, pruned)


async def _connect_socket_mode(bot: SlackBot, app_token: str) -> None:
    failed = "cannot connect to Slack over Socket Mode"
    try:
        await bot.connect_socket_mode(app_token)
    except SlackApiError as error:
        raise CommandError(f"{failed}: {error.response.get('error')}") from None
    except (aiohttp.ClientError, OSError) as error:
        raise CommandError(f"{failed}: {error.__class__.__name__}") from None
    log.info("connected to Slack over Socket Mode")


def _log_what_is_missing(settings: Settings, socket_mode: bool) -> None:
    missing = settings.missing_for_slack(socket_mode=socket_mode)
    if missing:
        mode = " for Socket Mode" if socket_mode else ""
        log.warning("Slack not connected%s: set %s; see README (Configuration)", mode, " and ".join(missing))
    if not settings.base_url:
        log.info(
            "IB_BASE_URL is not set: callback URLs and pip lines use %s, which Slack and other "
            "machines may not reach",
            settings.public_base_url,
        )


async def _until_stopped() -> None:
    stopped = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, stopped.set)
    try:
        await stopped.wait()
    finally:
        for signum in (signal.SIGTERM, signal.SIGINT):
            loop.remove_signal_handler(signum)
