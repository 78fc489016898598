"""From SAP's CAP server's $metadata to a generated package that reads and writes that server.

`ib generate` fetches the metadata (basic auth, loopback allowed), and the generated driver and
service layer then talk to the same real server, as OData V2 and V4, sync and async.
"""

from __future__ import annotations

import asyncio
import json
import threading
from collections.abc import Iterator
from decimal import Decimal
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from types import ModuleType
from typing import Any
from uuid import UUID

import pytest

from bot.cli import main
from tests.fixtures.generated import imported
from tests.peers.cap import CapServer

pytestmark = pytest.mark.peers


@pytest.fixture(scope="module", params=["2.0", "4.0"], ids=["v2", "v4"])
def generated(
    request: pytest.FixtureRequest, cap_server: CapServer, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[tuple[ModuleType, str]]:
    root = cap_server.v2_url if request.param == "2.0" else cap_server.v4_url
    module = f"cap_shop_v{request.param[0]}"
    out = tmp_path_factory.mktemp(module)
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("IB_TEST_CAP_PASSWORD", cap_server.users["alice"])
        patch.delenv("IB_ALLOW_PRIVATE_URLS", raising=False)
        argv = [
            *("generate", "--provider", "sap-odata", "--metadata", root),
            *("--all", "--read-only", "Categories"),
            *("--user", "alice", "--password-env", "IB_TEST_CAP_PASSWORD", "--allow-private-urls"),
            *("--app", "CAP shop", "--module", module, "--out", str(out)),
        ]
        assert main(argv) == 0
    with imported(out, module) as package:
        yield package, root


def _connection(package: ModuleType, root: str, cap_server: CapServer) -> Any:
    return package.Connection(root, auth=package.BasicAuth("alice", cap_server.users["alice"]))


def test_search_count_iterate_and_page(generated: tuple[ModuleType, str], cap_server: CapServer) -> None:
    package, root = generated
    driver, attribute = package.driver, package.ProductsAttribute
    connection = _connection(package, root, cap_server)
    first_ten = [package.BasicFilter(attribute.ID_, package.FilterOperator.LESS_OR_EQUAL, 10)]
    page = driver.search_products(
        connection,
        filters=first_ten,
        order_by=[package.OrderBy(attribute.ID_, package.SortDirection.DESCENDING)],
        top=4,
    )
    assert [p.id_ for p in page] == [10, 9, 8, 7]
    assert all(isinstance(p, package.Products) and isinstance(p.price, Decimal) for p in page)
    assert page.total_count == 10
    following = driver.next_page(connection, page)
    assert [p.id_ for p in following] == [6, 5, 4, 3]
    assert driver.count_products(connection, filters=first_ten) == 10
    first_600 = [package.BasicFilter(attribute.ID_, package.FilterOperator.LESS_OR_EQUAL, 600)]
    ids = [p.id_ for p in driver.iter_products(connection, filters=first_600, page_size=250)]
    assert sorted(ids) == list(range(1, 601))


def test_an_open_client_is_reused_across_actions(
    generated: tuple[ModuleType, str], cap_server: CapServer
) -> None:
    package, root = generated
    client = package.driver.open_client(_connection(package, root, cap_server))
    try:
        for product_id in (1, 2, 3):
            assert package.driver.get_products(client, product_id).id_ == product_id
        assert package.driver.count_categories(client) >= 1
    finally:
        client.close()


def test_create_get_update_delete(generated: tuple[ModuleType, str], cap_server: CapServer) -> None:
    package, root = generated
    driver = package.driver
    connection = _connection(package, root, cap_server)
    created = driver.create_orders(connection, package.Orders(product_id=1, quantity=2, note="generated"))
    assert isinstance(created.id_, UUID) and created.quantity == 2 and created.etag
    driver.update_orders(
        connection,
        created.id_,
        package.Orders(quantity=5),
        attributes_to_send=[package.OrdersAttribute.QUANTITY],
        etag=created.etag,
    )
    again = driver.get_orders(connection, created.id_)
    assert (again.quantity, again.note) == (5, "generated")
    with pytest.raises(package.errors.Conflict):
        driver.update_orders(connection, created.id_, package.Orders(quantity=6), etag=created.etag)
    driver.delete_orders(connection, created.id_, etag=again.etag)
    with pytest.raises(package.errors.NotFound):
        driver.get_orders(connection, created.id_)


def test_read_only_objects_have_no_writes(generated: tuple[ModuleType, str]) -> None:
    package, _ = generated
    for name in ("create", "update", "delete"):
        assert not hasattr(package.driver, f"{name}_categories")
        assert not hasattr(package.driver, f"{name}_suppliers")  # read-only in the metadata itself
    assert hasattr(package.driver, "create_products")


def test_async_twins(generated: tuple[ModuleType, str], cap_server: CapServer) -> None:
    package, root = generated
    driver = package.driver
    connection = _connection(package, root, cap_server)

    product_id, operator = package.ProductsAttribute.ID_, package.FilterOperator

    async def scenario() -> tuple[list[int], int, list[int]]:
        page = await driver.search_products_async(connection, top=3, order_by=[package.OrderBy(product_id)])
        below_six = [package.BasicFilter(product_id, operator.LESS, 6)]
        count = await driver.count_products_async(connection, filters=below_six)
        up_to_seven = [package.BasicFilter(product_id, operator.LESS_OR_EQUAL, 7)]
        client = driver.open_async_client(connection)
        try:
            records = driver.iter_products_async(client, filters=up_to_seven, page_size=3)
            every = [p.id_ async for p in records]
        finally:
            await client.aclose()
        return [p.id_ for p in page], count, sorted(every)

    assert asyncio.run(scenario()) == ([1, 2, 3], 5, [1, 2, 3, 4, 5, 6, 7])


class _Manager(BaseHTTPRequestHandler):
    """The Integration Manager's connection endpoint, answering what a real one answers."""

    answer: dict[str, Any] = {}
    token = "runtime-token"

    def do_GET(self) -> None:
        if self.headers.get("Authorization") != f"Bearer {self.token}":
            self.send_response(401)
            self.end_headers()
            return
        body = json.dumps(self.answer).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: Any) -> None:
        """Quiet: the test reads what the server answered, not its log."""


