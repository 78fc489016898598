"""Publish jobs through the Publisher's public API, as the wizard and the CLI use it."""

from __future__ import annotations

import asyncio
import hashlib

import pytest
from aiohttp import web
from aiohttp.test_utils import TestServer
from sqlalchemy import func, select

from generator.publisher import MAX_ATTEMPTS, Publisher, PublishRefused, next_version
from generator.spec import IntegrationSpec, ObjectSelection, SourceRef
from providers.model import Catalog
from storage import (
    Associations,
    Database,
    Deployments,
    Environments,
    Integrations,
    PublishJobs,
)
from storage.models import IntegrationVersion, PublishJob
from tests.fixtures.corpora import corpus_file
from tests.fixtures.publish import (
    ALICE,
    BOB,
    TEAM,
    RecordingNotifier,
    all_objects,
    shop_integration,
    wheel_member,
    wheel_spec,
)


async def count(database: Database, model: type[PublishJob] | type[IntegrationVersion]) -> int:
    async with database.session() as session:
        return int(await session.scalar(select(func.count()).select_from(model)) or 0)


async def wheel_of(database: Database, module: str, version: str) -> bytes:
    async with database.session() as session:
        integrations = Integrations(session)
        integration = await integrations.by_module(TEAM, module)
        assert integration is not None
        row = await integrations.get_version(integration, version)
        assert row is not None
        return await integrations.artifact(row, row.wheel_filename)


async def test_publish_reports_each_step_and_deploys_the_version_to_dev(
    database: Database, publisher: Publisher, notifier: RecordingNotifier, gwsample: Catalog
) -> None:
    job = await publisher.submit(
        team_id=TEAM, user_id=ALICE, spec=all_objects(gwsample, "gwsample"), catalog=gwsample, dedup_key="k1"
    )
    assert job.state == "queued"
    done = await publisher.wait(job.id)

    assert (done.state, done.error) == ("published", None)
    assert notifier.states(job.id) == ["generating", "building", "publishing"]
    (finished,) = notifier.finished_for(job.id)
    assert (finished.state, finished.version, finished.error, finished.artifacts) == (
        "published",
        "0.1.0",
        None,
        {},
    )
    async with database.session() as session:
        dev = await Environments(session).require("dev")
        (deployment,) = await Deployments(session).in_environment(dev)
        association = await Associations(session).get(deployment.integration_id, dev)
    assert deployment.version.version == "0.1.0"
    assert deployment.version.sha256 == finished.sha256
    assert association is not None and association.connection_id is None


async def test_each_publish_is_a_new_patch_version_built_with_that_version(
    database: Database, publisher: Publisher, shop: Catalog
) -> None:
    for attempt in range(3):
        job = await publisher.submit(
            team_id=TEAM, user_id=ALICE, spec=shop_integration(), catalog=shop, dedup_key=f"bump-{attempt}"
        )
        assert (await publisher.wait(job.id)).state == "published"

    wheel = await wheel_of(database, "shop", "0.1.2")
    assert b'__version__ = "0.1.2"' in wheel_member(wheel, "shop/__init__.py")
    assert wheel_spec(wheel, "shop")["version"] == "0.1.2"
    async with database.session() as session:
        integration = await Integrations(session).by_module(TEAM, "shop")
        assert integration is not None
        versions = [v.version for v in await Integrations(session).versions(integration)]
    assert versions == ["0.1.2", "0.1.1", "0.1.0"]


def test_next_version_bumps_the_patch_and_honours_a_higher_requested_version() -> None:
    assert next_version([]) == "0.1.0"
    assert next_version(["0.1.0", "0.1.9", "0.1.10"]) == "0.1.11"
    assert next_version(["0.1.3"], "0.1.0") == "0.1.4"
    assert next_version(["0.1.3"], "1.0.0") == "1.0.0"
    assert next_version([], "2.3.4") == "2.3.4"


async def test_a_repeated_dedup_key_returns_the_same_job_and_publishes_once(
    database: Database, publisher: Publisher, notifier: RecordingNotifier, shop: Catalog
) -> None:
    spec = shop_integration()
    first, second = await asyncio.gather(
        publisher.submit(team_id=TEAM, user_id=ALICE, spec=spec, catalog=shop, dedup_key="click-1"),
        publisher.submit(team_id=TEAM, user_id=ALICE, spec=spec, catalog=shop, dedup_key="click-1"),
    )
    assert first.id == second.id
    await publisher.wait(first.id)
    again = await publisher.submit(team_id=TEAM, user_id=ALICE, spec=spec, catalog=shop, dedup_key="click-1")

    assert again.id == first.id and again.state == "published"
    assert await count(database, PublishJob) == 1
    assert await count(database, IntegrationVersion) == 1
    assert len(notifier.finished_for(first.id)) == 1


