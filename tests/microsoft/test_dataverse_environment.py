"""The Dataverse provider against the Dataverse-shaped CAP peer, with tokens from the identity peer:
environments from the Global Discovery Service, tables from $metadata, connection tests (who the
connection signs in as, an Application User without a security role), throttling storms, and the
clear errors for URLs that are not Dataverse and certificates the identity server rejects."""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
import threading
import uuid
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import httpx
import pytest

from providers.base import MetadataSource, SourceError
from providers.certificates import CERTIFICATE_FIELD, PRIVATE_KEY_FIELD, generate_certificate
from providers.dataverse import DISCOVERY_URL_ENV, discovery_scopes, list_environments
from tests.fixtures.corpora import corpus_file
from tests.fixtures.microsoft import CLIENT_SECRET, TENANT, DataverseEnvironmentPeer, sign_in

pytestmark = pytest.mark.peers

IB = Path(sys.executable).with_name("ib")


def add_application_user(
    environment: DataverseEnvironmentPeer, client_id: str, fullname: str, roles: list[str]
) -> None:
    """What an administrator does in the Power Platform admin center (Application users > New app user)."""
    httpx.post(
        f"{environment.url}/test/dataverse/application-users",
        json={"applicationid": client_id, "fullname": fullname, "roles": roles},
        trust_env=False,
    ).raise_for_status()


@pytest.fixture
def storm(dataverse_environment: DataverseEnvironmentPeer) -> Iterator[DataverseEnvironmentPeer]:
    """The environment, whose throttling storm (``throttle``) ends with the test."""
    yield dataverse_environment
    throttle(dataverse_environment, 0)


def throttle(
    environment: DataverseEnvironmentPeer, times: int, retry_after: int = 1, status: int = 429
) -> None:
    """Dataverse's service protection limits for the next ``times`` requests."""
    httpx.post(
        f"{environment.url}/test/dataverse/throttle",
        json={"times": times, "retry_after": retry_after, "status": status},
        trust_env=False,
    ).raise_for_status()


def statuses(environment: DataverseEnvironmentPeer, path_part: str) -> list[int | None]:
    return [r["status"] for r in environment.cap.requests() if path_part in r["path"]]


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
    assert [o.name for o in catalog.objects] == ["accounts", "contacts", "systemusers"]
    assert {o.group for o in catalog.objects} == {"Dataverse"}
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


def test_a_connection_test_says_which_application_user_it_signed_in_as(
    dataverse_environment: DataverseEnvironmentPeer,
) -> None:
    client_id = dataverse_environment.tenant.client_id
    add_application_user(dataverse_environment, client_id, "Integration Builder - sales", ["Basic User"])
    dataverse_environment.cap.clear_requests()
    values, secrets = dataverse_environment.connection()
    result = asyncio.run(dataverse_environment.provider().test_connection(values, secrets))
    assert result.ok, result.message
    assert result.message == "connected to 127.0.0.1 as application user Integration Builder - sales"
    # the token was acquired and one record read: the Application User's own
    read = [r for r in dataverse_environment.cap.requests() if "/systemusers(" in r["path"]]
    assert [(r["query"], r["status"]) for r in read] == [({"$select": "fullname"}, 200)]


def test_an_application_user_without_a_security_role_is_told_to_get_one(
    dataverse_environment: DataverseEnvironmentPeer,
) -> None:
    client_id = str(uuid.uuid4())
    tenant = dataverse_environment.tenant
    tenant.identity.register_app(client_id, TENANT, secret=CLIENT_SECRET)
    add_application_user(dataverse_environment, client_id, "Integration Builder - roleless", [])
    values, _ = dataverse_environment.connection(client_id=client_id, auth_type="secret")
    result = asyncio.run(
        dataverse_environment.provider().test_connection(values, {"client_secret": CLIENT_SECRET})
    )
    assert not result.ok
    assert "\n" not in result.message
    assert result.message.startswith("signed in, but the Application User may not read records")
    assert (
        "missing prvReadSystemUser privilege" in result.message
        and "give it a security role" in result.message
    )


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


