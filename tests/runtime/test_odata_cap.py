"""The OData runtime against SAP's real CAP server, as OData V2 (SAP's adapter) and V4, sync and async.

The peer (tests/peers) enforces CSRF tokens and basic auth like an SAP Gateway and logs every
request it sees, so the tests check what actually reached the server.
"""

from __future__ import annotations

import asyncio
import itertools
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager
from dataclasses import dataclass
from datetime import UTC, date, datetime
from decimal import Decimal
from typing import Any
from uuid import UUID

import pytest

from providers.runtime import errors
from providers.runtime.connection import BasicAuth, Connection
from providers.runtime.odata import AsyncClient
from providers.runtime.query import BasicFilter, FilterOperator, OrderBy, SortDirection
from providers.runtime.records import ObjectDescriptor, ServiceDescriptor
from tests.peers.cap import CapServer

from .clients import open_client
from .shop import Category, Order, Product, ProductAttribute, shop_service

pytestmark = pytest.mark.peers

PRODUCT_1_SUPPLIER = UUID("f07f7751-e3b3-5e1d-a5e5-f90085422fbb")
ORDER_WITHOUT_NOTE = UUID("bb46d995-6007-5a9d-810a-27fb8f073cff")
EXOTIC_LIQUIDS = UUID("c48bebee-cd1d-5c76-ba73-632390399927")
_product_ids = itertools.count(100_000)


@dataclass
class Shop:
    """A client on the CAP peer plus the descriptors the generated driver would pass it."""

    client: Any
    service: ServiceDescriptor
    version: str
    cap: CapServer
    connect: Callable[..., AbstractContextManager[Any]]

    @property
    def products(self) -> ObjectDescriptor:
        return self.service.objects["Products"]

    @property
    def orders(self) -> ObjectDescriptor:
        return self.service.objects["Orders"]


@pytest.fixture(
    params=[("2.0", "sync"), ("2.0", "async"), ("4.0", "sync"), ("4.0", "async")],
    ids=["v2-sync", "v2-async", "v4-sync", "v4-async"],
)
def shop(request: pytest.FixtureRequest, cap_server: CapServer) -> Iterator[Shop]:
    version, flavor = request.param
    root = cap_server.v2_url if version == "2.0" else cap_server.v4_url
    service = shop_service(version, expand=True)

    def connect(
        user: str = "alice", password: str | None = None, **options: Any
    ) -> AbstractContextManager[Any]:
        auth = BasicAuth(user, cap_server.users[user] if password is None else password)
        return open_client(flavor, Connection(root, auth, **options), service)

    with connect() as client:
        yield Shop(client, service, version, cap_server, connect)


def test_search_filters_orders_and_pages(shop: Shop) -> None:
    filters = [
        BasicFilter(ProductAttribute.NAME, FilterOperator.CONTAINS_IGNORE_CASE, "TEA"),
        BasicFilter(ProductAttribute.PRICE, FilterOperator.GREATER, Decimal("100")),
    ]
    order_by = [OrderBy(ProductAttribute.PRICE, SortDirection.DESCENDING)]
    first = shop.client.search(shop.products, filters, order_by=order_by, top=5)
    assert len(first.items) == 5
    assert all("tea" in p.name.lower() and p.price > 100 for p in first.items)
    prices = [p.price for p in first.items]
    assert prices == sorted(prices, reverse=True)
    assert first.total_count == shop.client.count(shop.products, filters)
    assert 5 < first.total_count < 1200

    second = shop.client.next_page(shop.products, first)
    assert (second.skip, second.top, len(second.items)) == (5, 5, 5)
    assert not {p.id for p in first.items} & {p.id for p in second.items}
    assert second.items[0].price <= first.items[-1].price

    last = shop.client.search(shop.products, filters, order_by=order_by, skip=first.total_count - 2, top=5)
    assert len(last.items) == 2
    assert last.next_link is None
    with pytest.raises(ValueError, match="last page"):
        shop.client.next_page(shop.products, last)


def test_advanced_filter_and_order_are_combined_with_basic_ones(shop: Shop) -> None:
    page = shop.client.search(
        shop.products,
        [BasicFilter(ProductAttribute.STOCK, FilterOperator.LESS, 100)],
        advanced_filter="discontinued eq true or currency eq 'EUR'",
        order_by=[OrderBy(ProductAttribute.CURRENCY)],
        advanced_order_by="ID desc",
        top=1000,
    )
    assert page.items
    assert all(p.stock < 100 and (p.discontinued or p.currency == "EUR") for p in page.items)
    keys = [(p.currency, -p.id) for p in page.items]
    assert keys == sorted(keys)
    assert page.total_count == len(page.items)