async def test_twenty_concurrent_publishes_all_succeed_once(
    database: Database, publisher: Publisher, notifier: RecordingNotifier, shop: Catalog
) -> None:
    jobs = await asyncio.gather(
        *(
            publisher.submit(
                team_id=TEAM,
                user_id=ALICE,
                spec=shop_integration(f"shop_{n}"),
                catalog=shop,
                dedup_key=f"c{n}",
            )
            for n in range(20)
        )
    )
    done = await asyncio.gather(*(publisher.wait(job.id) for job in jobs))

    assert [job.state for job in done] == ["published"] * 20
    assert await count(database, IntegrationVersion) == 20
    async with database.session() as session:
        assert len(await Integrations(session).in_team(TEAM)) == 20
    assert sorted(entry.job_id for entry in notifier.finished_calls) == sorted(job.id for job in jobs)


async def test_publishes_of_one_integration_never_interleave(
    database: Database, publisher: Publisher, shop: Catalog
) -> None:
    jobs = await asyncio.gather(
        *(
            publisher.submit(
                team_id=TEAM, user_id=ALICE, spec=shop_integration(), catalog=shop, dedup_key=f"s{n}"
            )
            for n in range(5)
        )
    )
    done = await asyncio.gather(*(publisher.wait(job.id) for job in jobs))

    assert {job.state for job in done} == {"published"}
    async with database.session() as session:
        integration = await Integrations(session).by_module(TEAM, "shop")
        assert integration is not None
        versions = sorted(v.version for v in await Integrations(session).versions(integration))
    assert versions == ["0.1.0", "0.1.1", "0.1.2", "0.1.3", "0.1.4"]


@pytest.mark.parametrize(
    ("environment", "reason"),
    [
        (
            "qa",
            "the wizard publishes only to development environments; deploy a published version to qa with "
            "`ib deploy` or /ib deploy",
        ),
        ("staging", "there is no environment named 'staging'; see `ib env list`"),
    ],
)
async def test_only_existing_development_environments_are_publish_targets(
    database: Database, publisher: Publisher, shop: Catalog, environment: str, reason: str
) -> None:
    async with database.session() as session:
        await Environments(session).create("qa")
    with pytest.raises(PublishRefused) as refused:
        await publisher.submit(
            team_id=TEAM,
            user_id=ALICE,
            spec=shop_integration(),
            catalog=shop,
            environment=environment,
            dedup_key="k",
        )
    assert str(refused.value) == reason
    assert await count(database, PublishJob) == 0


async def test_an_open_integration_publishes_once(
    database: Database, publisher: Publisher, shop: Catalog
) -> None:
    spec = shop_integration(open=True)
    job = await publisher.submit(team_id=TEAM, user_id=ALICE, spec=spec, catalog=shop, dedup_key="open-1")
    assert (await publisher.wait(job.id)).state == "published"

    with pytest.raises(PublishRefused) as refused:
        await publisher.submit(team_id=TEAM, user_id=ALICE, spec=spec, catalog=shop, dedup_key="open-2")
    assert str(refused.value) == (
        "shop is an open integration: it was published once and Integration Builder never regenerates "
        "or republishes it"
    )
    assert await count(database, IntegrationVersion) == 1


async def test_a_second_open_publish_queued_before_the_first_finished_fails_with_the_reason(
    database: Database, shop: Catalog
) -> None:
    notifier = RecordingNotifier()
    idle = Publisher(database, notifier=notifier)  # not started: both jobs stay queued
    spec = shop_integration(open=True)
    first = await idle.submit(team_id=TEAM, user_id=ALICE, spec=spec, catalog=shop, dedup_key="o1")
    second = await idle.submit(team_id=TEAM, user_id=ALICE, spec=spec, catalog=shop, dedup_key="o2")
    await idle.execute(first.id)
    await idle.execute(second.id)

    assert (await idle.wait(first.id)).state == "published"
    failed = await idle.wait(second.id)
    assert failed.state == "failed"
    assert failed.error is not None and "is an open integration" in failed.error
    assert await count(database, IntegrationVersion) == 1


