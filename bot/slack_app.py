"""The Slack side of ``ib serve``: one bolt ``AsyncApp``, its Web API client, install and adapters.

- One :class:`AsyncWebClient` (bolt's ``app.client``) with ``base_url=IB_SLACK_API_URL`` and a
  rate-limit retry handler; bolt copies it (base URL, retry handlers, HTTP session) into every
  request's ``client`` and uses it for the OAuth flow, so every Slack call goes through it.
- One workspace with ``SLACK_BOT_TOKEN``; any number with ``SLACK_CLIENT_ID``/``SLACK_CLIENT_SECRET``
  (bolt's OAuth flow at ``/slack/install`` and ``/slack/oauth_redirect``, installations and OAuth
  states in slack_sdk's SQLAlchemy stores on our database; their tables are created at start by the
  stores' own ``create_tables``, which skips tables that exist).
- HTTP mode at ``/slack/events`` (every request's v0 signature and timestamp checked by bolt), or
  Socket Mode with ``SLACK_APP_TOKEN`` (``ib serve --socket-mode``): the same listeners either way.
- Listeners come from the modules in :data:`handlers.HANDLER_MODULES`, each ``register(app, services)``.

Both adapters tell listeners when the ack has left (:data:`handlers.tasks.ACK_SENT`), so work
started in the ack path updates a view only after Slack has applied the ack's own view.
"""

from __future__ import annotations

import asyncio
import importlib
import logging
import time
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager

import aiohttp
from aiohttp import web
from slack_bolt.adapter.aiohttp import to_aiohttp_response
from slack_bolt.adapter.socket_mode.async_handler import AsyncSocketModeHandler
from slack_bolt.adapter.socket_mode.async_internals import send_async_response
from slack_bolt.adapter.socket_mode.internals import build_headers
from slack_bolt.async_app import AsyncApp
from slack_bolt.oauth.async_oauth_settings import AsyncOAuthSettings
from slack_bolt.request.async_request import AsyncBoltRequest
from slack_bolt.response import BoltResponse
from slack_sdk.http_retry.builtin_async_handlers import AsyncRateLimitErrorRetryHandler
from slack_sdk.oauth.installation_store.sqlalchemy import AsyncSQLAlchemyInstallationStore
from slack_sdk.oauth.state_store.sqlalchemy import AsyncSQLAlchemyOAuthStateStore
from slack_sdk.socket_mode.aiohttp import SocketModeClient
from slack_sdk.socket_mode.request import SocketModeRequest
from slack_sdk.web.async_client import AsyncWebClient

from bot.app_keys import DATABASE, PUBLISHER, SECRET_BOX, SETTINGS
from bot.config import Settings
from bot.manifest import BOT_SCOPES
from bot.metrics import count_slack_request, payload_kind
from generator.publisher import Publisher
from handlers import HANDLER_MODULES
from handlers.catalogs import CatalogStore
from handlers.connections_service import ConnectionService
from handlers.drafts import DraftStore
from handlers.module_names import ModuleNames
from handlers.publish_progress import SlackNotifier
from handlers.services import Services
from handlers.tasks import ACK_SENT, BackgroundTasks
from handlers.units import UnitsOfWork
from storage import Database, SecretBox

log = logging.getLogger(__name__)

EVENTS_PATH = "/slack/events"
INSTALL_PATH = "/slack/install"
OAUTH_REDIRECT_PATH = "/slack/oauth_redirect"
OAUTH_STATE_TTL_S = 600
RATE_LIMIT_RETRIES = 2
SLACK_TIMEOUT_S = 30
BOLT_LOGGER = "slack_bolt.app"


def use_slack_api(client: AsyncWebClient, settings: Settings) -> None:
    """Send ``client``'s calls to ``IB_SLACK_API_URL`` and let it wait out HTTP 429 (so never call
    it before an ack)."""
    client.base_url = settings.slack_api_url
    client.timeout = SLACK_TIMEOUT_S
    client.retry_handlers = [AsyncRateLimitErrorRetryHandler(max_retry_count=RATE_LIMIT_RETRIES)]


def slack_configured(settings: Settings) -> bool:
    """True when there is a bot token to answer Slack with: ``SLACK_BOT_TOKEN`` or the OAuth install."""
    return bool(settings.slack_bot_token or settings.slack_install_enabled)


class BotTokens:
    """The bot token for work no request brought (publish DMs): ``SLACK_BOT_TOKEN``, or the
    workspace's installation from the OAuth flow; None where the app is not installed."""

    def __init__(
        self, settings: Settings, installation_store: AsyncSQLAlchemyInstallationStore | None
    ) -> None:
        self._token = settings.slack_bot_token or None
        self._installation_store = installation_store

    async def __call__(self, team_id: str) -> str | None:
        if self._installation_store is None:
            return self._token
        bot = await self._installation_store.async_find_bot(enterprise_id=None, team_id=team_id)
        return bot.bot_token if bot is not None else None


