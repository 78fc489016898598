"""Fetching $metadata from a real HTTP server on 127.0.0.1: the happy path and every refusal."""

from __future__ import annotations

import base64
import hashlib

import pytest
from aiohttp import web

from providers.base import MetadataError, MetadataSource, SourceError
from providers.metadata_source import FetchLimits, check_public_url, fetch_metadata, metadata_url
from providers.sap_odata import SapODataProvider
from tests.fixtures.corpora import corpus_file
from tests.providers.conftest import LocalServer

USER, PASSWORD = "alice", "s3cret-Pa55"
SERVICE = "/sap/opu/odata/sap/GWSAMPLE_BASIC"


def _basic(user: str, password: str) -> str:
    return "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()


def _serve_metadata(server: LocalServer, path: str, body: bytes, *, auth: bool = False) -> None:
    async def handler(request: web.Request) -> web.StreamResponse:
        if auth and request.headers.get("Authorization") != _basic(USER, PASSWORD):
            return web.Response(status=401, headers={"WWW-Authenticate": 'Basic realm="SAP"'})
        return web.Response(body=body, content_type="application/xml")

    server.routes[path] = handler


def _one_line(error: Exception) -> str:
    message = str(error)
    assert message and "\n" not in message
    return message


@pytest.fixture
def gwsample() -> bytes:
    return corpus_file("sap-v2/GWSAMPLE_BASIC.edmx").read_bytes()


async def test_discover_from_a_service_root_url_with_basic_auth(
    local_server: LocalServer, gwsample: bytes
) -> None:
    _serve_metadata(local_server, f"{SERVICE}/$metadata", gwsample, auth=True)
    provider = SapODataProvider(allow_private=True)

    catalog = await provider.discover(
        MetadataSource(kind="url", location=local_server.url(f"{SERVICE}/"), user=USER, password=PASSWORD)
    )

    assert catalog.service_name == "GWSAMPLE_BASIC"
    assert catalog.runtime == {"odata_version": "2.0"}
    assert catalog.source_sha256 == hashlib.sha256(gwsample).hexdigest()
    assert "ProductSet" in catalog.object_names()


async def test_wrong_password_is_one_line_naming_the_401_without_the_password(
    local_server: LocalServer, gwsample: bytes
) -> None:
    _serve_metadata(local_server, f"{SERVICE}/$metadata", gwsample, auth=True)
    provider = SapODataProvider(allow_private=True)

    with pytest.raises(SourceError) as caught:
        await provider.discover(
            MetadataSource(kind="url", location=local_server.url(SERVICE), user=USER, password="wrong-Pa55")
        )

    assert _one_line(caught.value) == "metadata URL answered 401 Unauthorized: check user and password"


async def test_password_in_the_url_never_reaches_the_message(local_server: LocalServer) -> None:
    url = local_server.url(SERVICE).replace("http://", f"http://{USER}:{PASSWORD}@")
    with pytest.raises(SourceError) as caught:
        await fetch_metadata(url + "/missing/$metadata", allow_private=True)
    message = _one_line(caught.value)
    assert message == "metadata URL answered 404 Not Found: check the service URL"
    assert PASSWORD not in message


async def test_a_server_that_does_not_answer_times_out(local_server: LocalServer) -> None:
    async def never_answers(request: web.Request) -> web.StreamResponse:
        await local_server.release.wait()
        return web.Response(status=204)

    local_server.routes["/slow/$metadata"] = never_answers

    with pytest.raises(SourceError) as caught:
        await fetch_metadata(
            local_server.url("/slow/$metadata"),
            allow_private=True,
            limits=FetchLimits(connect_timeout=0.2, total_timeout=0.3),
        )

    assert _one_line(caught.value) == f"timed out after 0.3 s fetching {local_server.url('/slow/$metadata')}"


async def test_redirect_within_the_same_origin_is_followed(
    local_server: LocalServer, gwsample: bytes
) -> None:
    async def moved(request: web.Request) -> web.StreamResponse:
        raise web.HTTPFound("/new/$metadata")

    local_server.routes["/old/$metadata"] = moved
    _serve_metadata(local_server, "/new/$metadata", gwsample)

    assert await fetch_metadata(local_server.url("/old/$metadata"), allow_private=True) == gwsample


