"""Admin requests: who may ask, only the addressed admin completes (once, before expiry), the
requester cancels, and a generated certificate whose private key stays in the service, encrypted."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import serialization

from generator.publisher import Publisher, deploy
from handlers.connections_service import ConnectionService, ConnectionServiceError
from providers.base import ConnectionField, Provider, get_provider
from providers.certificates import CERTIFICATE_FIELD
from providers.model import Catalog
from providers.sap_odata import SapODataProvider
from storage import AdminRequests, Database, SecretBox
from storage.models import utcnow
from tests.fixtures.connections import add_environment, audit_actions, grant, publish, runtime_token
from tests.fixtures.publish import ADMIN, ALICE, BOB, TEAM, shop_integration
from tests.peers.cap import CapServer

CAROL = "U0CAROL"  # administrator of the external system; holds no Integration Builder role
pytestmark = pytest.mark.peers


def cap_values(cap: CapServer, password: str | None = None) -> dict[str, str]:
    return {
        "url": cap.v2_url,
        "user": "alice",
        "password": cap.users["alice"] if password is None else password,
    }


@pytest.fixture
async def shop_in_dev(publisher: Publisher, shop: Catalog) -> None:
    """ALICE published `shop` to dev, so she owns it."""
    await publish(publisher, shop, shop_integration())


@pytest.mark.usefixtures("shop_in_dev")
async def test_only_the_addressed_admin_completes_a_request_and_only_once(
    connections: ConnectionService, database: Database, cap_server: CapServer
) -> None:
    request = await connections.request_admin(
        ALICE, admin=CAROL, module_name="shop", environment="dev", note="for the demo on Friday"
    )
    assert (request.status, request.requester, request.admin) == ("pending", ALICE, CAROL)
    assert (request.module_name, request.environment, request.note) == (
        "shop",
        "dev",
        "for the demo on Friday",
    )
    assert request.expires_at - request.created_at == timedelta(days=7)
    assert "<@U0ALICE>" in request.instructions.text and "S_SERVICE" in request.instructions.text
    assert request.instructions.files == ()

    with pytest.raises(ConnectionServiceError, match="between two other people"):
        await connections.get_admin_request(BOB, request.id)
    for intruder in (BOB, ALICE, ADMIN):
        with pytest.raises(ConnectionServiceError, match=r"only <@U0CAROL>, whom <@U0ALICE> asked"):
            await connections.open_admin_request(intruder, request.id)
        with pytest.raises(ConnectionServiceError, match="only <@U0CAROL>"):
            await connections.complete_admin_request(
                intruder, request.id, name="cap", values=cap_values(cap_server)
            )
    assert (await connections.open_admin_request(CAROL, request.id)).id == request.id

    with pytest.raises(ConnectionServiceError, match=r"connection test failed.*check user and password"):
        await connections.complete_admin_request(
            CAROL, request.id, name="cap", values=cap_values(cap_server, "nope")
        )
    assert (await connections.get_admin_request(ALICE, request.id)).status == "pending"
    assert await connections.list_connections("dev") == []

    completed = await connections.complete_admin_request(
        CAROL, request.id, name="cap", values=cap_values(cap_server)
    )
    assert completed.notify == (ALICE,)
    assert (completed.request.status, completed.request.connection) == ("completed", "cap")
    assert (completed.connection.name, completed.connection.used_by, completed.connection.created_by) == (
        "cap",
        ("shop",),
        CAROL,
    )
    _, token = await runtime_token(database, "dev")
    assert (await connections.runtime_answer(token, "shop"))["auth"]["user"] == "alice"

    with pytest.raises(ConnectionServiceError, match="completed already"):
        await connections.complete_admin_request(
            CAROL, request.id, name="cap2", values=cap_values(cap_server)
        )
    with pytest.raises(ConnectionServiceError, match="completed already"):
        await connections.open_admin_request(CAROL, request.id)
    assert [c.name for c in await connections.list_connections("dev")] == ["cap"]
    assert await audit_actions(database, "admin_request", request.id) == [
        "admin_request.created",
        "admin_request.completed",
    ]


@pytest.mark.usefixtures("shop_in_dev")
async def test_an_expired_request_cannot_be_completed(
    database: Database, secret_box: SecretBox, private_urls: None, cap_server: CapServer
) -> None:
    now = utcnow()
    today = ConnectionService(database, secret_box, clock=lambda: now)
    later = ConnectionService(database, secret_box, clock=lambda: now + timedelta(days=7, seconds=1))
    first = await today.request_admin(ALICE, admin=CAROL, module_name="shop", environment="dev")
    second = await today.request_admin(ALICE, admin=CAROL, module_name="shop", environment="dev")

    with pytest.raises(ConnectionServiceError, match=r"expired on .* UTC; <@U0ALICE> can send a new one"):
        await later.complete_admin_request(CAROL, first.id, name="cap", values=cap_values(cap_server))
    assert (await later.get_admin_request(ALICE, first.id)).status == "expired"
    assert await audit_actions(database, "admin_request", first.id) == [
        "admin_request.created",
        "admin_request.expired",
    ]
    assert [r.id for r in await today.admin_requests_for(CAROL)] == [second.id]
    assert [(r.id, r.status) for r in await later.expire_admin_requests()] == [(second.id, "expired")]
    assert await later.expire_admin_requests() == []
    assert await later.admin_requests_for(CAROL) == []
    assert await later.list_connections("dev") == []


@pytest.mark.usefixtures("shop_in_dev")
async def test_a_request_that_expires_while_its_connection_is_tested_saves_nothing(
    database: Database, secret_box: SecretBox, private_urls: None, cap_server: CapServer
) -> None:
    now = [utcnow()]

    class SlowSapOData(SapODataProvider):
        async def test_connection(self, values: Mapping[str, str], secrets: Mapping[str, str]) -> Any:
            now[0] += timedelta(days=8)  # the administrator's test outlasts the request
            return await super().test_connection(values, secrets)

    slow = SlowSapOData()
    connections = ConnectionService(database, secret_box, providers=lambda key: slow, clock=lambda: now[0])
    request = await connections.request_admin(ALICE, admin=CAROL, module_name="shop", environment="dev")

    with pytest.raises(ConnectionServiceError, match="this request expired on"):
        await connections.complete_admin_request(CAROL, request.id, name="cap", values=cap_values(cap_server))
    assert (await connections.get_admin_request(CAROL, request.id)).status == "expired"
    assert await connections.list_connections("dev") == []


@pytest.mark.usefixtures("shop_in_dev")
async def test_only_the_requester_cancels_and_a_cancelled_request_is_closed(
    connections: ConnectionService, database: Database, cap_server: CapServer
) -> None:
    request = await connections.request_admin(ALICE, admin=CAROL, module_name="shop", environment="dev")

    for other in (CAROL, BOB):
        with pytest.raises(ConnectionServiceError, match=r"only <@U0ALICE>, who asked, can cancel"):
            await connections.cancel_admin_request(other, request.id)
    assert (await connections.cancel_admin_request(ALICE, request.id)).status == "cancelled"
    with pytest.raises(ConnectionServiceError, match="<@U0ALICE> cancelled this request"):
        await connections.complete_admin_request(CAROL, request.id, name="cap", values=cap_values(cap_server))
    with pytest.raises(ConnectionServiceError, match="cancelled this request"):
        await connections.cancel_admin_request(ALICE, request.id)
    assert await audit_actions(database, "admin_request", request.id) == [
        "admin_request.created",
        "admin_request.cancelled",
    ]


@pytest.mark.usefixtures("shop_in_dev")
async def test_who_may_ask_an_administrator(connections: ConnectionService, database: Database) -> None:
    await add_environment(database, "qa")
    await deploy(database, team_id=TEAM, module_name="shop", environment="qa", actor=ADMIN, admins=[ADMIN])

    with pytest.raises(ConnectionServiceError, match="may not ask for connections of shop in dev"):
        await connections.request_admin(BOB, admin=CAROL, module_name="shop", environment="dev")
    with pytest.raises(ConnectionServiceError, match="may not ask for connections of shop in qa"):
        await connections.request_admin(ALICE, admin=CAROL, module_name="shop", environment="qa")
    with pytest.raises(ConnectionServiceError, match="not yourself") as yourself:
        await connections.request_admin(ALICE, admin=ALICE, module_name="shop", environment="dev")
    assert yourself.value.field == "admin"
    with pytest.raises(ConnectionServiceError, match="'orders' is not deployed to dev"):
        await connections.request_admin(ALICE, admin=CAROL, module_name="orders", environment="dev")

    await grant(database, ALICE, "developer", "qa")
    await grant(database, BOB, "connection_admin", "dev")
    assert (
        await connections.request_admin(ALICE, admin=CAROL, module_name="shop", environment="qa")
    ).status == "pending"
    assert (
        await connections.request_admin(BOB, admin=CAROL, module_name="shop", environment="dev")
    ).status == "pending"


class CertificateSapOData(SapODataProvider):
    """SAP OData as if its apps logged in with a certificate, like the Microsoft and Salesforce ones
    (whose connections show the certificate as a field)."""

    needs_certificate = True

    def connection_schema(self) -> Sequence[ConnectionField]:
        return (
            *super().connection_schema(),
            ConnectionField(CERTIFICATE_FIELD, "Certificate", kind="multiline"),
        )


@pytest.mark.usefixtures("shop_in_dev")
async def test_a_certificate_is_generated_and_its_private_key_stays_encrypted_in_the_service(
    database: Database, secret_box: SecretBox, private_urls: None, cap_server: CapServer
) -> None:
    certificate_provider = CertificateSapOData()

    def providers(key: str) -> Provider:
        return certificate_provider if key == certificate_provider.key else get_provider(key)

    connections = ConnectionService(database, secret_box, admins=[ADMIN], providers=providers)
    request = await connections.request_admin(ALICE, admin=CAROL, module_name="shop", environment="dev")

    ((filename, pem),) = request.instructions.files
    assert filename == "integration-builder-shop-dev.pem"
    certificate = x509.load_pem_x509_certificate(pem)
    assert certificate.subject.rfc4514_string() == "CN=Integration Builder shop dev"
    async with database.session() as session:
        row = await AdminRequests(session, secret_box).get(request.id)
        assert row is not None
        private_key_pem = AdminRequests(session, secret_box).read_private_key(row)
    assert private_key_pem is not None and b"PRIVATE KEY" not in pem
    private_key = serialization.load_pem_private_key(private_key_pem, password=None)
    assert private_key.public_key().public_numbers() == certificate.public_key().public_numbers()
    key_body = private_key_pem.splitlines()[5]  # a line of the key's base64 body
    if database.url.get_backend_name() == "sqlite":
        path = Path(str(database.url.database))
        on_disk = b"".join(p.read_bytes() for p in (path, path.with_name(path.name + "-wal")) if p.exists())
        assert pem.splitlines()[5] in on_disk  # the certificate is public and stored as it is...
        assert key_body not in on_disk  # ...the private key only encrypted

    completed = await connections.complete_admin_request(
        CAROL, request.id, name="cap", values=cap_values(cap_server)
    )
    assert completed.connection.secrets_set == ("password", "private_key")
    assert completed.connection.values["certificate"] == pem.decode().strip()
    # An edit modal shows the current values, but never a secret: the private key stays.
    current = {**cap_values(cap_server, ""), "certificate": completed.connection.values["certificate"]}
    edited = await connections.edit_connection(ADMIN, environment="dev", name="cap", values=current)
    assert edited.connection.secrets_set == ("password", "private_key")
    assert edited.connection.values["certificate"] == pem.decode().strip()
    _, token = await runtime_token(database, "dev")
    assert "PRIVATE KEY" not in str(await connections.runtime_answer(token, "shop"))