@pytest.mark.parametrize(
    ("attribute", "value"),
    [
        (ProductAttribute.RELEASE_DATE, date(2016, 2, 2)),
        (ProductAttribute.AVAILABLE_FROM, datetime(2016, 2, 2, 7, 13, 17, tzinfo=UTC)),
        (ProductAttribute.SUPPLIER_ID, PRODUCT_1_SUPPLIER),
        (ProductAttribute.PRICE, Decimal("797.20")),
        (ProductAttribute.NAME, "Organic Tea 0001"),
    ],
)
def test_typed_filter_literals_are_understood_by_the_server(shop: Shop, attribute: Any, value: Any) -> None:
    page = shop.client.search(shop.products, [BasicFilter(attribute, FilterOperator.EQUAL, value)], top=1000)
    assert 1 in {p.id for p in page.items}


@pytest.mark.parametrize("text", ["O'Neil", "Tea & Co + #1 ?x=y", "100% 'quoted' \"tea\""])
def test_text_values_cannot_break_out_of_the_literal(shop: Shop, text: str) -> None:
    for operator in (FilterOperator.EQUAL, FilterOperator.STARTS_WITH, FilterOperator.CONTAINS_IGNORE_CASE):
        page = shop.client.search(shop.products, [BasicFilter(ProductAttribute.NAME, operator, text)])
        assert page.items == []
        assert page.total_count == 0


def test_get_decodes_every_attribute_and_reports_nulls(shop: Shop) -> None:
    product = shop.client.get(shop.products, {"ID": 1})
    assert isinstance(product, Product)
    assert (product.id, product.name, product.currency, product.stock) == (1, "Organic Tea 0001", "USD", 419)
    assert product.price == Decimal("797.20")
    assert product.release_date == date(2016, 2, 2)
    assert product.available_from == datetime(2016, 2, 2, 7, 13, 17, tzinfo=UTC)
    assert product.discontinued is False
    assert product.supplier_id == PRODUCT_1_SUPPLIER
    assert product.etag
    assert product.null_attributes == frozenset()

    order = shop.client.get(shop.orders, {"ID": ORDER_WITHOUT_NOTE})
    assert order.note is None
    assert "note" in order.null_attributes
    assert order.quantity == 1


def test_guid_keys_of_read_only_objects(shop: Shop) -> None:
    supplier = shop.client.get(shop.service.objects["Suppliers"], {"ID": EXOTIC_LIQUIDS})
    assert (supplier.name, supplier.country, supplier.rating) == ("Exotic Liquids", "GB", 4.5)


def test_expanded_navigations(shop: Shop) -> None:
    product = shop.client.get(shop.products, {"ID": 1})
    assert product.category == Category(id=2, name="Condiments", description="All condiments of the shop")
    # Suppliers' navigation has no target in the package: it stays the server's JSON
    assert product.supplier["name"] == "New Orleans Cajun Delights"
    page = shop.client.search(shop.products, top=3)
    assert all(isinstance(p.category, Category) for p in page.items)


def test_create_update_delete_with_etags(shop: Shop) -> None:
    created = shop.client.create(shop.orders, Order(product_id=1, quantity=2, note="first"))
    assert isinstance(created.id, UUID)
    assert (created.product_id, created.quantity, created.note) == (1, 2, "first")
    assert created.etag
    key = {"ID": created.id}

    shop.client.update(shop.orders, key, Order(quantity=5), etag=created.etag)
    updated = shop.client.get(shop.orders, key)
    assert (updated.quantity, updated.note) == (5, "first")
    assert updated.etag != created.etag

    with pytest.raises(errors.Conflict) as stale:
        shop.client.update(shop.orders, key, Order(quantity=9), etag=created.etag)
    assert stale.value.status == 412
    assert shop.client.get(shop.orders, key).quantity == 5

    shop.client.update(shop.orders, key, Order(quantity=6))
    assert shop.client.get(shop.orders, key).quantity == 6

    with pytest.raises(errors.Conflict):
        shop.client.delete(shop.orders, key, etag=updated.etag)
    shop.client.delete(shop.orders, key, etag=shop.client.get(shop.orders, key).etag)
    with pytest.raises(errors.NotFound):
        shop.client.get(shop.orders, key)
    with pytest.raises(errors.NotFound):
        shop.client.delete(shop.orders, key)


