"""Failures and protocol corners a real CAP server cannot be made to produce on demand.

Error bodies are built as httpx.Response objects; the few server behaviours CAP lacks (429, 503,
428, refusing MERGE, no CSRF at all, 204 on create, links to other hosts) come from an
httpx.MockTransport. Unreachable and silent servers are real sockets on 127.0.0.1.
"""

from __future__ import annotations

import json
import socket
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from email.utils import format_datetime
from typing import Any

import httpx
import pytest

from providers.runtime import errors
from providers.runtime.connection import BasicAuth, Connection
from providers.runtime.odata import error_from_response

from .clients import FLAVORS, open_client
from .shop import Order, shop_service

SECRET = "s3cr3t-pa55"
ROOT = "http://127.0.0.1:9/odata/svc/"
ORDER_ID = "3bb7019e-2b32-58a8-89ea-3196b3c819c0"
ORDER_V4 = {"ID": ORDER_ID, "product_ID": 1, "quantity": 3, "note": None, "@odata.etag": 'W/"1"'}


def response(status: int, body: str | dict[str, Any] = "", **headers: str) -> httpx.Response:
    content = json.dumps(body) if isinstance(body, dict) else body
    return httpx.Response(status, content=content.encode(), headers=headers)


@pytest.mark.parametrize(
    ("answer", "kind", "message", "code"),
    [
        (
            response(
                400, {"error": {"code": "SY/530", "message": {"lang": "en", "value": "Material locked"}}}
            ),
            errors.InvalidRequest,
            "Material locked",
            "SY/530",
        ),
        (
            response(404, {"error": {"code": "404", "message": "No such order"}}),
            errors.NotFound,
            "No such order",
            "404",
        ),
        (
            response(
                403,
                '<?xml version="1.0" encoding="utf-8"?><error xmlns="http://schemas.microsoft.com/ado/2007/08/'
                'dataservices/metadata"><code>/IWBEP/CM_MGW_RT/020</code><message xml:lang="en">Access denied'
                "</message></error>",
            ),
            errors.Forbidden,
            "Access denied",
            "/IWBEP/CM_MGW_RT/020",
        ),
        (response(401, "Unauthorized"), errors.Unauthorized, "Unauthorized", None),
        (response(409, {"error": {"code": "DUP", "message": "exists"}}), errors.Conflict, "exists", "DUP"),
        (response(412), errors.Conflict, "Precondition Failed", None),
        (response(405), errors.InvalidRequest, "Method Not Allowed", None),
        (response(500, {"error": {"message": "dump"}}), errors.ServiceUnavailable, "dump", None),
        (response(502, "<html><body>Bad gateway</body></html>"), errors.ServiceUnavailable, "", None),
    ],
)
def test_error_bodies_of_every_shape_are_mapped(
    answer: httpx.Response, kind: type[errors.IntegrationError], message: str, code: str | None
) -> None:
    error = error_from_response(answer, "get Orders(1)")
    assert type(error) is kind
    assert error.message.startswith("get Orders(1): ")
    assert message in error.message
    assert error.code == code
    assert error.status == answer.status_code


@pytest.mark.parametrize("header", ["sap-request-id", "x-request-id", "request-id", "x-correlationid"])
def test_request_id_is_taken_from_the_usual_headers(header: str) -> None:
    error = error_from_response(response(404, **{header: "req-42"}), "get X(1)")
    assert error.request_id == "req-42"
    assert "request_id=req-42" in str(error)


def test_long_error_messages_are_cut() -> None:
    error = error_from_response(response(400, "x" * 5000), "search X")
    assert len(error.message) < 600


@pytest.mark.parametrize(
    ("retry_after", "low", "high"),
    [("7", 7.0, 7.0), ("0.5", 0.5, 0.5), (None, None, None), ("soon", None, None)],
)
def test_rate_limits_carry_retry_after(
    retry_after: str | None, low: float | None, high: float | None
) -> None:
    headers = {"retry-after": retry_after} if retry_after else {}
    error = error_from_response(response(429, **headers), "search X")
    assert isinstance(error, errors.RateLimited)
    if low is None:
        assert error.retry_after is None
    else:
        assert error.retry_after is not None and low <= error.retry_after <= (high or low)


def test_retry_after_as_an_http_date() -> None:
    when = format_datetime(datetime.now(UTC) + timedelta(seconds=90), usegmt=True)
    error = error_from_response(response(429, **{"retry-after": when}), "search X")
    assert isinstance(error, errors.RateLimited)
    assert error.retry_after is not None and 60 < error.retry_after <= 90


# --- through the clients, sync and async ---------------------------------------------------------


