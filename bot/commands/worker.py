"""`ib worker`: run publish jobs that the `ib serve` replicas deferred (PostgreSQL only).

Start as many as the load needs, on any machines that reach the database; SIGTERM or SIGINT lets
running jobs finish first. ``--metrics-port`` serves this worker's Prometheus metrics. With the
Slack settings of ``ib serve`` a worker edits the publisher's progress DM and sends the result
there, as ``ib serve`` does with the embedded database; without them results go to its log.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import os
import socket
from typing import Any

from aiohttp import web

from bot.commands import CommandError
from bot.commands.db import database_failure, load_settings, migrate, open_database
from bot.commands.serve import tcp_port
from bot.config import Settings
from bot.log import configure_logging
from bot.metrics import METRICS_PATH, MeteredNotifier, metrics
from bot.slack_app import publish_notifier
from bot.web import DATABASE
from generator.jobs import DEFAULT_CONCURRENCY
from generator.publisher import LogNotifier, Publisher, PublishNotifier
from generator.workers import run_workers, uses_task_queue
from storage import Database

log = logging.getLogger("ib.worker")


def _concurrency(value: str) -> int:
    if not value.isdigit() or not 0 < int(value) <= 64:
        raise argparse.ArgumentTypeError(f"must be a number of jobs from 1 to 64, not {value!r}")
    return int(value)


def register(sub: Any) -> None:
    parser: argparse.ArgumentParser = sub.add_parser(
        "worker",
        help="run publish jobs deferred by `ib serve` (IB_DATABASE_URL must be PostgreSQL)",
        description="Run publish jobs from the PostgreSQL task queue until SIGTERM or SIGINT.",
    )
    parser.add_argument(
        "--concurrency",
        type=_concurrency,
        default=DEFAULT_CONCURRENCY,
        help=f"publish jobs run at once (default {DEFAULT_CONCURRENCY})",
    )
    parser.add_argument("--metrics-port", type=tcp_port, help="serve /metrics on this port (IB_HOST address)")
    parser.set_defaults(handler=run_worker)


def run_worker(args: argparse.Namespace) -> int:
    settings = load_settings()
    configure_logging(settings.log_level, settings.secret_values())
    return asyncio.run(work(settings, concurrency=args.concurrency, metrics_port=args.metrics_port))


async def work(settings: Settings, *, concurrency: int, metrics_port: int | None) -> int:
    database = open_database(settings)
    if not uses_task_queue(database):
        await database.dispose()
        raise CommandError(
            "ib worker needs IB_DATABASE_URL=postgresql+asyncpg://...; with the embedded SQLite "
            "database `ib serve` runs publish jobs itself"
        )
    metrics_site: web.AppRunner | None = None
    try:
        await migrate(database)
        async with publish_notifier(settings, database) as slack:
            notifier: PublishNotifier = slack or LogNotifier(settings.public_base_url)
            if slack is None:
                log.warning(
                    "Slack is not configured (set SLACK_BOT_TOKEN, or SLACK_CLIENT_ID and "
                    "SLACK_CLIENT_SECRET, as for ib serve): publish results go to this log, not to Slack"
                )
            publisher = Publisher(
                database, notifier=MeteredNotifier(notifier), base_url=settings.public_base_url
            )
            if metrics_port is not None:
                metrics_site = await _serve_metrics(database, settings.host, metrics_port)
            name = f"{socket.gethostname()}-{os.getpid()}"
            log.info("worker %s runs publish jobs (%d at a time)", name, concurrency)
            try:
                await run_workers(database, publisher.run_job, concurrency=concurrency, name=name)
            except OSError as error:
                raise database_failure(database, error) from None
            finally:
                # Final notifications still waiting for Slack go back to the database (the next
                # start of `ib serve` sends them) before the Slack client and the database close.
                await publisher.stop()
        log.info("stopped")
    finally:
        if metrics_site is not None:
            await metrics_site.cleanup()
        await database.dispose()
    return 0


async def _serve_metrics(database: Database, host: str, port: int) -> web.AppRunner:
    app = web.Application()
    app[DATABASE] = database
    app.router.add_get(METRICS_PATH, metrics)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    try:
        await web.TCPSite(runner, host, port).start()
    except OSError as error:
        await runner.cleanup()
        raise CommandError(f"cannot serve metrics on {host}:{port}: {error.strerror}") from None
    return runner