def test_links_set_and_clear_lookups_on_v4(shop: Shop) -> None:
    if shop.version == "2.0":
        shop.cap.clear_requests()
        with pytest.raises(errors.ConfigurationError, match="OData V2"):
            shop.client.create(shop.products, Product(id=next(_product_ids), name="x"), links={"category": 2})
        assert shop.cap.requests() == []
        return
    product = Product(id=next(_product_ids), name="Linked", price=Decimal("1.50"), currency="EUR")
    created = shop.client.create(shop.products, product, links={"category": 2})
    assert created.category_id == 2
    key = {"ID": created.id}
    shop.client.update(shop.products, key, Product(), attributes_to_send=[], links={"category": 3})
    assert shop.client.get(shop.products, key).category.id == 3
    shop.client.update(shop.products, key, Product(), attributes_to_send=[], links={"category": None})
    moved = shop.client.get(shop.products, key)
    assert moved.category is None and moved.category_id is None
    shop.client.delete(shop.products, key)


def test_formatted_values_and_unknown_lookups_fail_before_any_request(shop: Shop) -> None:
    shop.cap.clear_requests()
    with pytest.raises(errors.ConfigurationError, match="does not format values"):
        shop.client.search(shop.products, top=1, formatted_values=True)
    with pytest.raises(errors.ConfigurationError, match="does not format values"):
        shop.client.get(shop.products, {"ID": 1}, formatted_values=True)
    unknown = r"Products has no lookup 'supplier' to set \(its lookups: category\)"
    with pytest.raises(ValueError, match=unknown):
        shop.client.update(shop.products, {"ID": 1}, Product(), links={"supplier": None})
    assert shop.cap.requests() == []


def test_every_writable_type_round_trips(shop: Shop) -> None:
    product = Product(
        id=next(_product_ids),
        name="Round Trip Tea",
        description="née 'quoted' & more",
        price=Decimal("12.34"),
        currency="EUR",
        stock=0,
        release_date=date(2021, 3, 4),
        available_from=datetime(2021, 3, 4, 5, 6, 7, tzinfo=UTC),
        discontinued=True,
        category_id=3,
        supplier_id=PRODUCT_1_SUPPLIER,
    )
    written = [
        "id", "name", "description", "price", "currency", "stock", "release_date",
        "available_from", "discontinued", "category_id", "supplier_id",
    ]  # fmt: skip
    created = shop.client.create(shop.products, product)
    read = shop.client.get(shop.products, {"ID": product.id})
    for attr in written:
        assert getattr(created, attr) == getattr(product, attr), attr
        assert getattr(read, attr) == getattr(product, attr), attr
    assert read.category == Category(id=3, name="Confections", description="All confections of the shop")
    assert read.modified_by == "alice"
    shop.client.delete(shop.products, {"ID": product.id})


def test_attributes_to_send_clears_only_what_is_named(shop: Shop) -> None:
    created = shop.client.create(shop.orders, Order(product_id=2, quantity=3, note="keep me?"))
    key = {"ID": created.id}
    shop.client.update(shop.orders, key, Order(quantity=99, note=None), attributes_to_send=["note"])
    read = shop.client.get(shop.orders, key)
    assert (read.quantity, read.note) == (3, None)
    assert "note" in read.null_attributes
    shop.client.update(shop.orders, key, Order(quantity=4))
    assert shop.client.get(shop.orders, key).quantity == 4
    shop.client.delete(shop.orders, key)


def test_wrong_password_is_unauthorized_and_not_echoed(shop: Shop) -> None:
    with shop.connect(password="not-the-password") as client:
        with pytest.raises(errors.Unauthorized) as on_read:
            client.search(shop.products)
        with pytest.raises(errors.Unauthorized) as on_write:
            client.create(shop.orders, Order(product_id=1, quantity=1))
    for caught in (on_read, on_write):
        assert caught.value.status == 401
        assert "not-the-password" not in str(caught.value)