class Server:
    """A scripted OData service: answers by (method, path) and records what was asked."""

    def __init__(self, routes: dict[tuple[str, str], Callable[[httpx.Request], httpx.Response]]) -> None:
        self.routes = routes
        self.requests: list[httpx.Request] = []

    def __call__(self, request: httpx.Request) -> httpx.Response:
        self.requests.append(request)
        handler = self.routes.get((request.method, request.url.path))
        if handler is None:
            return httpx.Response(404, json={"error": {"code": "404", "message": "not scripted"}})
        return handler(request)

    def methods(self) -> list[tuple[str, str]]:
        return [(r.method, r.url.path) for r in self.requests]


@pytest.fixture(params=FLAVORS)
def flavor(request: pytest.FixtureRequest) -> str:
    return str(request.param)


def connection() -> Connection:
    return Connection(ROOT, BasicAuth("alice", SECRET))


@pytest.fixture
def v4_client(flavor: str) -> Iterator[Callable[[Server], Any]]:
    opened: list[Any] = []

    def make(server: Server) -> Any:
        context = open_client(flavor, connection(), shop_service("4.0"), httpx.MockTransport(server))
        opened.append(context)
        return context.__enter__()

    yield make
    for context in opened:
        context.__exit__(None, None, None)


ORDERS = "/odata/svc/Orders"
ORDER = f"/odata/svc/Orders({ORDER_ID})"


def test_429_raises_rate_limited_with_retry_after(v4_client: Callable[[Server], Any]) -> None:
    server = Server({("GET", ORDERS): lambda r: httpx.Response(429, headers={"Retry-After": "12"})})
    with pytest.raises(errors.RateLimited) as caught:
        v4_client(server).search(shop_service("4.0").objects["Orders"])
    assert caught.value.retry_after == 12.0


def test_503_raises_service_unavailable(v4_client: Callable[[Server], Any]) -> None:
    server = Server({("GET", ORDER): lambda r: httpx.Response(503, text="maintenance")})
    with pytest.raises(errors.ServiceUnavailable, match="maintenance"):
        v4_client(server).get(shop_service("4.0").objects["Orders"], {"ID": ORDER_ID})


def test_a_server_without_csrf_gets_no_token_and_is_asked_once(v4_client: Callable[[Server], Any]) -> None:
    server = Server(
        {
            ("GET", "/odata/svc/"): lambda r: httpx.Response(200, json={"value": []}),
            ("PATCH", ORDER): lambda r: httpx.Response(204),
            ("DELETE", ORDER): lambda r: httpx.Response(204),
        }
    )
    client = v4_client(server)
    orders = shop_service("4.0").objects["Orders"]
    client.update(orders, {"ID": ORDER_ID}, Order(quantity=4))
    client.delete(orders, {"ID": ORDER_ID})
    assert server.methods() == [("GET", "/odata/svc/"), ("PATCH", ORDER), ("DELETE", ORDER)]
    assert server.requests[0].headers["x-csrf-token"] == "Fetch"
    assert "x-csrf-token" not in server.requests[1].headers
    assert json.loads(server.requests[1].content) == {"quantity": 4}
    assert "if-match" not in server.requests[1].headers


def test_428_without_etag_repeats_once_with_if_match_star(v4_client: Callable[[Server], Any]) -> None:
    def update(request: httpx.Request) -> httpx.Response:
        return httpx.Response(204 if request.headers.get("if-match") == "*" else 428)

    server = Server({("GET", "/odata/svc/"): lambda r: httpx.Response(200), ("PATCH", ORDER): update})
    v4_client(server).update(shop_service("4.0").objects["Orders"], {"ID": ORDER_ID}, Order(note="x"))
    assert [r.headers.get("if-match") for r in server.requests[1:]] == [None, "*"]


def test_428_with_an_etag_is_not_overridden(v4_client: Callable[[Server], Any]) -> None:
    server = Server(
        {
            ("GET", "/odata/svc/"): lambda r: httpx.Response(200),
            ("DELETE", ORDER): lambda r: httpx.Response(428),
        }
    )
    with pytest.raises(errors.InvalidRequest):
        v4_client(server).delete(shop_service("4.0").objects["Orders"], {"ID": ORDER_ID}, etag='W/"1"')
    assert len(server.requests) == 2


def test_create_answered_with_204_reads_the_new_entity(v4_client: Callable[[Server], Any]) -> None:
    server = Server(
        {
            ("GET", "/odata/svc/"): lambda r: httpx.Response(200, headers={"x-csrf-token": "tok"}),
            ("POST", ORDERS): lambda r: httpx.Response(
                204, headers={"OData-EntityId": f"http://internal-host:50000{ORDER}"}
            ),
            ("GET", ORDER): lambda r: httpx.Response(200, json=ORDER_V4),
        }
    )
    created = v4_client(server).create(shop_service("4.0").objects["Orders"], Order(product_id=1, quantity=3))
    assert str(created.id) == ORDER_ID
    assert created.etag == 'W/"1"'
    post, read = server.requests[1], server.requests[2]
    assert post.headers["x-csrf-token"] == "tok"
    assert post.headers["prefer"] == "return=representation"
    assert read.url.host == "127.0.0.1"