async def test_a_module_name_belongs_to_its_owner(
    database: Database, publisher: Publisher, shop: Catalog
) -> None:
    job = await publisher.submit(
        team_id=TEAM, user_id=ALICE, spec=shop_integration(), catalog=shop, dedup_key="a"
    )
    await publisher.wait(job.id)

    with pytest.raises(PublishRefused) as refused:
        await publisher.submit(
            team_id=TEAM, user_id=BOB, spec=shop_integration(), catalog=shop, dedup_key="b"
        )
    assert str(refused.value) == (
        f"module name shop belongs to another integration in this workspace (owned by <@{ALICE}>); "
        "choose another module name"
    )
    other_team = await publisher.submit(
        team_id="T0OTHER", user_id=BOB, spec=shop_integration("shop_other"), catalog=shop, dedup_key="c"
    )
    assert (await publisher.wait(other_team.id)).state == "published"


async def test_another_workspace_cannot_take_a_name_the_shared_index_serves(
    publisher: Publisher, shop: Catalog
) -> None:
    job = await publisher.submit(
        team_id=TEAM, user_id=ALICE, spec=shop_integration(), catalog=shop, dedup_key="a"
    )
    await publisher.wait(job.id)

    with pytest.raises(PublishRefused, match="the dev package index already serves a package named shop"):
        await publisher.submit(
            team_id="T0OTHER", user_id=BOB, spec=shop_integration(), catalog=shop, dedup_key="b"
        )


async def test_a_spec_that_does_not_fit_the_catalog_is_refused_before_queueing(
    database: Database, publisher: Publisher, shop: Catalog
) -> None:
    spec = shop_integration()
    spec.objects[0].name = "Invoices"
    with pytest.raises(PublishRefused) as refused:
        await publisher.submit(team_id=TEAM, user_id=ALICE, spec=spec, catalog=shop, dedup_key="k")
    assert str(refused.value) == "object 'Invoices' does not exist in SHOP_SRV"
    assert await count(database, PublishJob) == 0


async def test_without_a_catalog_a_file_source_cannot_be_read_again(publisher: Publisher) -> None:
    spec = shop_integration()
    spec.source = SourceRef(kind="file", location="shop.edmx")
    with pytest.raises(PublishRefused) as refused:
        await publisher.submit(team_id=TEAM, user_id=ALICE, spec=spec, catalog=None, dedup_key="k")
    assert str(refused.value) == (
        "the metadata this spec was made from cannot be read again (it was a file or pasted text); "
        "give the metadata again"
    )


async def test_an_environment_removed_while_publishing_fails_the_job_with_the_files_attached(
    database: Database, publisher: Publisher, notifier: RecordingNotifier, shop: Catalog
) -> None:
    async with database.session() as session:
        await Environments(session).create("sandbox", development=True)

    async def remove_sandbox(job: PublishJob, state: str) -> None:
        if state == "building":
            async with database.session() as session:
                environments = Environments(session)
                await environments.remove(await environments.require("sandbox"))

    notifier.on_progress = remove_sandbox
    job = await publisher.submit(
        team_id=TEAM,
        user_id=ALICE,
        spec=shop_integration(),
        catalog=shop,
        environment="sandbox",
        dedup_key="k",
    )
    failed = await publisher.wait(job.id)

    assert failed.state == "failed"
    assert failed.error == "environment sandbox was removed while publishing; nothing was published"
    (finished,) = notifier.finished_for(job.id)
    assert finished.error == failed.error
    assert sorted(finished.artifacts) == ["shop-0.1.0-py3-none-any.whl", "shop-0.1.0.tar.gz"]
    assert wheel_spec(finished.artifacts["shop-0.1.0-py3-none-any.whl"], "shop")["version"] == "0.1.0"
    assert await count(database, IntegrationVersion) == 0


async def test_a_job_interrupted_mid_way_resumes_at_start_and_publishes_once(
    database: Database, shop: Catalog
) -> None:
    crashed = Publisher(database, notifier=RecordingNotifier())  # never started: it "died"
    job = await crashed.submit(
        team_id=TEAM, user_id=ALICE, spec=shop_integration(), catalog=shop, dedup_key="k"
    )
    async with database.session() as session:
        jobs = PublishJobs(session)
        row = await jobs.get(job.id)
        assert row is not None
        assert await jobs.claim(row)
        assert await jobs.advance(job.id, "building", version="0.1.0")

    notifier = RecordingNotifier()
    restarted = Publisher(database, notifier=notifier)
    await restarted.start()
    try:
        done = await restarted.wait(job.id)
    finally:
        await restarted.stop()

    assert (done.state, done.attempts) == ("published", 2)
    assert [entry.version for entry in notifier.finished_for(job.id)] == ["0.1.0"]
    assert await count(database, IntegrationVersion) == 1


