"""Wizard drafts for listeners: written inside the ack where several processes share the
database, behind it on the embedded single-process SQLite default.

Shared database (PostgreSQL: any number of `ib serve` replicas behind a load balancer that does
not pin users). The next step of a wizard may reach another replica a moment after this one's
ack, so nothing of a draft is kept in process memory: every request reads the row, and a change
is written, conditional on the version it was read at, before the ack answers. A change based on
a version another request (on any replica) moved past is refused (:class:`~storage.StaleDraft`),
and the caller answers with the draft as it is now: a double click, a Slack retry or an old view
shows the current step, never an older one, on whichever replica it lands.

Embedded SQLite (one `ib serve`, the only process that changes drafts). A write costs several
milliseconds of CPU and waits for every other SQLite write, so a change is applied to this
process's copy at once (the ack answers from it) and written right after, in order; changes made
while a write is under way are folded into the next write. Every write still names the version it
was based on, so a change made meanwhile by another process (the CLI, say) wins and the copy is
dropped. A write lost with the process (a crash right after an ack) costs the user one step, which
the wizard shows again.
"""

from __future__ import annotations

import logging
from collections import OrderedDict
from dataclasses import dataclass, field, replace
from datetime import datetime
from typing import Any

from handlers.tasks import BackgroundTasks
from handlers.units import UnitsOfWork
from handlers.wizard_state import WizardState
from storage import Drafts, NotFound, StaleDraft
from storage.models import Draft, utcnow

log = logging.getLogger(__name__)

DEFAULT_CAPACITY = 1024


@dataclass(frozen=True, slots=True)
class DraftCopy:
    """A draft as this process knows it; ``version`` is the last one read from or written to the
    database (changes not written yet do not count), ``revision`` counts this process's changes so
    that two requests deciding on the same copy cannot both change it."""

    id: str
    owner_user_id: str
    team_id: str
    step: str
    state: dict[str, Any]
    status: str
    version: int
    updated_at: datetime
    revision: int = 0

    @classmethod
    def of(cls, draft: Draft) -> DraftCopy:
        return cls(
            draft.id,
            draft.owner_user_id,
            draft.team_id,
            draft.step,
            dict(draft.state),
            draft.status,
            draft.version,
            draft.updated_at,
        )

    def owned_by(self, user_id: str | None, team_id: str | None) -> bool:
        return (self.owner_user_id, self.team_id) == (user_id, team_id)


@dataclass
class _Pending:
    base_version: int  # the version in the database the next write expects
    generation: int = 0  # grows with every change folded in, so a write knows whether it was the last
    writer: Any = field(default=None, repr=False)