def test_v2_update_falls_back_to_patch_when_merge_is_refused(flavor: str) -> None:
    order = "/odata/svc/Orders(guid'3bb7019e-2b32-58a8-89ea-3196b3c819c0')"
    server = Server(
        {
            ("GET", "/odata/svc/"): lambda r: httpx.Response(200, headers={"x-csrf-token": "tok"}),
            ("MERGE", order): lambda r: httpx.Response(405),
            ("PATCH", order): lambda r: httpx.Response(204),
        }
    )
    with open_client(flavor, connection(), shop_service("2.0"), httpx.MockTransport(server)) as client:
        orders = shop_service("2.0").objects["Orders"]
        client.update(orders, {"ID": ORDER_ID}, Order(quantity=1))
        client.update(orders, {"ID": ORDER_ID}, Order(quantity=2))
    assert [m for m, _ in server.methods()] == ["GET", "MERGE", "PATCH", "PATCH"]


def test_v2_next_links_are_followed_on_the_connections_host(flavor: str) -> None:
    def page(request: httpx.Request) -> httpx.Response:
        if "$skiptoken" not in request.url.params:
            rows = [{"ID": ORDER_ID, "quantity": 1}]
            # a Gateway behind a proxy reports its internal host name
            body = {
                "d": {
                    "results": rows,
                    "__count": "2",
                    "__next": "http://gw.internal:8000/odata/svc/Orders?$skiptoken=1",
                }
            }
        else:
            body = {"d": {"results": [{"ID": ORDER_ID, "quantity": 2}], "__count": "2"}}
        return httpx.Response(200, json=body)

    server = Server({("GET", ORDERS): page})
    connection_with_client = Connection(ROOT, BasicAuth("alice", SECRET), params={"sap-client": "100"})
    with open_client(
        flavor, connection_with_client, shop_service("2.0"), httpx.MockTransport(server)
    ) as client:
        result = client.search(shop_service("2.0").objects["Orders"], top=10)
    assert [o.quantity for o in result.items] == [1, 2]
    assert result.total_count == 2
    assert result.next_link is None
    assert {r.url.host for r in server.requests} == {"127.0.0.1"}
    assert [r.url.params["sap-client"] for r in server.requests] == ["100", "100"]
    assert server.requests[1].url.params["$skiptoken"] == "1"


def test_non_json_success_is_reported(v4_client: Callable[[Server], Any]) -> None:
    server = Server({("GET", ORDER): lambda r: httpx.Response(200, text="<html>login page</html>")})
    with pytest.raises(errors.IntegrationError, match="not JSON"):
        v4_client(server).get(shop_service("4.0").objects["Orders"], {"ID": ORDER_ID})


def test_unexpected_payload_is_reported(v4_client: Callable[[Server], Any]) -> None:
    server = Server({("GET", ORDERS): lambda r: httpx.Response(200, json={"d": []})})
    with pytest.raises(errors.IntegrationError, match="unexpected answer"):
        v4_client(server).search(shop_service("4.0").objects["Orders"])


# --- unreachable and silent servers (real sockets) ---------------------------------------------


def test_unreachable_server_is_service_unavailable_without_credentials(flavor: str) -> None:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    dead = Connection(f"http://alice:{SECRET}@127.0.0.1:{port}/svc/", BasicAuth("alice", SECRET))
    with (
        open_client(flavor, dead, shop_service("4.0")) as client,
        pytest.raises(errors.ServiceUnavailable) as caught,
    ):
        client.count(shop_service("4.0").objects["Orders"])
    assert "cannot reach 127.0.0.1" in str(caught.value)
    assert SECRET not in str(caught.value)


def test_silent_server_times_out_as_service_unavailable(flavor: str) -> None:
    with socket.socket() as silent:
        silent.bind(("127.0.0.1", 0))
        silent.listen(1)
        port = silent.getsockname()[1]
        slow = Connection(f"http://127.0.0.1:{port}/svc/", timeout=0.2)
        with open_client(flavor, slow, shop_service("2.0")) as client:
            with pytest.raises(errors.ServiceUnavailable, match=r"no answer from 127\.0\.0\.1"):
                client.get(shop_service("2.0").objects["Orders"], {"ID": ORDER_ID})
