"""The Dataverse provider against the Dataverse-shaped CAP peer, with tokens from the identity peer:
environments from the Global Discovery Service, tables from $metadata, connection tests, and the
clear errors for URLs that are not Dataverse and certificates the identity server rejects."""

from __future__ import annotations

import asyncio
import json
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from providers.base import MetadataSource, SourceError
from providers.certificates import CERTIFICATE_FIELD, PRIVATE_KEY_FIELD, generate_certificate
from providers.dataverse import DISCOVERY_URL_ENV, discovery_scopes, list_environments
from tests.fixtures.corpora import corpus_file
from tests.fixtures.microsoft import CLIENT_SECRET, DataverseEnvironmentPeer, sign_in

pytestmark = pytest.mark.peers


@pytest.fixture(scope="module")
def other_web_site() -> Iterator[str]:
    """An http server that is not Dataverse: 404 for everything, an OData V2 document at
    /v2/api/data/v9.2/$metadata."""
    v2 = corpus_file("sap-v2/GWSAMPLE_BASIC.edmx").read_bytes()

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            found = self.path.startswith("/v2/api/data/v9.2/$metadata")
            self.send_response(200 if found else 404)
            self.send_header("Content-Type", "application/xml" if found else "text/plain")
            body = v2 if found else b"not found"
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args: object) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()


def test_environments_are_listed_by_the_global_discovery_service(
    dataverse_environment: DataverseEnvironmentPeer, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(DISCOVERY_URL_ENV, dataverse_environment.url)
    tenant = dataverse_environment.tenant
    token = sign_in(tenant, discovery_scopes()).access_token
    environments = asyncio.run(list_environments(token, tenant.http))
    assert [(e.name, e.url, e.tenant_id) for e in environments] == [
        ("IB Test", dataverse_environment.url, tenant.tenant)
    ]
    with pytest.raises(SourceError, match="press Sign in with Microsoft again"):
        asyncio.run(list_environments("not-a-token", tenant.http))


def test_tables_come_from_the_environments_metadata(dataverse_environment: DataverseEnvironmentPeer) -> None:
    source = MetadataSource(
        kind="url", location=dataverse_environment.url, password=dataverse_environment.user_token()
    )
    catalog = asyncio.run(dataverse_environment.provider("dynamics365").discover(source))
    assert [o.name for o in catalog.objects] == ["accounts", "contacts"]
    assert [o.group for o in catalog.objects] == ["Dataverse", "Dataverse"]
    contacts = catalog.object("contacts")
    assert contacts.attribute("_parentcustomerid_value").read_only
    assert [(n.name, n.target) for n in contacts.navigations] == [("parentcustomerid_account", "accounts")]
    assert catalog.runtime["server_paging"] is True


def test_a_url_that_is_not_a_dataverse_endpoint_is_refused_clearly(
    dataverse_environment: DataverseEnvironmentPeer, other_web_site: str
) -> None:
    provider = dataverse_environment.provider()
    token = dataverse_environment.user_token()
    with pytest.raises(SourceError, match="is not a Dataverse environment"):
        asyncio.run(provider.discover(MetadataSource(kind="url", location=other_web_site, password=token)))
    with pytest.raises(SourceError, match="without a path"):
        asyncio.run(
            provider.discover(MetadataSource(kind="url", location=other_web_site + "/v2", password=token))
        )


def test_metadata_that_is_not_odata_v4_is_not_dataverse(
    dataverse_environment: DataverseEnvironmentPeer, other_web_site: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    provider = dataverse_environment.provider()
    monkeypatch.setattr("providers.dataverse.API_PATH", "/v2/api/data/v9.2/")
    source = MetadataSource(kind="url", location=other_web_site, password="token")
    with pytest.raises(SourceError, match="did not answer with OData V4 metadata"):
        asyncio.run(provider.discover(source))


def test_a_connection_with_the_certificate_passes_its_test(
    dataverse_environment: DataverseEnvironmentPeer,
) -> None:
    values, secrets = dataverse_environment.connection()
    result = asyncio.run(dataverse_environment.provider().test_connection(values, secrets))
    assert result.ok, result.message
    assert result.message.startswith("connected to 127.0.0.1 as application user ")


def test_a_connection_with_a_secret_passes_its_test(dataverse_environment: DataverseEnvironmentPeer) -> None:
    values, _ = dataverse_environment.connection(auth_type="secret")
    result = asyncio.run(
        dataverse_environment.provider().test_connection(values, {"client_secret": CLIENT_SECRET})
    )
    assert result.ok, result.message


def test_a_certificate_the_identity_server_rejects_fails_the_test_clearly(
    dataverse_environment: DataverseEnvironmentPeer,
) -> None:
    stranger = generate_certificate("never uploaded")
    values, _ = dataverse_environment.connection(**{CERTIFICATE_FIELD: stranger.certificate_pem})
    secrets = {PRIVATE_KEY_FIELD: stranger.private_key_pem.decode("ascii")}
    result = asyncio.run(dataverse_environment.provider().test_connection(values, secrets))
    assert not result.ok
    assert "rejected the certificate" in result.message and "AADSTS700027" in result.message


def test_a_connection_to_another_web_site_says_it_is_not_dataverse(
    dataverse_environment: DataverseEnvironmentPeer, other_web_site: str
) -> None:
    values, secrets = dataverse_environment.tenant.connection(url=other_web_site)
    result = asyncio.run(dataverse_environment.provider().test_connection(values, secrets))
    assert not result.ok and "is not a Dataverse environment" in result.message


def test_packages_get_a_short_lived_token_and_never_the_key(
    dataverse_environment: DataverseEnvironmentPeer,
) -> None:
    values, secrets = dataverse_environment.connection()
    answer = asyncio.run(dataverse_environment.provider().connection_answer(values, secrets))
    assert set(answer) == {"url", "auth", "expires_in"}
    assert answer["url"] == dataverse_environment.api_url
    assert answer["auth"]["type"] == "bearer" and 0 < answer["expires_in"] < 3600
    text = json.dumps(answer)
    assert "PRIVATE KEY" not in text and "CERTIFICATE" not in text


def test_an_expired_sign_in_asks_to_sign_in_again(dataverse_environment: DataverseEnvironmentPeer) -> None:
    source = MetadataSource(kind="url", location=dataverse_environment.url, password="expired-token")
    with pytest.raises(SourceError, match=r"401.*sign in again"):
        asyncio.run(dataverse_environment.provider().discover(source))
