"""The CAP peer behaves like the SAP system our OData clients will meet: checked with plain httpx."""

from __future__ import annotations

from collections.abc import Iterator
from decimal import Decimal

import httpx
import pytest

from tests.peers.cap import CapServer

pytestmark = pytest.mark.peers

VERSIONS = ["v2", "v4"]


def service_url(cap: CapServer, version: str) -> str:
    return cap.v2_url if version == "v2" else cap.v4_url


@pytest.fixture
def alice(cap_server: CapServer) -> Iterator[httpx.Client]:
    with httpx.Client(auth=("alice", cap_server.users["alice"]), trust_env=False) as client:
        yield client


def fetch_csrf_token(client: httpx.Client, url: str) -> str:
    response = client.get(url, headers={"X-CSRF-Token": "Fetch"})
    response.raise_for_status()
    token = response.headers["x-csrf-token"]
    assert token.lower() not in ("fetch", "required")
    return token


def create_order(client: httpx.Client, url: str, token: str | None, quantity: int = 1) -> httpx.Response:
    headers = {"X-CSRF-Token": token} if token else {}
    return client.post(url + "Orders", json={"product_ID": 1, "quantity": quantity}, headers=headers)


@pytest.mark.parametrize("version", VERSIONS)
def test_metadata_is_served_to_configured_users_only(cap_server: CapServer, version: str) -> None:
    metadata_url = service_url(cap_server, version) + "$metadata"
    edmx_version = "1.0" if version == "v2" else "4.0"

    with httpx.Client(trust_env=False) as client:
        ok = client.get(metadata_url, auth=("alice", cap_server.users["alice"]))
        anonymous = client.get(metadata_url)
        wrong_password = client.get(metadata_url, auth=("alice", "not-her-password"))
        predefined_cap_user = client.get(metadata_url, auth=("bob", "anything"))

    assert ok.status_code == 200
    assert f'<edmx:Edmx Version="{edmx_version}"' in ok.text
    assert '<EntitySet Name="Products"' in ok.text
    assert [anonymous.status_code, wrong_password.status_code, predefined_cap_user.status_code] == [401] * 3


def test_v2_list_has_results_and_decimals_as_strings(cap_server: CapServer, alice: httpx.Client) -> None:
    response = alice.get(cap_server.v2_url + "Products", params={"$top": "3", "$orderby": "ID"})

    assert response.status_code == 200
    results = response.json()["d"]["results"]
    assert [row["ID"] for row in results] == [1, 2, 3]
    assert all(isinstance(row["price"], str) for row in results)
    assert Decimal(results[0]["price"]) == Decimal("797.20")


@pytest.mark.parametrize("version", VERSIONS)
def test_write_needs_the_users_csrf_token(cap_server: CapServer, alice: httpx.Client, version: str) -> None:
    url = service_url(cap_server, version)
    with httpx.Client(auth=("quinn", cap_server.users["quinn"]), trust_env=False) as quinn:
        without_token = create_order(quinn, url, None)
        with_alices_token = create_order(quinn, url, fetch_csrf_token(alice, url))
        with_own_token = create_order(quinn, url, fetch_csrf_token(quinn, url), quantity=7)

    for refused in (without_token, with_alices_token):
        assert refused.status_code == 403
        assert refused.headers["x-csrf-token"] == "Required"
    assert with_own_token.status_code == 201
    created = with_own_token.json()["d"] if version == "v2" else with_own_token.json()
    assert created["quantity"] == 7
    assert created["createdBy"] == "quinn"


def test_expired_csrf_token_is_refused_until_fetched(cap_server: CapServer, alice: httpx.Client) -> None:
    token = fetch_csrf_token(alice, cap_server.v2_url)
    cap_server.expire_csrf()

    refused = create_order(alice, cap_server.v2_url, token)
    accepted = create_order(alice, cap_server.v2_url, fetch_csrf_token(alice, cap_server.v2_url))

    assert refused.status_code == 403
    assert refused.headers["x-csrf-token"] == "Required"
    assert accepted.status_code == 201


def test_batch_needs_a_csrf_token(cap_server: CapServer, alice: httpx.Client) -> None:
    body = (
        "--batch_1\r\nContent-Type: application/http\r\nContent-Transfer-Encoding: binary\r\n\r\n"
        "GET Categories(1) HTTP/1.1\r\nAccept: application/json\r\n\r\n\r\n--batch_1--\r\n"
    )
    headers = {"Content-Type": "multipart/mixed; boundary=batch_1"}

    refused = alice.post(cap_server.v2_url + "$batch", content=body, headers=headers)
    token = fetch_csrf_token(alice, cap_server.v2_url)
    headers_with_token = {**headers, "X-CSRF-Token": token}
    accepted = alice.post(cap_server.v2_url + "$batch", content=body, headers=headers_with_token)

    assert refused.status_code == 403
    assert accepted.status_code == 202
    assert '"name":"Beverages"' in accepted.text


