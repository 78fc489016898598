"""From `/ib new` to a published package built from the real CAP server's $metadata."""

from __future__ import annotations

import logging
from pathlib import Path

import pytest
from sqlalchemy import make_url, select

from bot.log import QUIET_LOGGERS
from storage import Database, Integrations
from storage.models import PublishJob
from tests.journeys.service import RunningService
from tests.journeys.wizard_user import WizardUser
from tests.peers.cap import CapServer
from tests.slack import Driver, FakeSlack, wait_for

pytestmark = pytest.mark.peers

PASSWORD = "alice-secret"


def database_files(database_url: str) -> list[Path]:
    """The SQLite file and its WAL/shared-memory companions (empty for other databases)."""
    url = make_url(database_url)
    if url.get_backend_name() != "sqlite" or not url.database:
        return []
    main = Path(url.database)
    return [path for path in (main, Path(f"{main}-wal"), Path(f"{main}-shm")) if path.exists()]


async def jobs_of(database: Database, draft_id: str) -> list[PublishJob]:
    async with database.session() as session:
        return list(await session.scalars(select(PublishJob).where(PublishJob.draft_id == draft_id)))


async def test_a_developer_publishes_an_integration_from_a_metadata_url_with_a_password(
    service: RunningService,
    driver: Driver,
    fake_slack: FakeSlack,
    cap_server: CapServer,
    database: Database,
    database_url: str,
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.DEBUG)
    for name in QUIET_LOGGERS:  # as `ib serve` configures them: these log request bodies at DEBUG
        caplog.set_level(logging.WARNING, logger=name)
    user = WizardUser(driver, fake_slack)

    await user.start()
    await user.choose_provider("sap-odata")
    ack = await user.give_source(metadata_url=cap_server.v4_url, user="alice", password=PASSWORD)
    assert ack.json["response_action"] == "update"  # a Loading view at once, the objects after
    await user.wait_step("objects")
    assert "CatalogService" in user.text and "4 objects" in user.text
    assert set(await user.search("objects_rw")) == {"Categories", "Products", "Orders", "Suppliers"}

    await user.pick_objects(
        read_write=["Products", "Orders", "Suppliers"],
        read_only=["Categories"],
        customize="Products: name, price, currency\nProducts.price = unit_price",
    )
    await user.wait_step("settings")
    assert user.initial_value("module_name") == "catalog_service"  # suggested from the service name
    await user.fill_settings(
        application_name="Shop catalog",
        module_name="shop_catalog",
        description="Products and orders of the CAP shop",
        icon=":shopping_trolley:",
    )
    review = await user.wait_step("review")
    text = user.text
    assert "shop_catalog" in text and "Shop catalog" in text and cap_server.v4_url in text
    assert "Products.price = unit_price" in text
    draft_id = review["private_metadata"]

    await user.submit()
    await user.wait_step("publishing")
    [queued] = await wait_for(lambda: jobs_of(database, draft_id), what="the publish job")
    job = await service.publisher.wait(queued.id, timeout=120)
    assert (job.state, job.error) == ("published", None)

    async with database.session() as session:
        integration = await Integrations(session).by_module(fake_slack.workspace.team_id, "shop_catalog")
        assert integration is not None
        versions = await Integrations(session).versions(integration)
    assert [v.version for v in versions] == ["0.1.0"]
    assert (await service.draft(draft_id)).status == "published"
    spec = versions[0].spec
    access = {o["name"]: o["access"] for o in spec["objects"]}
    # Suppliers is @readonly in CAP: chosen to read and write, published read only.
    assert access == {
        "Products": "read-write",
        "Orders": "read-write",
        "Suppliers": "read-only",
        "Categories": "read-only",
    }
    products = next(o for o in spec["objects"] if o["name"] == "Products")
    assert products["attributes"] == ["name", "price", "currency"] and products["renames"] == {
        "price": "unit_price"
    }
    assert (spec["application_name"], spec["icon"], spec["open"]) == (
        "Shop catalog",
        ":shopping_trolley:",
        False,
    )

    assert PASSWORD not in fake_slack.all_text_sent()
    for path in database_files(database_url):
        assert PASSWORD.encode() not in path.read_bytes(), path
    assert PASSWORD not in caplog.text
