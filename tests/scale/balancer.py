"""Slack in front of several `ib serve` replicas: the fake Slack's users, whose requests a load
balancer that does not pin sessions hands to the replicas in turn (or to the one a test names).

Shared by tests/scale and bench/load.py.
"""

from __future__ import annotations

import asyncio
import secrets
from collections.abc import AsyncIterator, Iterator, Sequence
from contextlib import asynccontextmanager, contextmanager
from dataclasses import dataclass, field
from pathlib import Path

from storage import AccessGrants, Database, generate_key
from tests.bot.test_serve import Served
from tests.scale.deployment import start_replica, start_worker
from tests.slack import Driver, FakeSlack


class BalancedDriver(Driver):
    """Slack delivering each request to the next replica in turn; :meth:`to` sends to one."""

    def __init__(self, app_urls: Sequence[str], signing_secret: str, fake: FakeSlack) -> None:
        self.replicas = [url.rstrip("/") + "/slack/events" for url in app_urls]
        self.sent_to: list[int] = []  # which replica each request went to, in order
        self._pinned: int | None = None
        super().__init__(app_urls[0], signing_secret, fake)

    @property
    def url(self) -> str:
        """Read once per request (:meth:`Driver._post`): the replica that request goes to."""
        if self._pinned is not None:
            index = self._pinned
        else:
            index = len(self.sent_to) % len(self.replicas)
        self.sent_to.append(index)
        return self.replicas[index]

    @url.setter
    def url(self, value: str) -> None:
        """Driver's constructor sets its one URL; the replicas replace it."""

    @contextmanager
    def to(self, replica: int) -> Iterator[None]:
        """Every request made inside goes to ``replica``."""
        self._pinned = replica
        try:
            yield
        finally:
            self._pinned = None


@dataclass
class Replicated:
    """`ib serve` replicas and `ib worker` processes on one database, in front of a fake Slack."""

    fake: FakeSlack
    driver: BalancedDriver
    replicas: list[Served]
    workers: list[Served]
    database: Database
    env: dict[str, str] = field(default_factory=dict)

    @property
    def processes(self) -> list[Served]:
        return [*self.replicas, *self.workers]

    def logs(self) -> dict[str, str]:
        return {process.folder.name: process.log() for process in self.processes}

    async def grant_developer(self, *user_ids: str) -> None:
        """Let ``user_ids`` publish to dev from the wizard."""
        async with self.database.session() as session:
            grants = AccessGrants(session)
            for user_id in user_ids:
                await grants.grant(user_id, "developer", "dev", created_by="setup")


@asynccontextmanager
async def replicated(
    folder: Path,
    database_url: str,
    *,
    replicas: int,
    workers: int,
    log_level: str = "INFO",
    limits_of_workspaces: int = 1,
    worker_niceness: int = 0,
    worker_concurrency: int = 2,
) -> AsyncIterator[Replicated]:
    """Start the processes (the first replica migrates the database), stop them all at the end;
    ``limits_of_workspaces``: see :class:`FakeSlack`; ``worker_niceness`` and
    ``worker_concurrency``: see :func:`start_worker`."""
    secret = secrets.token_hex(16)
    async with FakeSlack(limits_of_workspaces=limits_of_workspaces) as fake:
        env = {
            "IB_DATABASE_URL": database_url,
            "IB_SECRET_KEYS": generate_key(),
            "IB_ALLOW_PRIVATE_URLS": "1",
            "IB_LOG_LEVEL": log_level,
            "SLACK_SIGNING_SECRET": secret,
            "SLACK_BOT_TOKEN": fake.bot_token,
            "IB_SLACK_API_URL": fake.api_url,
        }
        started: list[Served] = []
        database = Database(database_url)
        try:
            for number in range(replicas):
                started.append(await asyncio.to_thread(start_replica, folder, f"serve-{number}", env))
            for number in range(workers):
                started.append(
                    await asyncio.to_thread(
                        start_worker,
                        folder,
                        f"worker-{number}",
                        env,
                        niceness=worker_niceness,
                        concurrency=worker_concurrency,
                    )
                )
            urls = [process.base_url for process in started[:replicas]]
            driver = BalancedDriver(urls, secret, fake)
            async with driver:
                yield Replicated(fake, driver, started[:replicas], started[replicas:], database, env)
        finally:
            for process in started:
                if process.process.poll() is None:
                    await asyncio.to_thread(process.stop)
            await database.dispose()
