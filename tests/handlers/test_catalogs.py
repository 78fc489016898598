"""The object search and the per-draft catalog cache (memory in front of the database)."""

from __future__ import annotations

import asyncio

from handlers.catalogs import CatalogStore, ObjectIndex
from handlers.units import UnitsOfWork
from providers.base import get_provider
from providers.model import Attribute, Catalog, ObjectDef, ValueType
from storage import Database, Drafts
from tests.fixtures.corpora import corpus_file


def obj(name: str, label: str = "") -> ObjectDef:
    return ObjectDef(
        name=name,
        entity_name=name,
        label=label or name,
        attributes=(Attribute("ID", ValueType.INTEGER, "Edm.Int32", key=True),),
    )


CATALOG = Catalog(
    provider="sap-odata",
    service_name="SALES",
    title="Sales",
    objects=(
        obj("A_SalesOrderItem", "Sales Order Item"),
        obj("OrderHistory"),
        obj("A_SalesOrder", "Sales Order"),
        obj("BackorderSet", "Back orders"),
        obj("Customers"),
    ),
)


def test_prefix_matches_come_first_then_word_starts_then_the_rest() -> None:
    index = ObjectIndex(CATALOG)
    names = [o.name for o in index.search("order")]
    # OrderHistory starts with it; the sales orders have a word starting with it; Backorder holds it.
    assert names == ["OrderHistory", "A_SalesOrderItem", "A_SalesOrder", "BackorderSet"]
    assert [o.name for o in index.search("sales order")] == ["A_SalesOrderItem", "A_SalesOrder"]
    assert [o.name for o in index.search("  CUST ")] == ["Customers"]
    assert index.search("nothing like it") == []


def test_at_most_the_limit_and_everything_in_catalog_order_without_a_query() -> None:
    many = Catalog("sap-odata", "BIG", "Big", tuple(obj(f"Set{n:03}") for n in range(250)))
    index = ObjectIndex(many)
    assert [o.name for o in index.search("")] == [f"Set{n:03}" for n in range(100)]
    assert len(index.search("set")) == 100
    assert len(index.search("set", limit=7)) == 7


async def draft_of(database: Database, owner: str = "U1") -> str:
    async with database.session() as session:
        draft = await Drafts(session).create(owner_user_id=owner, team_id="T1", step="objects", state={})
    return draft.id


async def test_a_catalog_put_by_one_replica_is_read_back_by_another(database: Database) -> None:
    catalog = get_provider("sap-odata").parse_metadata(corpus_file("sap-v2/GWSAMPLE_BASIC.edmx").read_bytes())
    draft_id = await draft_of(database)
    await CatalogStore(UnitsOfWork(database)).put(draft_id, "U1", "T1", catalog)

    other = CatalogStore(UnitsOfWork(database))
    assert other.cached(draft_id) is None
    loaded = await other.get(draft_id)

    assert loaded is not None and loaded.index.catalog == catalog
    assert (loaded.owner_user_id, loaded.team_id) == ("U1", "T1")
    assert other.cached(draft_id) is loaded
    assert await other.get(await draft_of(database)) is None  # a draft without a catalog


async def test_concurrent_misses_share_one_load_and_the_cache_forgets_the_least_recent(
    database: Database,
) -> None:
    catalog = Catalog("sap-odata", "S", "S", (obj("A"),))
    drafts = [await draft_of(database) for _ in range(3)]
    for draft_id in drafts:
        await CatalogStore(UnitsOfWork(database)).put(draft_id, "U1", "T1", catalog)
    store = CatalogStore(UnitsOfWork(database), capacity=2)

    first, second = await asyncio.gather(store.get(drafts[0]), store.get(drafts[0]))
    assert first is second

    await store.get(drafts[1])
    await store.get(drafts[2])
    assert store.cached(drafts[0]) is None
    assert store.cached(drafts[2]) is not None
