"""The aiohttp application of ``ib serve``.

Routes come from *route installers*: callables that receive the application and add their routes
(and, if they need them, startup/cleanup hooks). A feature adds its installer to
``ROUTE_INSTALLERS`` (or passes ``installers=`` in tests); nothing else here changes. Installers
reach the shared objects through the application keys of ``bot/app_keys.py`` (re-exported here),
e.g. ``request.app[DATABASE]``; installers after :func:`install_publisher` find ``app[PUBLISHER]``
(and may replace its ``notifier``).
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence

from aiohttp import web

from bot.app_keys import DATABASE, PUBLISHER, SECRET_BOX, SETTINGS
from bot.config import Settings
from bot.index import install_index
from bot.manager import install_manager
from bot.metrics import install_metrics
from bot.oauth import install_oauth
from bot.slack_app import install_slack
from generator.publisher import Publisher
from generator.workers import ProcrastinateRunner, uses_task_queue
from storage import Database, SecretBox

__all__ = [
    "DATABASE",
    "PUBLISHER",
    "ROUTE_INSTALLERS",
    "SECRET_BOX",
    "SETTINGS",
    "RouteInstaller",
    "create_app",
    "serve_installers",
]

log = logging.getLogger(__name__)

RouteInstaller = Callable[[web.Application], None]


async def healthz(request: web.Request) -> web.Response:
    """Liveness: the process is up and serving requests."""
    return web.json_response({"status": "ok"})


async def readyz(request: web.Request) -> web.Response:
    """Readiness: the database answers; a load balancer sends no traffic here otherwise."""
    try:
        await request.app[DATABASE].ping()
    except Exception as error:  # any failure means "not ready"; the reason goes to the log only
        log.warning("readiness check failed: database unreachable (%s)", error.__class__.__name__)
        return web.json_response({"status": "unavailable", "database": "unreachable"}, status=503)
    return web.json_response({"status": "ready", "database": "ok"})


def install_health(app: web.Application) -> None:
    app.router.add_get("/healthz", healthz)
    app.router.add_get("/readyz", readyz)


def publisher_installer(*, deferring: bool) -> RouteInstaller:
    """The publisher (``app[PUBLISHER]``) and its job runner, started and stopped with the app; at
    start it resumes the jobs a previous process left unfinished. ``deferring`` (PostgreSQL only)
    leaves running the jobs to `ib worker` processes; else they run in this process."""

    def install(app: web.Application) -> None:
        database = app[DATABASE]
        runner = ProcrastinateRunner(database) if deferring else None
        publisher = Publisher(database, base_url=app[SETTINGS].public_base_url, runner=runner)
        app[PUBLISHER] = publisher

        async def start(app: web.Application) -> None:
            await publisher.start()

        async def stop(app: web.Application) -> None:
            await publisher.stop()

        app.on_startup.append(start)
        app.on_cleanup.append(stop)

    return install


install_publisher = publisher_installer(deferring=False)
install_deferring_publisher = publisher_installer(deferring=True)


# install_slack comes after install_publisher: the Slack bot hands its Publish clicks to app[PUBLISHER];
# install_metrics comes last: it wraps the publisher's final notifier.
ROUTE_INSTALLERS: tuple[RouteInstaller, ...] = (
    install_health,
    install_publisher,
    install_index,
    install_manager,
    install_slack,
    install_oauth,
    install_metrics,
)


def serve_installers(database: Database) -> tuple[RouteInstaller, ...]:
    """What `ib serve` installs: on PostgreSQL the replicas defer publish jobs to `ib worker`s."""
    if not uses_task_queue(database):
        return ROUTE_INSTALLERS
    return tuple(
        install_deferring_publisher if install is install_publisher else install
        for install in ROUTE_INSTALLERS
    )


def create_app(
    settings: Settings,
    database: Database,
    secret_box: SecretBox | None = None,
    *,
    installers: Sequence[RouteInstaller] = ROUTE_INSTALLERS,
) -> web.Application:
    app = web.Application()
    app[SETTINGS] = settings
    app[DATABASE] = database
    if secret_box is not None:
        app[SECRET_BOX] = secret_box
    for install in installers:
        install(app)
    return app