async def test_redirect_to_another_host_is_refused(local_server: LocalServer) -> None:
    async def elsewhere(request: web.Request) -> web.StreamResponse:
        raise web.HTTPFound(f"http://localhost:{local_server.port}/steal/$metadata")

    local_server.routes["/x/$metadata"] = elsewhere

    with pytest.raises(SourceError) as caught:
        await fetch_metadata(local_server.url("/x/$metadata"), allow_private=True)

    assert (
        _one_line(caught.value) == f"redirect to another host (http://localhost:{local_server.port}) refused"
    )
    assert [r.path for r in local_server.seen] == ["/x/$metadata"]


async def test_redirect_loops_stop_after_five(local_server: LocalServer) -> None:
    async def loop(request: web.Request) -> web.StreamResponse:
        raise web.HTTPFound("/loop/$metadata")

    local_server.routes["/loop/$metadata"] = loop

    with pytest.raises(SourceError) as caught:
        await fetch_metadata(local_server.url("/loop/$metadata"), allow_private=True)

    assert _one_line(caught.value).startswith("more than 5 redirects fetching ")
    assert len(local_server.seen) == 6


async def test_an_endless_body_is_cut_at_the_size_cap_while_streaming(local_server: LocalServer) -> None:
    async def endless(request: web.Request) -> web.StreamResponse:
        response = web.StreamResponse(headers={"Content-Type": "application/xml"})
        await response.prepare(request)
        chunk = b"<!-- padding -->" * 4096
        while not local_server.release.is_set():
            await response.write(chunk)
        return response

    local_server.routes["/big/$metadata"] = endless

    with pytest.raises(MetadataError) as caught:
        await fetch_metadata(
            local_server.url("/big/$metadata"), allow_private=True, limits=FetchLimits(max_bytes=256 * 1024)
        )

    assert _one_line(caught.value) == (
        "the metadata document is larger than the limit of 256 kB (IB_METADATA_MAX_BYTES)"
    )


async def test_a_declared_length_over_the_cap_is_refused_before_reading(local_server: LocalServer) -> None:
    _serve_metadata(local_server, "/declared/$metadata", b"x" * 5000)

    with pytest.raises(MetadataError, match="larger than the limit of 4000 bytes"):
        await fetch_metadata(
            local_server.url("/declared/$metadata"), allow_private=True, limits=FetchLimits(max_bytes=4000)
        )


async def test_an_html_login_page_is_named_as_such(local_server: LocalServer) -> None:
    async def login_page(request: web.Request) -> web.StreamResponse:
        return web.Response(text="<html><body>Logon</body></html>", content_type="text/html")

    local_server.routes["/sap/$metadata"] = login_page

    with pytest.raises(SourceError) as caught:
        await fetch_metadata(local_server.url("/sap/$metadata"), allow_private=True)

    assert "answered with an HTML page" in _one_line(caught.value)


async def test_private_addresses_are_refused_unless_allowed(
    local_server: LocalServer, gwsample: bytes, monkeypatch: pytest.MonkeyPatch
) -> None:
    _serve_metadata(local_server, "/p/$metadata", gwsample)
    monkeypatch.delenv("IB_ALLOW_PRIVATE_URLS", raising=False)

    for url in (local_server.url("/p/$metadata"), f"http://localhost:{local_server.port}/p/$metadata"):
        with pytest.raises(SourceError) as caught:
            await fetch_metadata(url)
        assert "non-public address" in _one_line(caught.value)
    assert local_server.seen == []

    monkeypatch.setenv("IB_ALLOW_PRIVATE_URLS", "1")
    assert await fetch_metadata(local_server.url("/p/$metadata")) == gwsample


@pytest.mark.parametrize(
    "address",
    ["10.1.2.3", "169.254.169.254", "192.168.0.10", "[::1]", "[fe80::1]", "100.64.0.1", "0.0.0.0"],  # noqa: S104
)
async def test_non_public_literal_addresses_are_refused(address: str) -> None:
    with pytest.raises(SourceError, match="non-public address"):
        await check_public_url(f"http://{address}/sap/$metadata", allow_private=False)