def _installation_store(settings: Settings, database: Database) -> AsyncSQLAlchemyInstallationStore:
    return AsyncSQLAlchemyInstallationStore(client_id=settings.slack_client_id, engine=database.engine)


@asynccontextmanager
async def publish_notifier(settings: Settings, database: Database) -> AsyncIterator[SlackNotifier | None]:
    """The publish DMs of a process without the bolt app (``ib worker``, ``ib jobs cancel``): the
    same Web API settings and bot tokens as ``ib serve``. None when Slack is not configured."""
    if not slack_configured(settings):
        yield None
        return
    store = _installation_store(settings, database) if settings.slack_install_enabled else None
    if store is not None:
        await store.create_tables()  # skips the tables `ib serve` created already
    client = AsyncWebClient()
    use_slack_api(client, settings)
    async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=SLACK_TIMEOUT_S)) as session:
        client.session = session
        yield SlackNotifier(
            client,
            UnitsOfWork(database),
            base_url=settings.public_base_url,
            bot_token=BotTokens(settings, store),
        )


class SlackBot:
    """The bolt app with its services; start it before serving, stop it after."""

    def __init__(
        self,
        settings: Settings,
        database: Database,
        publisher: Publisher,
        *,
        secret_box: SecretBox | None = None,
        handler_modules: Sequence[str] = HANDLER_MODULES,
    ) -> None:
        self.settings = settings
        self.installation_store: AsyncSQLAlchemyInstallationStore | None = None
        self.state_store: AsyncSQLAlchemyOAuthStateStore | None = None
        oauth_settings: AsyncOAuthSettings | None = None
        if settings.slack_install_enabled:
            self.installation_store = _installation_store(settings, database)
            self.state_store = AsyncSQLAlchemyOAuthStateStore(
                expiration_seconds=OAUTH_STATE_TTL_S, engine=database.engine
            )
            oauth_settings = AsyncOAuthSettings(
                client_id=settings.slack_client_id,
                client_secret=settings.slack_client_secret,
                scopes=list(BOT_SCOPES),
                redirect_uri=settings.public_base_url + OAUTH_REDIRECT_PATH,
                install_path=INSTALL_PATH,
                redirect_uri_path=OAUTH_REDIRECT_PATH,
                installation_store=self.installation_store,
                state_store=self.state_store,
            )
        # Passed explicitly from Settings; bolt reads SLACK_* variables itself only for what is missing.
        self.app = AsyncApp(
            token=None if oauth_settings else settings.slack_bot_token or None,
            signing_secret=settings.slack_signing_secret,
            oauth_settings=oauth_settings,
            # Listeners return right after ack() and hand slow work to services.tasks, so the
            # ack is sent as soon as the listener returns instead of at bolt's next 10 ms poll.
            process_before_response=True,
            # Unless handed a logger, bolt gives its loggers (its Web API client's included) the
            # root logger's level, and at DEBUG that client logs whole answers: modal state with
            # the passwords users typed. This one inherits "slack_bolt"'s level (WARNING in ib serve).
            logger=logging.getLogger(BOLT_LOGGER),
        )
        # bolt's own client, used by its OAuth flow and copied into every request's `client`
        # (base URL, retry handlers and HTTP session included): every Slack call goes through it.
        self.client = self.app.client
        use_slack_api(self.client, settings)
        units = UnitsOfWork(database)
        tasks = BackgroundTasks()
        self.services = Services(
            database=database,
            units=units,
            publisher=publisher,
            catalogs=CatalogStore(units),
            drafts=DraftStore(units, tasks),
            module_names=ModuleNames(units, tasks),
            tasks=tasks,
            slack_api_url=settings.slack_api_url,
            metadata_max_bytes=settings.metadata_max_bytes,
            admins=frozenset(settings.admins),
            # Without secret keys no connection credential could be stored or read.
            connections=ConnectionService(
                database, secret_box, admins=settings.admins, base_url=settings.public_base_url
            )
            if secret_box is not None
            else None,
        )
        for module_name in handler_modules:
            importlib.import_module(module_name).register(self.app, self.services)
        # Publish jobs report to their requester's DM from now on (jobs resumed at start included).
        self.bot_token = BotTokens(settings, self.installation_store)
        publisher.notifier = SlackNotifier(
            self.client, units, base_url=settings.public_base_url, bot_token=self.bot_token
        )
        self._session: aiohttp.ClientSession | None = None
        self._socket_mode: _SocketModeHandler | None = None

    @property
    def oauth_enabled(self) -> bool:
        return self.installation_store is not None

    async def start(self) -> None:
        # One connection pool for every Slack call (slack_sdk opens one per call otherwise).
        self._session = aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=SLACK_TIMEOUT_S))
        self.client.session = self._session
        if self.installation_store is not None and self.state_store is not None:
            await self.installation_store.create_tables()
            await self.state_store.create_tables()

    async def stop(self) -> None:
        if self._socket_mode is not None:
            await self._socket_mode.close_async()
            self._socket_mode = None
        await self.services.tasks.close()
        if self._session is not None:
            await self._session.close()
            self._session = None

    async def connect_socket_mode(self, app_token: str) -> None:
        """Receive Slack's requests over Socket Mode (no public URL needed)."""
        self._socket_mode = _SocketModeHandler(self.app, app_token, web_client=self.client)
        await self._socket_mode.connect_async()

    # HTTP adapter

    async def handle_events(self, request: web.Request) -> web.StreamResponse:
        """Commands, interactivity and options loads: signed requests only (bolt answers 401 else)."""
        ack_sent = asyncio.Event()
        bolt_request = AsyncBoltRequest(
            body=await request.text(),
            query=request.query_string,
            headers={name: value for name, value in request.headers.items()},
            context={ACK_SENT: ack_sent},
        )
        response = await to_aiohttp_response(await self.app.async_dispatch(bolt_request))
        try:
            await response.prepare(request)
            await response.write_eof()
        except ConnectionResetError:
            # Slack stopped waiting (3 s) and closed the connection: the ack is lost, not an error here.
            log.warning("Slack hung up before the ack of a request could be sent")
        finally:
            ack_sent.set()
        return response

    async def handle_install(self, request: web.Request) -> web.Response:
        flow = self.app.oauth_flow
        if flow is None:
            raise web.HTTPNotFound()
        return await to_aiohttp_response(await flow.handle_installation(await _plain_request(request)))

    async def handle_oauth_redirect(self, request: web.Request) -> web.Response:
        flow = self.app.oauth_flow
        if flow is None:
            raise web.HTTPNotFound()
        return await to_aiohttp_response(await flow.handle_callback(await _plain_request(request)))


