"""Drafts, version-checked: written inside the ack where replicas share the database (write
through), answered from this process's copy and written behind the ack on the embedded default."""

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
    """Writing behind the ack, on either database."""
    tasks = BackgroundTasks()
    yield DraftStore(UnitsOfWork(database), tasks, write_behind=True)
    await tasks.close()


@pytest.fixture
async def through(database: Database) -> AsyncIterator[DraftStore]:
    """Writing inside the ack, as every replica does on a shared database."""
    tasks = BackgroundTasks()
    yield DraftStore(UnitsOfWork(database), tasks, write_behind=False)
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

    changed = await store.change(draft, at("source"))

    assert changed is not None and changed.step == "source"
    assert (await store.get(draft.id, fresh=True)) == changed  # not written yet: the copy is newer
    assert await written(store, database, draft.id) == ("source", draft.version + 1, "open")
    kept = await store.get(draft.id)
    assert kept is not None and kept.version == draft.version + 1


async def test_changes_made_while_one_is_written_are_folded_into_the_next_write(
    store: DraftStore, database: Database
) -> None:
    draft = await store.create(owner_user_id="U1", team_id="T1")
    first = await store.change(draft, at("source"))
    assert first is not None
    second = await store.change(first, at("objects"))
    assert second is not None
    third = await store.change(second, at("settings"))
    assert third is not None

    step, version, _ = await written(store, database, draft.id)

    assert step == "settings"
    assert draft.version < version <= draft.version + 3


async def test_two_requests_deciding_on_the_same_copy_change_it_once(
    store: DraftStore, database: Database
) -> None:
    draft = await store.create(owner_user_id="U1", team_id="T1")

    first = await store.change(draft, at("source"))
    second = await store.change(draft, at("source"))  # a double click, decided on the same copy

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

    assert await store.change(draft, at("source")) is not None
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


async def test_the_database_decides_where_drafts_are_written(database: Database) -> None:
    store = DraftStore(UnitsOfWork(database), BackgroundTasks())

    assert store.write_behind == (database.url.get_backend_name() == "sqlite")


async def stored(database: Database, draft_id: str) -> tuple[str, int, str]:
    async with database.session() as session:
        draft = await Drafts(session).require(draft_id)
    return draft.step, draft.version, draft.status


async def test_written_through_a_change_is_stored_before_it_is_answered(
    through: DraftStore, database: Database
) -> None:
    draft = await through.create(owner_user_id="U1", team_id="T1")

    changed = await through.change(draft, at("source"), status="open")

    assert changed is not None and (changed.step, changed.version) == ("source", draft.version + 1)
    assert through.tasks.running == 0
    assert await stored(database, draft.id) == ("source", draft.version + 1, "open")


async def test_written_through_a_double_click_changes_the_draft_once(
    through: DraftStore, database: Database
) -> None:
    draft = await through.create(owner_user_id="U1", team_id="T1")

    first = await through.change(draft, at("source"))
    second = await through.change(draft, at("objects"))  # decided on the same version

    assert first is not None and second is None
    assert await stored(database, draft.id) == ("source", draft.version + 1, "open")


async def test_written_through_every_read_sees_what_another_replica_wrote(
    through: DraftStore, database: Database
) -> None:
    draft = await through.create(owner_user_id="U1", team_id="T1")
    seen = await through.get(draft.id)
    async with database.session() as session:  # another replica moves the draft on
        await Drafts(session).save(
            draft.id, expected_version=draft.version, step="review", state=at("review").to_dict()
        )

    reread = await through.get(draft.id)
    refused = await through.change(draft, at("source"))  # decided on what was read before

    assert seen is not None and seen.step == "provider"
    assert reread is not None and (reread.step, reread.version) == ("review", draft.version + 1)
    assert refused is None
    assert await stored(database, draft.id) == ("review", draft.version + 1, "open")


async def test_written_through_a_change_to_a_deleted_draft_is_refused(
    through: DraftStore, database: Database
) -> None:
    draft = await through.create(owner_user_id="U1", team_id="T1")
    async with database.session() as session:
        await session.delete(await Drafts(session).require(draft.id))

    assert await through.change(draft, at("source")) is None
    assert await through.get(draft.id) is None