@pytest.mark.parametrize("url", ["file:///etc/passwd", "ftp://example.com/$metadata", "gopher://x/"])
async def test_only_http_and_https_urls(url: str) -> None:
    with pytest.raises(SourceError) as caught:
        await fetch_metadata(url, allow_private=True)
    assert _one_line(caught.value).startswith("only http and https URLs are supported")


@pytest.mark.parametrize(
    ("given", "expected"),
    [
        ("https://h/sap/opu/odata/sap/SRV", "https://h/sap/opu/odata/sap/SRV/$metadata"),
        ("https://h/sap/opu/odata/sap/SRV/", "https://h/sap/opu/odata/sap/SRV/$metadata"),
        ("https://h/sap/opu/odata/sap/SRV/$metadata", "https://h/sap/opu/odata/sap/SRV/$metadata"),
        ("https://h/srv/?sap-client=100", "https://h/srv/$metadata?sap-client=100"),
    ],
)
def test_service_root_urls_get_metadata_appended(given: str, expected: str) -> None:
    assert metadata_url(given) == expected


async def test_connection_test_uses_credentials_client_and_headers(
    local_server: LocalServer, gwsample: bytes
) -> None:
    _serve_metadata(local_server, f"{SERVICE}/$metadata", gwsample, auth=True)
    provider = SapODataProvider(allow_private=True)
    values = {
        "url": local_server.url(SERVICE),
        "auth_type": "basic",
        "user": USER,
        "sap_client": "100",
        "additional_headers": "X-Requested-By: integration-builder\n\nX-Trace: on",
    }

    result = await provider.test_connection(values, {"password": PASSWORD})

    assert result.ok, result.message
    request = local_server.seen[-1]
    assert request.query["sap-client"] == "100"
    assert request.headers["X-Requested-By"] == "integration-builder"
    assert request.headers["X-Trace"] == "on"

    failed = await provider.test_connection(values, {"password": "nope"})
    assert not failed.ok
    assert failed.message == "metadata URL answered 401 Unauthorized: check user and password"


async def test_connection_test_with_an_api_key(local_server: LocalServer, gwsample: bytes) -> None:
    async def needs_key(request: web.Request) -> web.StreamResponse:
        if request.headers.get("APIKey") != "k-123":
            return web.Response(status=401)
        return web.Response(body=gwsample, content_type="application/xml")

    local_server.routes[f"{SERVICE}/$metadata"] = needs_key
    provider = SapODataProvider(allow_private=True)
    values = {"url": local_server.url(SERVICE), "auth_type": "api_key"}

    assert (await provider.test_connection(values, {"api_key": "k-123"})).ok
    wrong = await provider.test_connection(values, {"api_key": "k-999"})
    assert wrong.message == "metadata URL answered 401 Unauthorized: check the API key"


@pytest.mark.parametrize(
    ("values", "message"),
    [
        ({"url": "", "user": "u"}, "the connection has no service root URL"),
        ({"url": "https://h/srv", "user": ""}, "user-and-password authentication needs a user"),
        ({"url": "https://h/srv", "user": "u", "sap_client": "1000"}, "the SAP client must be three digits"),
        (
            {"url": "https://h/srv", "user": "u", "additional_headers": "no colon"},
            "additional headers, line 1",
        ),
        ({"url": "https://h/srv", "auth_type": "api_key"}, "API key authentication needs an API key"),
    ],
)
async def test_connection_test_reports_bad_fields_in_one_line(values: dict[str, str], message: str) -> None:
    result = await SapODataProvider(allow_private=True).test_connection(values, {})
    assert not result.ok
    assert result.message.startswith(message)
    assert "\n" not in result.message


async def test_connection_test_refuses_private_hosts_by_default(
    local_server: LocalServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("IB_ALLOW_PRIVATE_URLS", raising=False)
    result = await SapODataProvider().test_connection(
        {"url": local_server.url(SERVICE), "user": USER}, {"password": PASSWORD}
    )
    assert not result.ok
    assert "non-public address" in result.message
    assert local_server.seen == []
