"""Drafts answered from this process's copy and written behind the acks, version-checked."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

from handlers.drafts import DraftStore
from handlers.tasks import BackgroundTasks
from handlers.units import UnitsOfWork
from handlers.wizard_state import WizardState
from storage import Database, Drafts
from tests.slack import wait_for


@pytest.fixture
async def store(database: Database) -> AsyncIterator[DraftStore]:
    tasks = BackgroundTasks()
    yield DraftStore(UnitsOfWork(database), tasks)
    await tasks.close()


async def written(store: DraftStore, database: Database, draft_id: str) -> tuple[str, int, str]:
    await wait_for(lambda: store.tasks.running == 0, what="the draft writes")
    async with database.session() as session:
        draft = await Drafts(session).require(draft_id)
    return draft.step, draft.version, draft.status


def at(step: str) -> WizardState:
    return WizardState(step=step, provider="sap-odata")


async def test_a_change_is_seen_at_once_and_stored_right_after(store: DraftStore, database: Database) -> None:
    draft = await store.create(owner_user_id="U1", team_id="T1")

    changed = store.change(draft, at("source"))

    assert changed is not None and changed.step == "source"
    assert (await store.get(draft.id, fresh=True)) == changed  # not written yet: the copy is newer
    assert await written(store, database, draft.id) == ("source", draft.version + 1, "open")
    kept = await store.get(draft.id)
    assert kept is not None and kept.version == draft.version + 1


async def test_changes_made_while_one_is_written_are_folded_into_the_next_write(
    store: DraftStore, database: Database
) -> None:
    draft = await store.create(owner_user_id="U1", team_id="T1")
    first = store.change(draft, at("source"))
    assert first is not None
    second = store.change(first, at("objects"))
    assert second is not None
    third = store.change(second, at("settings"))
    assert third is not None

    step, version, _ = await written(store, database, draft.id)

    assert step == "settings"
    assert draft.version < version <= draft.version + 3


async def test_two_requests_deciding_on_the_same_copy_change_it_once(
    store: DraftStore, database: Database
) -> None:
    draft = await store.create(owner_user_id="U1", team_id="T1")

    first = store.change(draft, at("source"))
    second = store.change(draft, at("source"))  # a double click, decided on the same copy

    assert first is not None and second is None
    assert await written(store, database, draft.id) == ("source", draft.version + 1, "open")


async def test_a_copy_made_stale_by_another_replica_loses_and_is_read_again(
    store: DraftStore, database: Database
) -> None:
    draft = await store.create(owner_user_id="U1", team_id="T1")
    async with database.session() as session:  # another replica moves the draft on
        await Drafts(session).save(
            draft.id, expected_version=draft.version, step="review", state=at("review").to_dict()
        )

    assert store.change(draft, at("source")) is not None
    step, version, _ = await written(store, database, draft.id)

    assert (step, version) == ("review", draft.version + 1)  # the other replica's change stands
    reread = await store.get(draft.id)
    assert reread is not None and reread.step == "review"


async def test_start_over_abandons_the_draft_once(store: DraftStore, database: Database) -> None:
    draft = await store.create(owner_user_id="U1", team_id="T1")

    fresh = await store.start_over(draft)
    again = await store.start_over(draft)

    assert fresh is not None and fresh.id != draft.id and again is None
    assert (await written(store, database, draft.id))[2] == "abandoned"
    assert await store.open_for("U1", "T1") == fresh