class DraftStore:
    def __init__(
        self,
        units: UnitsOfWork,
        tasks: BackgroundTasks,
        capacity: int = DEFAULT_CAPACITY,
        *,
        write_behind: bool | None = None,
    ) -> None:
        """``write_behind`` None: decided by the database, behind only where no other process
        answers the same users (the embedded SQLite default); the ack must not run ahead of a
        database that other replicas read."""
        self.units = units
        self.tasks = tasks
        self.capacity = capacity
        self.write_behind = not units.shared if write_behind is None else write_behind
        self._copies: OrderedDict[str, DraftCopy] = OrderedDict()
        self._pending: dict[str, _Pending] = {}

    async def get(self, draft_id: str, *, fresh: bool = False) -> DraftCopy | None:
        """The draft. On a shared database it is always read; on the embedded default ``fresh``
        reads it unless this process has a change not written yet (newer than anything stored)."""
        if not draft_id:
            return None
        copy = self._copies.get(draft_id)
        if copy is not None and (draft_id in self._pending or not fresh):
            self._copies.move_to_end(draft_id)
            return copy
        async with self.units.reading() as session:
            draft = await Drafts(session).get(draft_id)
        if draft is None:
            self._copies.pop(draft_id, None)
            return None
        return self._adopt(DraftCopy.of(draft))

    async def change(
        self, copy: DraftCopy, state: WizardState, *, status: str | None = None
    ) -> DraftCopy | None:
        """The draft changed to ``state`` (and ``status``); None, and nothing changed, when another
        request changed ``copy`` first (a double click, a retry, another replica) or it is gone.

        Written before this returns on a shared database; on the embedded default, applied to this
        process's copy now and written right after."""
        if not self.write_behind:
            try:
                async with self.units.writing() as session:
                    saved = await Drafts(session).save(
                        copy.id,
                        expected_version=copy.version,
                        step=state.step,
                        state=state.to_dict(),
                        status=status or copy.status,
                    )
            except (StaleDraft, NotFound):
                return None
            return DraftCopy.of(saved)
        current = self._copies.get(copy.id, copy)
        if current.revision != copy.revision:
            return None
        changed = replace(
            current,
            step=state.step,
            state=state.to_dict(),
            status=status or current.status,
            updated_at=utcnow(),
            revision=current.revision + 1,
        )
        self._keep(changed)
        pending = self._pending.get(copy.id)
        if pending is not None:
            pending.generation += 1
        else:
            pending = self._pending[copy.id] = _Pending(base_version=current.version)
            pending.writer = self.tasks.spawn(self._write(copy.id), name=f"draft-write-{copy.id}")
            if pending.writer is None:  # shutting down: nothing may run after the ack any more
                del self._pending[copy.id]
        return changed

    async def create(self, *, owner_user_id: str, team_id: str) -> DraftCopy:
        """The user's open draft, created (empty, at the first step) if they have none."""
        async with self.units.writing() as session:
            drafts = Drafts(session)
            # Looked up again where the draft is created, so two quick /ib new make one draft.
            unfinished = await drafts.open_for(owner_user_id, team_id)
            draft = (
                unfinished[0]
                if unfinished
                else await drafts.create(
                    owner_user_id=owner_user_id,
                    team_id=team_id,
                    step="provider",
                    state=WizardState().to_dict(),
                )
            )
        return self._adopt(DraftCopy.of(draft))

    async def open_for(self, owner_user_id: str, team_id: str) -> DraftCopy | None:
        """The user's most recently changed open draft, if any."""
        async with self.units.reading() as session:
            unfinished = await Drafts(session).open_for(owner_user_id, team_id)
        return self._adopt(DraftCopy.of(unfinished[0])) if unfinished else None

    def _adopt(self, stored: DraftCopy) -> DraftCopy:
        """The copy to go on with after reading ``stored``: this process's own when it is as new
        (or has changes not written yet), else ``stored`` as a new revision; on a shared database
        ``stored`` itself, kept nowhere."""
        if not self.write_behind:
            return stored
        kept = self._copies.get(stored.id)
        if kept is not None and (stored.id in self._pending or kept.version == stored.version):
            self._copies.move_to_end(stored.id)
            return kept
        return self._keep(replace(stored, revision=kept.revision + 1 if kept is not None else 0))

    async def start_over(self, copy: DraftCopy) -> DraftCopy | None:
        """Abandon ``copy`` and create a new draft; None when the draft changed meanwhile (a double
        click starts over once)."""
        if copy.id in self._pending:
            return None
        try:
            async with self.units.writing() as session:
                drafts = Drafts(session)
                await drafts.save(
                    copy.id,
                    expected_version=copy.version,
                    step=copy.step,
                    state=copy.state,
                    status="abandoned",
                )
                fresh = await drafts.create(
                    owner_user_id=copy.owner_user_id,
                    team_id=copy.team_id,
                    step="provider",
                    state=WizardState().to_dict(),
                )
        except StaleDraft:
            self._copies.pop(copy.id, None)
            return None
        self._copies.pop(copy.id, None)
        return self._adopt(DraftCopy.of(fresh))

    async def _write(self, draft_id: str) -> None:
        pending = self._pending[draft_id]
        try:
            while True:
                generation = pending.generation
                copy = self._copies[draft_id]
                async with self.units.writing() as session:
                    saved = await Drafts(session).save(
                        draft_id,
                        expected_version=pending.base_version,
                        step=copy.step,
                        state=copy.state,
                        status=copy.status,
                    )
                pending.base_version = saved.version
                if generation == pending.generation:
                    break
        except StaleDraft:
            # Another replica (or window) changed the draft first: its version stands.
            log.info("draft %s changed elsewhere; this process's last change is dropped", draft_id)
            self._copies.pop(draft_id, None)
            return
        finally:
            if self._pending.get(draft_id) is pending:
                del self._pending[draft_id]
        kept = self._copies.get(draft_id)
        if kept is not None:
            self._copies[draft_id] = replace(kept, version=saved.version)

    def _keep(self, copy: DraftCopy) -> DraftCopy:
        self._copies[copy.id] = copy
        self._copies.move_to_end(copy.id)
        while len(self._copies) > self.capacity:
            oldest = next(iter(self._copies))
            if oldest in self._pending:
                break  # a copy with a change to write stays until it is written
            del self._copies[oldest]
        return copy