def test_service_takes_the_connection_from_the_manager(
    generated: tuple[ModuleType, str], cap_server: CapServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    package, root = generated
    answer = {"url": root, "auth": {"type": "basic", "user": "alice", "password": cap_server.users["alice"]}}
    handler = type("Manager", (_Manager,), {"answer": answer})
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        monkeypatch.setenv("IB_MANAGER_URL", f"http://127.0.0.1:{server.server_address[1]}")
        monkeypatch.setenv("IB_RUNTIME_TOKEN", _Manager.token)
        product = package.service.get_products(4)
        assert product.id_ == 4
        assert asyncio.run(package.service.count_categories_async()) >= 1
    finally:
        server.shutdown()
        server.server_close()
        thread.join()


def test_the_package_records_where_it_came_from(generated: tuple[ModuleType, str]) -> None:
    package, root = generated
    spec = json.loads((Path(package.__path__[0]) / "integration.json").read_text())
    assert spec["source"]["kind"] == "url" and spec["source"]["location"] == root
    assert "alice" not in json.dumps(spec)


class _RotatingManager(_Manager):
    """Hands out credentials the system no longer accepts first (like an access token that
    expired early), the current ones on every later request; counts the requests."""

    answers: list[dict[str, Any]] = []
    served: list[int] = []

    def do_GET(self) -> None:
        self.answer = self.answers[min(len(self.served), len(self.answers) - 1)]
        self.served.append(1)
        super().do_GET()


def test_service_asks_the_manager_again_once_after_unauthorized(
    generated: tuple[ModuleType, str], cap_server: CapServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    package, root = generated
    stale = {"url": root, "auth": {"type": "basic", "user": "alice", "password": "changed meanwhile"}}
    good = {"url": root, "auth": {"type": "basic", "user": "alice", "password": cap_server.users["alice"]}}
    handler = type("Manager", (_RotatingManager,), {"answers": [stale, good], "served": []})
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        monkeypatch.setenv("IB_MANAGER_URL", f"http://127.0.0.1:{server.server_address[1]}")
        monkeypatch.setenv("IB_RUNTIME_TOKEN", _Manager.token)
        package.service._RESOLVER.invalidate()
        assert package.service.get_products(4).id_ == 4
        assert len(handler.served) == 2, "one more manager request after Unauthorized, then the retry"
        handler.answers = [stale]  # the manager's answer is stale for good now
        package.service._RESOLVER.invalidate()
        with pytest.raises(package.errors.Unauthorized):
            asyncio.run(package.service.count_categories_async())
        assert len(handler.served) == 4, "exactly one retry, then the error reaches the app"
    finally:
        package.service._RESOLVER.invalidate()
        server.shutdown()
        server.server_close()
        thread.join()