def test_expired_csrf_token_is_fetched_again_once(shop: Shop) -> None:
    created = shop.client.create(shop.orders, Order(product_id=1, quantity=1))
    shop.cap.expire_csrf()
    shop.cap.clear_requests()
    shop.client.update(shop.orders, {"ID": created.id}, Order(quantity=2), etag=created.etag)
    seen = [(r["method"], r["status"], r["headers"].get("x-csrf-token", "")) for r in shop.cap.requests()]
    update = "MERGE" if shop.version == "2.0" else "PATCH"
    assert [(method, status) for method, status, _ in seen] == [(update, 403), ("GET", 200), (update, 204)]
    assert seen[1][2] == "Fetch"
    assert seen[0][2] and seen[2][2] and seen[0][2] != seen[2][2]
    assert shop.client.get(shop.orders, {"ID": created.id}).quantity == 2
    shop.client.delete(shop.orders, {"ID": created.id})


def test_writes_without_etag_overwrite_when_the_server_demands_one(shop: Shop) -> None:
    with shop.connect() as client:
        created = client.create(shop.orders, Order(product_id=1, quantity=1))
        shop.cap.clear_requests()
        client.update(shop.orders, {"ID": created.id}, Order(quantity=2))
        client.delete(shop.orders, {"ID": created.id})
    seen = [(r["method"], r["status"], r["headers"].get("if-match")) for r in shop.cap.requests()]
    update = "MERGE" if shop.version == "2.0" else "PATCH"
    # CAP, like Gateway, demands If-Match for objects with an ETag; the client learns that once
    assert seen == [(update, 428, None), (update, 204, "*"), ("DELETE", 204, "*")]


def test_csrf_token_is_fetched_once_per_client(shop: Shop) -> None:
    with shop.connect("quinn") as client:
        shop.cap.clear_requests()
        created = client.create(shop.orders, Order(product_id=1, quantity=1))
        client.delete(shop.orders, {"ID": created.id})
        fetches = [r for r in shop.cap.requests() if r["headers"].get("x-csrf-token") == "Fetch"]
    assert len(fetches) == 1
    assert fetches[0]["user"] == "quinn"


def test_sap_client_and_additional_headers_reach_the_server(shop: Shop) -> None:
    options = {"params": {"sap-client": "100"}, "headers": {"X-Ib-Test": "hello", "sap-language": "DE"}}
    with shop.connect(**options) as client:
        shop.cap.clear_requests()
        first = client.search(shop.products, top=2)
        client.next_page(shop.products, first)
        client.count(shop.orders)
        created = client.create(shop.orders, Order(product_id=1, quantity=1))
        client.delete(shop.orders, {"ID": created.id})
    seen = shop.cap.requests()
    assert len(seen) >= 6
    for request in seen:
        assert request["query"].get("sap-client") == "100", request["url"]
        assert request["url"].count("sap-client") == 1, request["url"]
        assert request["headers"]["x-ib-test"] == "hello"
        assert request["headers"]["sap-language"] == "DE"
        assert request["user"] == "alice"


def test_large_top_follows_the_servers_own_paging(shop: Shop) -> None:
    shop.cap.clear_requests()
    page = shop.client.search(shop.products, order_by=[OrderBy(ProductAttribute.ID)], top=1100)
    assert [p.id for p in page.items] == list(range(1, 1101))
    asked = shop.cap.requests()
    assert len(asked) == 2  # CAP pages at 1,000 rows; the client followed its link once
    if shop.version == "4.0":
        assert asked[0]["headers"]["prefer"] == "odata.maxpagesize=1100"
    assert page.total_count is not None and page.total_count >= 1200
    rest = shop.client.next_page(shop.products, page)
    assert rest.items[0].id == 1101
    assert rest.skip == 1100


def test_filters_on_unknown_attributes_fail_before_any_request(shop: Shop) -> None:
    shop.cap.clear_requests()
    with pytest.raises(ValueError, match="Orders has no attribute 'name'"):
        shop.client.count(shop.orders, [BasicFilter(ProductAttribute.NAME, FilterOperator.EQUAL, "x")])
    with pytest.raises(ValueError, match="note is not part of its key"):
        shop.client.get(shop.orders, {"note": "x"})
    assert shop.cap.requests() == []


async def test_async_client_serves_concurrent_calls(cap_server: CapServer) -> None:
    service = shop_service("4.0")
    connection = Connection(cap_server.v4_url, BasicAuth("quinn", cap_server.users["quinn"]))
    async with AsyncClient(connection, service) as client:
        products = service.objects["Products"]
        first, second, total = await asyncio.gather(
            client.get(products, {"ID": 1}),
            client.get(products, {"ID": 2}),
            client.count(products),
        )
    assert (first.id, second.id) == (1, 2)
    assert total >= 1200
