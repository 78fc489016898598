"""Connections against the real CAP peer: test before save, encryption at rest, edit, delete, roles."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from sqlalchemy import select

from generator.publisher import Publisher, deploy
from handlers.connections_service import ConnectionService, ConnectionServiceError
from providers import base
from providers.model import Catalog
from providers.planned import PlannedProvider
from storage import Database
from storage.models import AuditEntry
from tests.fixtures.connections import add_environment, grant, publish, runtime_token
from tests.fixtures.publish import ADMIN, ALICE, BOB, TEAM, shop_integration
from tests.peers.cap import CapServer

WRONG_PASSWORD = "not-alices-password"


def cap_values(cap: CapServer, user: str = "alice", password: str | None = None) -> dict[str, str]:
    return {
        "url": cap.v2_url,
        "auth_type": "basic",
        "user": user,
        "password": cap.users[user] if password is None else password,
        "sap_client": "100",
    }


async def create(
    connections: ConnectionService,
    cap: CapServer,
    name: str = "cap-dev",
    *,
    environment: str = "dev",
    user: str = "alice",
    actor: str = ADMIN,
) -> None:
    await connections.create_connection(
        actor, environment=environment, provider="sap-odata", name=name, values=cap_values(cap, user)
    )


def stored_bytes(database: Database) -> bytes:
    """The SQLite database file and its write-ahead log, as they are on disk."""
    path = Path(str(database.url.database))
    return b"".join(p.read_bytes() for p in (path, path.with_name(path.name + "-wal")) if p.exists())


async def audit_entries(database: Database) -> list[AuditEntry]:
    async with database.session() as session:
        return list(await session.scalars(select(AuditEntry).order_by(AuditEntry.id)))


@pytest.mark.peers
async def test_a_wrong_password_fails_the_test_and_nothing_is_saved(
    connections: ConnectionService, database: Database, cap_server: CapServer
) -> None:
    with pytest.raises(ConnectionServiceError) as refused:
        await connections.create_connection(
            ADMIN,
            environment="dev",
            provider="sap-odata",
            name="cap-dev",
            values=cap_values(cap_server, password=WRONG_PASSWORD),
        )

    message = str(refused.value)
    assert "connection test failed" in message and "nothing was saved" in message
    assert "401" in message and "check user and password" in message
    assert WRONG_PASSWORD not in message
    assert await connections.list_connections("dev") == []
    assert [e.action for e in await audit_entries(database) if e.action.startswith("connection.")] == []


@pytest.mark.peers
async def test_a_passing_connection_is_saved_encrypted_and_serves_the_integration(
    connections: ConnectionService,
    database: Database,
    publisher: Publisher,
    shop: Catalog,
    cap_server: CapServer,
) -> None:
    await publish(publisher, shop, shop_integration())
    saved = await connections.create_connection(
        ADMIN, environment="dev", provider="sap-odata", name="cap-dev", values=cap_values(cap_server)
    )
    association = await connections.associate(
        ADMIN, module_name="shop", environment="dev", connection_name="cap-dev"
    )

    assert saved.test.ok and saved.test.message.startswith("connected")
    shown = saved.connection
    assert shown.values == {
        "url": cap_server.v2_url,
        "auth_type": "basic",
        "user": "alice",
        "sap_client": "100",
    }
    assert shown.secrets_set == ("password",)
    assert shown.last_test_ok is True and shown.used_by == ()
    assert association.connection == "cap-dev"
    assert [
        (a.environment, a.connection) for a in await connections.integration_connections(TEAM, "shop")
    ] == [("dev", "cap-dev")]
    assert (await connections.get_connection("dev", "cap-dev")).used_by == ("shop",)

    _, token = await runtime_token(database, "dev")
    answer = await connections.runtime_answer(token, "shop")
    assert answer["auth"] == {"type": "basic", "user": "alice", "password": cap_server.users["alice"]}
    assert answer["params"] == {"sap-client": "100"} and answer["expires_in"] == 300

    if database.url.get_backend_name() == "sqlite":
        on_disk = stored_bytes(database)
        assert cap_server.v2_url.encode() in on_disk  # the scan sees the stored connection...
        assert cap_server.users["alice"].encode() not in on_disk  # ...but never its password


@pytest.mark.parametrize(
    ("values", "field", "says"),
    [
        ({"url": "", "user": "alice"}, "url", "Service root URL is required"),
        ({"url": "ftp://sap.example/srv/", "user": "alice"}, "url", "must be an http(s) URL"),
        ({"url": "sap.example/srv", "user": "alice"}, "url", "must be an http(s) URL"),
        ({"url": "https://sap.example/srv/"}, "user", "needs a user"),
        ({"url": "https://sap.example/srv/", "auth_type": "api_key"}, "api_key", "needs an API key"),
        (
            {"url": "https://sap.example/srv/", "auth_type": "oauth", "user": "a"},
            "auth_type",
            "must be one of",
        ),
        (
            {"url": "https://sap.example/srv/", "user": "a", "sap_client": "1000"},
            "sap_client",
            "three digits",
        ),
        (
            {"url": "https://sap.example/srv/", "user": "a", "additional_headers": "no colon"},
            "additional_headers",
            "Name: value",
        ),
        ({"url": "https://sap.example/srv/", "user": "a\nb"}, "user", "must be one line"),
        (
            {"url": "https://sap.example/srv/", "user": "a", "colour": "red"},
            "colour",
            "have no field 'colour'",
        ),
    ],
)
async def test_bad_values_are_refused_under_their_field_and_nothing_is_saved(
    connections: ConnectionService, values: dict[str, str], field: str, says: str
) -> None:
    with pytest.raises(ConnectionServiceError) as refused:
        await connections.create_connection(
            ADMIN, environment="dev", provider="sap-odata", name="bad", values=values
        )

    assert refused.value.field == field
    assert says in str(refused.value) and "\n" not in str(refused.value)
    assert await connections.list_connections("dev") == []


@pytest.mark.parametrize(
    ("name", "environment", "provider", "field"),
    [
        ("", "dev", "sap-odata", "name"),
        ("two\nlines", "dev", "sap-odata", "name"),
        ("ok", "nowhere", "sap-odata", "environment"),
        ("ok", "dev", "oracle", "provider"),
        ("ok", "dev", "erpnext", "provider"),
    ],
)
async def test_a_name_environment_or_provider_that_cannot_be_used_is_refused(
    connections: ConnectionService,
    monkeypatch: pytest.MonkeyPatch,
    name: str,
    environment: str,
    provider: str,
    field: str,
) -> None:
    # a system the wizard lists but this installation cannot connect to yet
    monkeypatch.setitem(base._REGISTRY, "erpnext", PlannedProvider("erpnext", "ERPNext"))
    with pytest.raises(ConnectionServiceError) as refused:
        await connections.create_connection(
            ADMIN,
            environment=environment,
            provider=provider,
            name=name,
            values={"url": "https://sap.example/"},
        )
    assert refused.value.field == field


@pytest.mark.peers
async def test_an_edit_keeps_blank_secrets_and_a_failing_edit_changes_nothing(
    connections: ConnectionService,
    database: Database,
    publisher: Publisher,
    shop: Catalog,
    cap_server: CapServer,
) -> None:
    await publish(publisher, shop, shop_integration())
    await create(connections, cap_server)
    await connections.associate(ADMIN, module_name="shop", environment="dev", connection_name="cap-dev")
    _, token = await runtime_token(database, "dev")

    kept = await connections.edit_connection(
        ADMIN,
        environment="dev",
        name="cap-dev",
        values={**cap_values(cap_server, password=""), "sap_client": "200"},
    )
    assert kept.test.ok and kept.connection.secrets_set == ("password",)
    assert (await connections.runtime_answer(token, "shop"))["auth"]["password"] == cap_server.users["alice"]

    with pytest.raises(ConnectionServiceError, match="connection test failed"):
        await connections.edit_connection(
            ADMIN, environment="dev", name="cap-dev", values=cap_values(cap_server, password=WRONG_PASSWORD)
        )
    answer = await connections.runtime_answer(token, "shop")
    assert (answer["auth"]["password"], answer["params"]) == (
        cap_server.users["alice"],
        {"sap-client": "200"},
    )

    trial = await connections.check_values(
        ADMIN,
        environment="dev",
        provider="sap-odata",
        name="cap-dev",
        values=cap_values(cap_server, user="quinn", password=""),
    )
    assert not trial.ok and "check user and password" in trial.message  # quinn with alice's password

    await connections.edit_connection(
        ADMIN, environment="dev", name="cap-dev", values=cap_values(cap_server, "quinn")
    )
    assert (await connections.runtime_answer(token, "shop"))["auth"]["user"] == "quinn"
    edits = [e.details["fields"] for e in await audit_entries(database) if e.action == "connection.edited"]
    assert edits == [["sap_client"], ["password", "sap_client", "user"]]


@pytest.mark.peers
async def test_a_connection_in_use_cannot_be_deleted(
    connections: ConnectionService,
    database: Database,
    publisher: Publisher,
    shop: Catalog,
    cap_server: CapServer,
) -> None:
    await publish(publisher, shop, shop_integration())
    await create(connections, cap_server, "first")
    await create(connections, cap_server, "second")
    await connections.associate(ADMIN, module_name="shop", environment="dev", connection_name="first")

    with pytest.raises(ConnectionServiceError) as refused:
        await connections.delete_connection(ADMIN, environment="dev", name="first")
    assert str(refused.value) == (
        "connection 'first' is used by shop in dev: associate it with another connection first"
    )

    await connections.associate(ADMIN, module_name="shop", environment="dev", connection_name="second")
    await connections.delete_connection(ADMIN, environment="dev", name="first")
    assert [c.name for c in await connections.list_connections("dev")] == ["second"]
    with pytest.raises(ConnectionServiceError, match="used by shop"):
        await connections.delete_connection(ADMIN, environment="dev", name="second")
    with pytest.raises(ConnectionServiceError, match="no connection named 'first'"):
        await connections.test_connection(ADMIN, environment="dev", name="first")


@pytest.mark.peers
async def test_only_connection_admins_of_the_environment_manage_its_connections(
    connections: ConnectionService,
    database: Database,
    publisher: Publisher,
    shop: Catalog,
    cap_server: CapServer,
) -> None:
    await publish(publisher, shop, shop_integration())
    await add_environment(database, "qa")
    await create(connections, cap_server, "cap-dev")
    await grant(database, BOB, "connection_admin", "qa")

    refusals = [
        connections.create_connection(
            BOB, environment="dev", provider="sap-odata", name="x", values=cap_values(cap_server)
        ),
        connections.edit_connection(BOB, environment="dev", name="cap-dev", values=cap_values(cap_server)),
        connections.test_connection(BOB, environment="dev", name="cap-dev"),
        connections.delete_connection(BOB, environment="dev", name="cap-dev"),
        connections.associate(BOB, module_name="shop", environment="dev", connection_name="cap-dev"),
        connections.check_values(BOB, environment="dev", provider="sap-odata", values=cap_values(cap_server)),
    ]
    for attempt in refusals:
        with pytest.raises(
            ConnectionServiceError, match=r"may not manage connections in dev.*connection_admin"
        ):
            await attempt
    assert (await connections.can_manage(BOB, "dev"), await connections.can_manage(BOB, "qa")) == (
        False,
        True,
    )
    assert (await connections.get_connection("dev", "cap-dev")).used_by == ()

    await create(connections, cap_server, "bobs", environment="qa", actor=BOB)
    assert [c.name for c in await connections.list_connections("qa")] == ["bobs"]


@pytest.mark.peers
async def test_associating_needs_the_integration_deployed_there_and_a_connection_of_that_environment(
    connections: ConnectionService,
    database: Database,
    publisher: Publisher,
    shop: Catalog,
    cap_server: CapServer,
) -> None:
    await publish(publisher, shop, shop_integration())
    await add_environment(database, "qa")
    await create(connections, cap_server, "cap-dev")
    await create(connections, cap_server, "cap-qa", environment="qa", user="quinn")

    with pytest.raises(ConnectionServiceError, match=r"'shop' is not deployed to qa: deploy it first"):
        await connections.associate(ADMIN, module_name="shop", environment="qa", connection_name="cap-qa")
    await deploy(database, team_id=TEAM, module_name="shop", environment="qa", actor=ADMIN, admins=[ADMIN])
    assert [
        (a.environment, a.connection) for a in await connections.integration_connections(TEAM, "shop")
    ] == [
        ("dev", None),
        ("qa", None),
    ]
    with pytest.raises(ConnectionServiceError, match="no connection named 'cap-dev' in qa") as refused:
        await connections.associate(ADMIN, module_name="shop", environment="qa", connection_name="cap-dev")
    assert refused.value.field == "name"

    await connections.associate(ADMIN, module_name="shop", environment="qa", connection_name="cap-qa")
    assert [
        (a.environment, a.connection) for a in await connections.integration_connections(TEAM, "shop")
    ] == [
        ("dev", None),
        ("qa", "cap-qa"),
    ]


@pytest.mark.peers
async def test_the_audit_log_records_each_change_and_no_secret_value(
    connections: ConnectionService,
    database: Database,
    publisher: Publisher,
    shop: Catalog,
    cap_server: CapServer,
) -> None:
    await publish(publisher, shop, shop_integration())
    await create(connections, cap_server, "cap-dev")
    await create(connections, cap_server, "spare")
    await connections.test_connection(ADMIN, environment="dev", name="cap-dev")
    await connections.edit_connection(
        ADMIN, environment="dev", name="cap-dev", values=cap_values(cap_server, "quinn")
    )
    await connections.associate(ADMIN, module_name="shop", environment="dev", connection_name="cap-dev")
    await connections.delete_connection(ADMIN, environment="dev", name="spare")
    await connections.request_admin(ALICE, admin=BOB, module_name="shop", environment="dev")

    entries = await audit_entries(database)
    actions = [e.action for e in entries if not e.action.startswith("integration.")]
    assert actions == [
        "connection.created",
        "connection.created",
        "connection.tested",
        "connection.edited",
        "connection.associated",
        "connection.deleted",
        "admin_request.created",
    ]
    assert {e.actor for e in entries if e.action.startswith("connection.")} == {ADMIN}
    everything = json.dumps([[e.actor, e.action, e.subject_id, e.details] for e in entries])
    assert "cap-dev" in everything and "spare" in everything
    for secret in cap_server.users.values():
        assert secret not in everything