def test_a_short_throttling_storm_is_ridden_out(
    storm: DataverseEnvironmentPeer, monkeypatch: pytest.MonkeyPatch
) -> None:
    provider = storm.provider()
    source = MetadataSource(kind="url", location=storm.url, password=storm.user_token())
    storm.cap.clear_requests()
    throttle(storm, 2)
    catalog = asyncio.run(provider.discover(source))
    assert "accounts" in catalog.object_names()
    assert statuses(storm, "$metadata") == [429, 429, 200]

    monkeypatch.setenv(DISCOVERY_URL_ENV, storm.url)
    token = sign_in(storm.tenant, discovery_scopes()).access_token
    throttle(storm, 1)
    assert [e.name for e in asyncio.run(list_environments(token, storm.tenant.http))] == ["IB Test"]

    # a 503 with Retry-After is waited out too
    throttle(storm, 1, status=503)
    values, secrets = storm.connection()
    result = asyncio.run(provider.test_connection(values, secrets))
    assert result.ok, result.message


def test_a_long_throttling_storm_says_when_to_try_again(
    storm: DataverseEnvironmentPeer, monkeypatch: pytest.MonkeyPatch
) -> None:
    provider = storm.provider()
    source = MetadataSource(kind="url", location=storm.url, password=storm.user_token())
    throttle(storm, 10, retry_after=60)
    storm.cap.clear_requests()
    with pytest.raises(SourceError) as raised:
        asyncio.run(provider.discover(source))
    assert str(raised.value) == "the Dataverse environment is throttling requests (429); try again in 60 s"
    # a wait longer than the wizard can afford is not waited: one request
    assert statuses(storm, "$metadata") == [429]

    values, secrets = storm.connection()
    result = asyncio.run(provider.test_connection(values, secrets))
    assert not result.ok
    assert result.message == "the Dataverse environment is throttling requests (429); try again in 60 s"

    monkeypatch.setenv(DISCOVERY_URL_ENV, storm.url)
    with pytest.raises(SourceError) as raised:
        asyncio.run(
            list_environments(sign_in(storm.tenant, discovery_scopes()).access_token, storm.tenant.http)
        )
    assert str(raised.value) == "the Global Discovery Service is throttling requests (429); try again in 60 s"


def test_a_storm_outlasting_the_tries_gives_up(storm: DataverseEnvironmentPeer) -> None:
    source = MetadataSource(kind="url", location=storm.url, password=storm.user_token())
    throttle(storm, 3)
    storm.cap.clear_requests()
    with pytest.raises(SourceError) as raised:
        asyncio.run(storm.provider().discover(source))
    assert str(raised.value) == "the Dataverse environment is throttling requests (429); try again in 1 s"
    assert statuses(storm, "$metadata") == [429, 429, 429]


def test_ib_generate_prints_a_throttling_storm_as_one_line(
    storm: DataverseEnvironmentPeer, tmp_path: Path
) -> None:
    token = storm.user_token()
    throttle(storm, 10, retry_after=60)
    out = tmp_path / "out"
    result = subprocess.run(
        [
            *(str(IB), "generate", "--provider", "dataverse", "--metadata", storm.url),
            *("--user", "signed-in", "--password-env", "IB_TEST_DATAVERSE_TOKEN", "--allow-private-urls"),
            *("--all", "--app", "CRM", "--module", "crm", "--out", str(out)),
        ],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
        env={**os.environ, "IB_TEST_DATAVERSE_TOKEN": token},
    )
    assert result.returncode != 0
    assert result.stderr.strip().splitlines() == [
        "ib generate: the Dataverse environment is throttling requests (429); try again in 60 s"
    ]
    assert not out.exists()


def test_an_expired_sign_in_asks_to_sign_in_again(dataverse_environment: DataverseEnvironmentPeer) -> None:
    source = MetadataSource(kind="url", location=dataverse_environment.url, password="expired-token")
    with pytest.raises(SourceError, match=r"401.*sign in again"):
        asyncio.run(dataverse_environment.provider().discover(source))