async def test_the_final_notification_is_sent_once_even_when_the_first_try_fails(
    database: Database, shop: Catalog
) -> None:
    outage = RecordingNotifier(fail_finished=True)
    first = Publisher(database, notifier=outage)
    await first.start()
    try:
        job = await first.submit(
            team_id=TEAM, user_id=ALICE, spec=shop_integration(), catalog=shop, dedup_key="k"
        )
        assert (await first.wait(job.id)).state == "published"
    finally:
        await first.stop()
    assert outage.finished_calls == []

    notifier = RecordingNotifier()
    for _ in range(2):
        later = Publisher(database, notifier=notifier)
        await later.start()
        await later.stop()  # lets the jobs resumed by start() end first
    assert [entry.version for entry in notifier.finished_for(job.id)] == ["0.1.0"]


async def test_a_job_that_keeps_killing_its_process_is_failed(database: Database, shop: Catalog) -> None:
    crashed = Publisher(database, notifier=RecordingNotifier())
    job = await crashed.submit(
        team_id=TEAM, user_id=ALICE, spec=shop_integration(), catalog=shop, dedup_key="k"
    )
    for _ in range(MAX_ATTEMPTS):
        async with database.session() as session:
            jobs = PublishJobs(session)
            row = await jobs.get(job.id)
            assert row is not None and await jobs.claim(row)

    notifier = RecordingNotifier()
    await Publisher(database, notifier=notifier).execute(job.id)

    (finished,) = notifier.finished_for(job.id)
    assert finished.error == f"publishing was interrupted {MAX_ATTEMPTS} times; publish again"


async def test_published_artifacts_are_the_stored_bytes(
    database: Database, publisher: Publisher, shop: Catalog
) -> None:
    job = await publisher.submit(
        team_id=TEAM, user_id=ALICE, spec=shop_integration(), catalog=shop, dedup_key="k"
    )
    await publisher.wait(job.id)
    async with database.session() as session:
        integration = await Integrations(session).by_module(TEAM, "shop")
        assert integration is not None
        (version,) = await Integrations(session).versions(integration)
        wheel = await Integrations(session).artifact(version, version.wheel_filename)
        assert version.sdist_filename is not None
        sdist = await Integrations(session).artifact(version, version.sdist_filename)
    assert hashlib.sha256(wheel).hexdigest() == version.sha256
    assert hashlib.sha256(sdist).hexdigest() == version.sdist_sha256


async def test_without_a_catalog_the_metadata_url_of_the_spec_is_read_again(
    database: Database, publisher: Publisher, monkeypatch: pytest.MonkeyPatch
) -> None:
    document = corpus_file("sap-v2/GWSAMPLE_BASIC.edmx").read_bytes()

    async def metadata(request: web.Request) -> web.Response:
        return web.Response(body=document, content_type="application/xml")

    app = web.Application()
    app.router.add_get("/sap/opu/odata/sap/GWSAMPLE_BASIC/$metadata", metadata)
    server = TestServer(app, host="127.0.0.1")
    await server.start_server()
    monkeypatch.setenv("IB_ALLOW_PRIVATE_URLS", "1")
    try:
        spec = IntegrationSpec(
            provider="sap-odata",
            application_name="GW",
            module_name="gw_again",
            objects=[ObjectSelection("ProductSet")],
            source=SourceRef(kind="url", location=str(server.make_url("/sap/opu/odata/sap/GWSAMPLE_BASIC/"))),
        )
        job = await publisher.submit(team_id=TEAM, user_id=ALICE, spec=spec, catalog=None, dedup_key="again")
        assert (await publisher.wait(job.id)).state == "published"

        spec.source = SourceRef(kind="url", location=str(server.make_url("/sap/opu/odata/sap/NOWHERE/")))
        with pytest.raises(
            PublishRefused, match=r"^cannot read the metadata again from http://127\.0\.0\.1:"
        ):
            await publisher.submit(team_id=TEAM, user_id=ALICE, spec=spec, catalog=None, dedup_key="gone")
    finally:
        await server.close()