async def _plain_request(request: web.Request) -> AsyncBoltRequest:
    return AsyncBoltRequest(
        body=await request.text(),
        query=request.query_string,
        headers={name: value for name, value in request.headers.items()},
    )


class _SocketModeHandler(AsyncSocketModeHandler):
    """bolt's Socket Mode adapter, plus the ack-sent signal the HTTP adapter gives listeners and
    the request metrics the HTTP middleware counts."""

    async def handle(self, client: SocketModeClient, req: SocketModeRequest) -> None:  # type: ignore[override]
        started = time.perf_counter()
        ack_sent = asyncio.Event()
        bolt_request = AsyncBoltRequest(
            mode="socket_mode", body=req.payload, headers=build_headers(req), context={ACK_SENT: ack_sent}
        )
        response: BoltResponse = await self.app.async_dispatch(bolt_request)
        try:
            await send_async_response(client, req, response, time.time())
        finally:
            ack_sent.set()
            count_slack_request(payload_kind(req.payload), response.status, started)


SLACK_BOT = web.AppKey("slack_bot", SlackBot)


def install_slack(app: web.Application) -> None:
    """Slack's endpoints and the bot (``app[SLACK_BOT]``), when Slack is configured at all.

    Without a bot token or OAuth credentials there is nothing to answer Slack with; ``ib serve``
    logs what is missing. Without a signing secret no HTTP request could be verified, so
    ``/slack/events`` is not served (Socket Mode needs none).
    """
    settings = app[SETTINGS]
    if not slack_configured(settings):
        return
    bot = SlackBot(settings, app[DATABASE], app[PUBLISHER], secret_box=app.get(SECRET_BOX))
    app[SLACK_BOT] = bot
    if settings.slack_signing_secret:
        app.router.add_post(EVENTS_PATH, bot.handle_events)
    if bot.oauth_enabled:
        app.router.add_get(INSTALL_PATH, bot.handle_install)
        app.router.add_get(OAUTH_REDIRECT_PATH, bot.handle_oauth_redirect)

    async def lifetime(app: web.Application) -> AsyncIterator[None]:
        await bot.start()
        yield
        await bot.stop()

    # A cleanup context is cleaned up before the on_cleanup hooks: the bot's tasks finish (or are
    # cancelled) while the publisher they hand jobs to still runs.
    app.cleanup_ctx.append(lifetime)
