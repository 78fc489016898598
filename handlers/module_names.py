"""Which module names a workspace's integrations have taken, for answers in the ack path.

The settings step refuses a taken module name under the field, in the ack. Reading the database
there would make every Next wait for it (under load, hundreds of milliseconds), so the names are
kept per workspace and read again in the background when they are older than ``max_age_s``.
A name taken meanwhile (by another replica) is still refused when the job publishes, with the
reason shown on the review.
"""

from __future__ import annotations

import time
from collections.abc import Collection
from dataclasses import dataclass

from sqlalchemy import select

from handlers.tasks import BackgroundTasks
from handlers.units import UnitsOfWork
from storage.models import Integration

DEFAULT_MAX_AGE_S = 10.0


@dataclass(frozen=True, slots=True)
class _Known:
    names: frozenset[str]
    read_at: float


class ModuleNames:
    def __init__(
        self, units: UnitsOfWork, tasks: BackgroundTasks, max_age_s: float = DEFAULT_MAX_AGE_S
    ) -> None:
        self.units = units
        self.tasks = tasks
        self.max_age_s = max_age_s
        self._known: dict[str, _Known] = {}
        self._refreshing: set[str] = set()

    async def taken(self, team_id: str, names: Collection[str]) -> set[str]:
        """Those of ``names`` that integrations of the workspace have."""
        known = self._known.get(team_id)
        if known is None:
            known = await self._read(team_id)
        elif time.monotonic() - known.read_at > self.max_age_s and team_id not in self._refreshing:
            self._refreshing.add(team_id)
            self.tasks.spawn(self._refresh(team_id), name=f"module-names-{team_id}")
        return set(names) & known.names

    async def _refresh(self, team_id: str) -> None:
        try:
            await self._read(team_id)
        finally:
            self._refreshing.discard(team_id)

    async def _read(self, team_id: str) -> _Known:
        async with self.units.reading() as session:
            names = await session.scalars(
                select(Integration.module_name).where(Integration.team_id == team_id)
            )
            known = _Known(frozenset(names), time.monotonic())
        self._known[team_id] = known
        return known
