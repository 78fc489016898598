"""Repositories through their public operations, on every configured backend."""

from __future__ import annotations

import asyncio
import hashlib

import pytest
from sqlalchemy import select

from storage import (
    AlreadyExists,
    AuditLog,
    CatalogCache,
    Connections,
    Database,
    DedupKeys,
    Deployments,
    Drafts,
    Environments,
    ImmutableVersion,
    Integrations,
    InvalidValue,
    NotFound,
    RuntimeTokens,
    SecretBox,
    StaleDraft,
)
from storage.models import Integration, RuntimeToken

SPEC = {"provider": "sap-odata", "module_name": "gwsample", "objects": ["ProductSet"]}


async def make_integration(database: Database, team_id: str = "T1") -> Integration:
    async with database.session() as session:
        return await Integrations(session).create(
            team_id=team_id,
            module_name="gwsample",
            application_name="GW Sample",
            provider="sap-odata",
            owner_user_id="U1",
            spec=SPEC,
        )


async def test_exactly_one_of_twenty_concurrent_claims_wins(database: Database) -> None:
    async def claim() -> bool:
        async with database.session() as session:
            return await DedupKeys(session).claim("slack-event:Ev123")

    results = await asyncio.gather(*(claim() for _ in range(20)))
    assert results.count(True) == 1
    async with database.session() as session:
        assert await DedupKeys(session).claim("slack-event:Ev456") is True


async def test_a_rolled_back_claim_does_not_hold_the_key(database: Database) -> None:
    with pytest.raises(RuntimeError):
        async with database.session() as session:
            assert await DedupKeys(session).claim("click:1") is True
            raise RuntimeError("handler failed")
    async with database.session() as session:
        assert await DedupKeys(session).claim("click:1") is True


async def test_draft_saves_are_optimistic(database: Database) -> None:
    async with database.session() as session:
        draft = await Drafts(session).create(
            owner_user_id="U1", team_id="T1", step="provider", state={"provider": ""}
        )
    assert draft.version == 1

    async with database.session() as session:
        saved = await Drafts(session).save(
            draft.id, expected_version=1, step="source", state={"provider": "sap-odata"}
        )
    assert (saved.version, saved.step, saved.state) == (2, "source", {"provider": "sap-odata"})

    with pytest.raises(StaleDraft):
        async with database.session() as session:
            await Drafts(session).save(draft.id, expected_version=1, step="objects", state={})

    async with database.session() as session:
        current = await Drafts(session).require(draft.id)
        assert (current.version, current.step) == (2, "source")
        assert [d.id for d in await Drafts(session).open_for("U1", "T1")] == [draft.id]
        with pytest.raises(NotFound):
            await Drafts(session).save("no-such-draft", expected_version=1, step="x", state={})


async def test_tokens_are_stored_hashed_and_can_be_revoked(database: Database) -> None:
    async with database.session() as session:
        dev = await Environments(session).require("dev")
        row, token = await RuntimeTokens(session).create(dev, label="ci", created_by="U1")

    async with database.session() as session:
        stored = await session.scalar(select(RuntimeToken.token_hash).where(RuntimeToken.id == row.id))
        verified = await RuntimeTokens(session).verify(token)
        assert await RuntimeTokens(session).verify(token + "x") is None
    assert stored == hashlib.sha256(token.encode()).hexdigest()
    assert token not in (stored or "")
    assert verified is not None and verified.environment.name == "dev"

    async with database.session() as session:
        assert await RuntimeTokens(session).revoke(row.id) is True
        assert await RuntimeTokens(session).revoke(row.id) is False
    async with database.session() as session:
        assert await RuntimeTokens(session).verify(token) is None


async def test_environment_names_are_unique_and_fit_for_urls(database: Database) -> None:
    async with database.session() as session:
        environments = Environments(session)
        qa = await environments.create("qa")
        assert qa.development is False
        with pytest.raises(AlreadyExists):
            await environments.create("qa")
        with pytest.raises(InvalidValue):
            await environments.create("../prod")
        # a refused insert leaves the unit of work usable
        assert [e.name for e in await environments.all()] == ["dev", "qa"]


async def test_module_names_are_unique_per_workspace(database: Database) -> None:
    await make_integration(database, "T1")
    await make_integration(database, "T2")
    with pytest.raises(AlreadyExists, match="gwsample"):
        await make_integration(database, "T1")


