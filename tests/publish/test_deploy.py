"""Promotion of a published version to another environment, and the roles that allow it."""

from __future__ import annotations

import pytest

from generator.publisher import Publisher, PublishRefused, deploy
from providers.model import Catalog
from storage import (
    AccessGrants,
    AlreadyExists,
    Associations,
    Database,
    Deployments,
    Environments,
    InvalidValue,
    NotFound,
)
from tests.fixtures.publish import ADMIN, ALICE, BOB, TEAM, shop_integration


@pytest.fixture
async def published(database: Database, publisher: Publisher, shop: Catalog) -> list[str]:
    """shop 0.1.0 and 0.1.1 published to dev; qa and prod exist. Returns the sha256 per version."""
    async with database.session() as session:
        await Environments(session).create("qa")
        await Environments(session).create("prod")
    hashes = []
    for key in ("one", "two"):
        job = await publisher.submit(
            team_id=TEAM, user_id=ALICE, spec=shop_integration(), catalog=shop, dedup_key=key
        )
        done = await publisher.wait(job.id)
        assert done.integration_id is not None
        async with database.session() as session:
            dev = await Environments(session).require("dev")
            current = await Deployments(session).current(done.integration_id, dev)
            assert current is not None
            hashes.append(current.version.sha256)
    return hashes


async def test_deploy_promotes_the_same_bytes_and_leaves_the_association_empty(
    database: Database, published: list[str]
) -> None:
    deployment = await deploy(
        database, team_id=TEAM, module_name="shop", environment="qa", actor=ADMIN, admins=[ADMIN]
    )

    assert (deployment.version.version, deployment.version.sha256) == ("0.1.1", published[1])
    async with database.session() as session:
        qa = await Environments(session).require("qa")
        association = await Associations(session).get(deployment.integration_id, qa)
        history = await Deployments(session).history(deployment.integration_id)
    assert association is not None and association.connection_id is None
    assert [(entry.environment_id, entry.deployed_by) for entry in history][-1] == (qa.id, ADMIN)


async def test_an_older_version_can_be_deployed_by_number(database: Database, published: list[str]) -> None:
    deployment = await deploy(
        database,
        team_id=TEAM,
        module_name="shop",
        environment="qa",
        version="0.1.0",
        actor=ADMIN,
        admins=[ADMIN],
    )
    assert deployment.version.sha256 == published[0]


async def test_deploying_needs_the_deployer_role_in_the_target(
    database: Database, published: list[str]
) -> None:
    with pytest.raises(PublishRefused) as refused:
        await deploy(database, team_id=TEAM, module_name="shop", environment="qa", actor=BOB)
    assert str(refused.value) == (
        f"<@{BOB}> may not deploy to qa: that needs the deployer role (`ib access grant {BOB} deployer qa`)"
    )

    async with database.session() as session:
        await AccessGrants(session).grant(BOB, "deployer", "prod", created_by=ADMIN)
        await AccessGrants(session).grant(BOB, "developer", "qa", created_by=ADMIN)
    with pytest.raises(PublishRefused):
        await deploy(database, team_id=TEAM, module_name="shop", environment="qa", actor=BOB)

    async with database.session() as session:
        await AccessGrants(session).grant(BOB, "deployer", "qa", created_by=ADMIN)
    deployment = await deploy(database, team_id=TEAM, module_name="shop", environment="qa", actor=BOB)
    assert deployment.deployed_by == BOB


async def test_a_grant_in_every_environment_covers_new_ones(database: Database, published: list[str]) -> None:
    async with database.session() as session:
        await AccessGrants(session).grant(BOB, "deployer", "*", created_by=ADMIN)
        await Environments(session).create("uat")
    deployment = await deploy(database, team_id=TEAM, module_name="shop", environment="uat", actor=BOB)
    assert deployment.environment.name == "uat"


@pytest.mark.parametrize(
    ("module", "environment", "version", "reason"),
    [
        ("shop", "staging", None, "there is no environment named 'staging'; see `ib env list`"),
        ("orders", "qa", None, "there is no integration named orders in this workspace"),
        ("shop", "qa", "9.9.9", "shop has no version 9.9.9 (latest: 0.1.1, 0.1.0)"),
    ],
)
async def test_deploy_refuses_what_does_not_exist(
    database: Database, published: list[str], module: str, environment: str, version: str | None, reason: str
) -> None:
    with pytest.raises(PublishRefused) as refused:
        await deploy(
            database,
            team_id=TEAM,
            module_name=module,
            environment=environment,
            version=version,
            actor=ADMIN,
            admins=[ADMIN],
        )
    assert str(refused.value) == reason


async def test_roles_are_checked_per_environment_and_admins_hold_all(database: Database) -> None:
    async with database.session() as session:
        await Environments(session).create("qa")
        grants = AccessGrants(session, admins=[ADMIN])
        await grants.grant(ALICE, "connection_admin", "qa", created_by=ADMIN)
        with pytest.raises(AlreadyExists):
            await grants.grant(ALICE, "connection_admin", "qa", created_by=ADMIN)
        with pytest.raises(InvalidValue):
            await grants.grant(ALICE, "owner", "qa", created_by=ADMIN)
        with pytest.raises(NotFound):
            await grants.grant(ALICE, "developer", "staging", created_by=ADMIN)

        assert await grants.has_role(ALICE, "connection_admin", "qa")
        assert not await grants.has_role(ALICE, "connection_admin", "dev")
        assert not await grants.has_role(ALICE, "deployer", "qa")
        assert await grants.has_role(ADMIN, "deployer", "prod")
        assert await grants.revoke(ALICE, "connection_admin", "qa")
        assert not await grants.revoke(ALICE, "connection_admin", "qa")
        assert not await grants.has_role(ALICE, "connection_admin", "qa")
