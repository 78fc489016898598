"""What listeners share: the database, the publisher, caches, background tasks, and the `/ib` router.

``bot/slack_app.py`` builds one :class:`Services` and hands it to every handlers module's
``register(app, services)``. A module adds `/ib` subcommands with :meth:`Subcommands.add` and any
other listener with bolt's own decorators on ``app`` (``app.action``, ``app.view``, ...).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

from slack_bolt.async_app import AsyncAck, AsyncBoltContext
from slack_sdk.web.async_client import AsyncWebClient

from generator.publisher import Publisher
from handlers.catalogs import CatalogStore
from handlers.connections_service import ConnectionService
from handlers.drafts import DraftStore
from handlers.module_names import ModuleNames
from handlers.tasks import BackgroundTasks
from handlers.units import UnitsOfWork
from storage import AccessGrants, Database

SLACK_FILE_MAX_BYTES = 10 * 1024 * 1024  # Slack's own cap for a file_input


@dataclass(frozen=True, slots=True)
class CommandRequest:
    """One `/ib <subcommand> <args...>`, as a subcommand handler gets it.

    The handler must ``await ack(...)`` within 3 s (with a text to answer the user privately) and
    hand anything slow to ``services.tasks``.
    """

    ack: AsyncAck
    client: AsyncWebClient
    context: AsyncBoltContext
    body: dict[str, Any]
    subcommand: str
    args: tuple[str, ...]
    services: Services

    @property
    def user_id(self) -> str:
        return str(self.body.get("user_id", ""))

    @property
    def team_id(self) -> str:
        return str(self.body.get("team_id", ""))

    @property
    def channel_id(self) -> str:
        return str(self.body.get("channel_id", ""))

    @property
    def trigger_id(self) -> str:
        return str(self.body.get("trigger_id", ""))


SubcommandHandler = Callable[[CommandRequest], Awaitable[None]]


@dataclass(frozen=True, slots=True)
class Subcommand:
    name: str
    handler: SubcommandHandler
    summary: str  # one line for `/ib help`
    usage: str = ""  # arguments, e.g. "<integration> <env>"


class Subcommands:
    """`/ib` subcommands by name; a later registration of a name replaces the earlier one."""

    def __init__(self) -> None:
        self._by_name: dict[str, Subcommand] = {}

    def add(self, name: str, handler: SubcommandHandler, *, summary: str, usage: str = "") -> None:
        if not name.isidentifier() or name != name.lower():
            raise ValueError(f"subcommand names are lowercase words, not {name!r}")
        self._by_name[name] = Subcommand(name, handler, summary, usage)

    def get(self, name: str) -> Subcommand | None:
        return self._by_name.get(name)

    def __iter__(self) -> Iterator[Subcommand]:
        return iter(self._by_name.values())


@dataclass(slots=True)
class Services:
    database: Database
    units: UnitsOfWork  # how listeners read and write the database (handlers/units.py)
    publisher: Publisher
    catalogs: CatalogStore
    drafts: DraftStore
    module_names: ModuleNames
    tasks: BackgroundTasks
    slack_api_url: str  # files shared with the app are downloaded only from Slack's own host
    subcommands: Subcommands = field(default_factory=Subcommands)
    metadata_max_bytes: int = SLACK_FILE_MAX_BYTES
    environment: str = "dev"  # the wizard publishes to the development environment only
    connections: ConnectionService | None = None  # None when the service has no secret keys
    admins: frozenset[str] = frozenset()  # IB_ADMINS: every role in every environment

    async def has_role(self, user_id: str, role: str, environment: str) -> bool:
        """Whether ``user_id`` holds ``role`` in ``environment`` (a read: fine in the ack path)."""
        async with self.units.reading() as session:
            return await AccessGrants(session, self.admins).has_role(user_id, role, environment)