async def test_versions_are_immutable_and_serve_their_artifacts(database: Database) -> None:
    integration = await make_integration(database)
    wheel = b"PK\x03\x04 wheel bytes"
    async with database.session() as session:
        version = await Integrations(session).add_version(
            integration,
            version="0.1.0",
            wheel_filename="gwsample-0.1.0-py3-none-any.whl",
            wheel=wheel,
            sdist_filename="gwsample-0.1.0.tar.gz",
            sdist=b"sdist bytes",
            spec=SPEC,
            created_by="U1",
        )
    assert version.sha256 == hashlib.sha256(wheel).hexdigest()

    async with database.session() as session:
        integrations = Integrations(session)
        listed = await integrations.versions(integration)
        assert [v.version for v in listed] == ["0.1.0"]
        assert await integrations.artifact(listed[0], "gwsample-0.1.0-py3-none-any.whl") == wheel
        assert await integrations.artifact(listed[0], "gwsample-0.1.0.tar.gz") == b"sdist bytes"
        with pytest.raises(NotFound):
            await integrations.artifact(listed[0], "other-0.1.0.tar.gz")
        with pytest.raises(AlreadyExists):
            await integrations.add_version(
                integration, version="0.1.0", wheel_filename="x.whl", wheel=b"", spec=SPEC, created_by="U1"
            )

    with pytest.raises(ImmutableVersion):
        async with database.session() as session:
            stored = await Integrations(session).get_version(integration, "0.1.0")
            assert stored is not None
            stored.spec = {"changed": True}


async def test_deployments_point_at_one_version_and_keep_history(database: Database) -> None:
    integration = await make_integration(database)
    async with database.session() as session:
        integrations = Integrations(session)
        first, second = [
            await integrations.add_version(
                integration,
                version=v,
                wheel_filename=f"g-{v}.whl",
                wheel=v.encode(),
                spec=SPEC,
                created_by="U1",
            )
            for v in ("0.1.0", "0.2.0")
        ]
        qa = await Environments(session).create("qa")
    async with database.session() as session:
        await Deployments(session).deploy(first, qa, deployed_by="U1")
    async with database.session() as session:
        await Deployments(session).deploy(second, qa, deployed_by="U2")

    async with database.session() as session:
        deployments = Deployments(session)
        current = await deployments.current(integration.id, qa)
        assert current is not None and (current.version.version, current.deployed_by) == ("0.2.0", "U2")
        assert [d.version.version for d in await deployments.in_environment(qa)] == ["0.2.0"]
        assert [h.version_id for h in await deployments.history(integration.id)] == [first.id, second.id]


async def test_deleting_a_connection_empties_its_associations(
    database: Database, secret_box: SecretBox
) -> None:
    integration = await make_integration(database)
    async with database.session() as session:
        dev = await Environments(session).require("dev")
        connections = Connections(session, secret_box)
        connection = await connections.create(
            dev, provider="sap-odata", name="erp", settings={}, secret={"password": "p"}, created_by="U1"
        )
        await connections.associate(integration.id, dev, connection, updated_by="U1")
    async with database.session() as session:
        connections = Connections(session, secret_box)
        association = await connections.association(integration.id, dev)
        assert association is not None and association.connection_id == connection.id
        stored = await connections.get(connection.id)
        assert stored is not None
        await connections.delete(stored)
    async with database.session() as session:
        association = await Connections(session, secret_box).association(integration.id, dev)
        assert association is not None and association.connection_id is None


async def test_audit_log_refuses_secrets(database: Database) -> None:
    async with database.session() as session:
        audit = AuditLog(session)
        await audit.record(
            actor="U1",
            action="token.revoke",
            subject_type="runtime_token",
            subject_id=7,
            details={"token_id": 7},
        )
        with pytest.raises(ValueError, match="client_secret"):
            await audit.record(
                actor="U1",
                action="connection.create",
                subject_type="connection",
                subject_id=1,
                details={"fields": {"client_secret": "s"}},
            )
        entries = await audit.for_subject("runtime_token", 7)
    assert [(e.action, e.details) for e in entries] == [("token.revoke", {"token_id": 7})]


async def test_catalog_cache_round_trip(database: Database) -> None:
    async with database.session() as session:
        draft = await Drafts(session).create(owner_user_id="U1", team_id="T1", step="source", state={})
        cache = CatalogCache(session)
        assert await cache.get(draft.id) is None
        await cache.put(draft.id, b'{"objects": []}' * 100)
        await cache.put(draft.id, b'{"objects": ["A"]}')
    async with database.session() as session:
        assert await CatalogCache(session).get(draft.id) == b'{"objects": ["A"]}'