@pytest.mark.parametrize("version", VERSIONS)
def test_read_only_set_refuses_writes(cap_server: CapServer, alice: httpx.Client, version: str) -> None:
    url = service_url(cap_server, version)
    token = fetch_csrf_token(alice, url)

    response = alice.post(url + "Suppliers", json={"name": "Nobody"}, headers={"X-CSRF-Token": token})
    metadata = alice.get(url + "$metadata").text

    assert response.status_code == 405
    assert '<Annotations Target="CatalogService.EntityContainer/Suppliers"' in metadata
    assert '<PropertyValue Property="Insertable" Bool="false"/>' in metadata


def test_v4_etag_guards_updates(cap_server: CapServer, alice: httpx.Client) -> None:
    token = fetch_csrf_token(alice, cap_server.v4_url)
    created = create_order(alice, cap_server.v4_url, token).json()
    order_url = f"{cap_server.v4_url}Orders({created['ID']})"
    etag = created["@odata.etag"]
    headers = {"X-CSRF-Token": token}

    fresh = alice.patch(order_url, json={"note": "first"}, headers={**headers, "If-Match": etag})
    stale = alice.patch(order_url, json={"note": "second"}, headers={**headers, "If-Match": etag})
    without_etag = alice.patch(order_url, json={"note": "third"}, headers=headers)

    assert etag.startswith('W/"')
    assert fresh.status_code == 204
    assert fresh.headers["etag"] != etag
    assert stale.status_code == 412
    assert without_etag.status_code == 428
    assert alice.get(order_url).json()["note"] == "first"


def test_v2_etag_is_in_metadata_and_merge_is_answered_204(cap_server: CapServer, alice: httpx.Client) -> None:
    token = fetch_csrf_token(alice, cap_server.v2_url)
    created = create_order(alice, cap_server.v2_url, token).json()["d"]
    order_url = created["__metadata"]["uri"].replace("http://localhost:", "http://127.0.0.1:")
    etag = created["__metadata"]["etag"]
    headers = {"X-CSRF-Token": token}

    merged = alice.request("MERGE", order_url, json={"note": "merged"}, headers={**headers, "If-Match": etag})
    stale = alice.request("MERGE", order_url, json={"note": "stale"}, headers={**headers, "If-Match": etag})

    assert merged.status_code == 204
    assert merged.content == b""
    assert stale.status_code == 412
    assert alice.get(order_url).json()["d"]["note"] == "merged"


def test_products_page_through_more_than_a_thousand_rows(cap_server: CapServer, alice: httpx.Client) -> None:
    v4 = alice.get(
        cap_server.v4_url + "Products",
        params={"$count": "true", "$top": "5", "$skip": "1000", "$orderby": "ID", "$select": "ID"},
    ).json()
    v2 = alice.get(
        cap_server.v2_url + "Products",
        params={"$inlinecount": "allpages", "$top": "5", "$skip": "1195", "$orderby": "ID", "$select": "ID"},
    ).json()["d"]

    assert v4["@odata.count"] >= 1200
    assert [row["ID"] for row in v4["value"]] == [1001, 1002, 1003, 1004, 1005]
    assert int(v2["__count"]) >= 1200
    assert [row["ID"] for row in v2["results"]] == [1196, 1197, 1198, 1199, 1200]


def test_request_log_shows_what_the_client_sent(cap_server: CapServer, alice: httpx.Client) -> None:
    cap_server.clear_requests()

    alice.get(
        cap_server.v2_url + "Categories",
        params={"sap-client": "100", "$top": "1"},
        headers={"X-Custom-Trace": "abc", "If-Match": "*"},
    )

    [entry] = cap_server.requests()
    assert entry["method"] == "GET"
    assert entry["path"] == "/odata/v2/catalog/Categories"
    assert entry["query"] == {"sap-client": "100", "$top": "1"}
    assert entry["user"] == "alice"
    assert entry["headers"]["x-custom-trace"] == "abc"
    assert entry["headers"]["if-match"] == "*"
    assert "authorization" not in entry["headers"]
    assert entry["status"] == 200
