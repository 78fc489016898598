"""A connection admin manages connections in the `/ib connections` modal: new (with inline
errors and "Test connection"), associate, edit (a blank secret keeps its value), re-test, delete
(refused while in use), and other environments where they have no role."""

from __future__ import annotations

import pytest

from generator.publisher import deploy
from handlers.connections import UNAVAILABLE
from handlers.views.connections import (
    BACK_ACTION,
    DELETE_ACTION,
    EDIT_ACTION,
    ENV_ACTION,
    NEW_ACTION,
    PICK_ACTION,
    RETEST_ACTION,
    TEST_ACTION,
    target_value,
)
from providers.model import Catalog
from storage import Connections, Database, Environments
from tests.fixtures.connections import CAP_MODULE, add_environment, grant, serving
from tests.journeys.service import RunningService, slack_settings
from tests.journeys.test_connections_journey import (
    ConnectionsUser,
    assert_nothing_leaked,
    capture_logs,
    connection_values,
    connections_of,
    publish_cap_shop,
)
from tests.peers.cap import CapServer
from tests.slack import ADMIN, Driver, FakeSlack

pytestmark = pytest.mark.peers

OLD_PASSWORD = "a-wrong-guess-5512"


async def test_a_connection_admin_creates_tests_edits_associates_and_deletes_connections(
    service: RunningService,
    driver: Driver,
    fake_slack: FakeSlack,
    cap_server: CapServer,
    cap_catalog: Catalog,
    database_url: str,
    caplog: pytest.LogCaptureFixture,
) -> None:
    capture_logs(caplog)
    await publish_cap_shop(service, cap_catalog, fake_slack)
    await grant(service.database, ADMIN.id, "connection_admin", "dev")
    admin = ConnectionsUser(driver, fake_slack, ADMIN)
    alice, quinn = cap_server.users["alice"], cap_server.users["quinn"]

    # Without arguments: pick the integration and environment first.
    await admin.command("connections")
    await admin.wait_view("pick", "Which integration")
    await admin.choose(PICK_ACTION, target_value(CAP_MODULE, "dev"))
    await admin.wait_view("screen", "There is no SAP OData connection in *dev* yet")

    await admin.click(NEW_ACTION)
    await admin.wait_view("form")
    bad_name = await admin.submit(
        {"connection_name": "-nope", **connection_values(cap_server, "alice", alice)}
    )
    assert "A connection name is 1 to 64 letters" in admin.errors(bad_name)["connection_name"]
    # A value the provider cannot use is reported under its input once the ack is sent.
    await admin.submit({"connection_name": "cap-main", "sap_client": "10x"})
    assert "three digits" in await admin.wait_status("SAP client")
    sap_client = next(b for b in admin.view["blocks"] if b.get("block_id") == "field_sap_client")
    assert "three digits" in sap_client["hint"]["text"]
    assert (admin.typed("connection_name"), admin.typed("password")) == ("cap-main", alice)  # kept as typed

    # Test before saving: a wrong password fails, nothing is stored; then the right one.
    admin.type({"sap_client": "100", "password": OLD_PASSWORD})
    await admin.click(TEST_ACTION)
    assert "401" in await admin.wait_status("The connection test failed")
    admin.type({"password": alice})
    await admin.click(TEST_ACTION)
    await admin.wait_status("The connection test passed")
    assert await connections_of(service).list_connections("dev") == []
    await admin.submit()
    await admin.wait_view("screen", "uses `cap-main` in *dev* now")
    assert "In *dev* it uses the connection `cap-main` (test passed)" in admin.text

    # A second connection, associated on save; then back to the first with Associate.
    await admin.click(NEW_ACTION)
    await admin.wait_view("form")
    await admin.submit({"connection_name": "cap-quinn", **connection_values(cap_server, "quinn", quinn)})
    await admin.wait_view("screen", "uses `cap-quinn` in *dev* now")
    await admin.submit({"connection": "cap-main"})
    await admin.wait_view("screen", "uses `cap-main` in *dev* now")

    # Edit: the stored password is not shown and a blank one keeps it.
    admin.type({"connection": "cap-main"})
    await admin.click(EDIT_ACTION)
    await admin.wait_view("form", "Edit the SAP OData connection `cap-main`")
    password = next(b for b in admin.view["blocks"] if b.get("block_id") == "field_password")
    assert "initial_value" not in password["element"] and password["optional"] is True
    await admin.submit({"sap_client": "200"})
    await admin.wait_view("screen", "Saved `cap-main`")
    edited = await connections_of(service).get_connection("dev", "cap-main")
    assert (edited.values["sap_client"], edited.values["user"], edited.secrets_set) == (
        "200",
        "alice",
        ("password",),
    )

    admin.type({"connection": "cap-main"})
    await admin.click(RETEST_ACTION)
    await admin.wait_view("screen", "The test of `cap-main` passed")

    # Delete: refused while an integration uses it, done when none does.
    admin.type({"connection": "cap-main"})
    await admin.click(DELETE_ACTION)
    refused = await admin.wait_status("is used by")
    assert f"Connection 'cap-main' is used by {CAP_MODULE} in dev" in refused
    admin.type({"connection": "cap-quinn"})
    await admin.click(DELETE_ACTION)
    await admin.wait_status("Deleted the connection `cap-quinn`")
    assert [c.name for c in await connections_of(service).list_connections("dev")] == ["cap-main"]

    # In an environment where they hold no role, they can only ask.
    await add_environment(service.database, "qa")
    await deploy(
        service.database,
        team_id=fake_slack.workspace.team_id,
        module_name=CAP_MODULE,
        environment="qa",
        actor=ADMIN.id,
        admins=[ADMIN.id],
    )
    await admin.click(NEW_ACTION)
    await admin.wait_view("form")
    await admin.click(BACK_ACTION)
    await admin.wait_view("screen")
    await admin.choose(ENV_ACTION, "qa")
    await admin.wait_view("screen", "No connection in *qa* yet")
    assert "needs the connection_admin role" in admin.text and "New connection" not in admin.text

    await service.settled()
    assert_nothing_leaked(
        [alice, quinn, OLD_PASSWORD], database_url=database_url, caplog=caplog, fake=fake_slack
    )


async def test_connections_of_an_unknown_integration_or_environment_say_what_is_wrong(
    service: RunningService, driver: Driver, fake_slack: FakeSlack, cap_catalog: Catalog
) -> None:
    await publish_cap_shop(service, cap_catalog, fake_slack)
    admin = ConnectionsUser(driver, fake_slack, ADMIN)

    await admin.command("connections nothing_here")
    await admin.wait_view("notice", "no integration named nothing_here in this workspace")
    await admin.command(f"connections {CAP_MODULE} prod")
    await admin.wait_view("notice", f"`{CAP_MODULE}` is not deployed to *prod*")
    await admin.command("connections a b c")
    assert fake_slack.ephemerals_for(ADMIN.id)[-1].text == "Usage: `/ib connections [<integration> [<env>]]`"


async def test_with_more_connections_than_a_select_lists_the_admin_searches_them(
    service: RunningService,
    driver: Driver,
    fake_slack: FakeSlack,
    cap_server: CapServer,
    cap_catalog: Catalog,
) -> None:
    await publish_cap_shop(service, cap_catalog, fake_slack)
    await grant(service.database, ADMIN.id, "connection_admin", "dev")
    async with service.database.session() as session:
        dev = await Environments(session).require("dev")
        for n in range(120):
            await Connections(session, connections_of(service).box).create(
                dev,
                provider="sap-odata",
                name=f"cap-{n:03}",
                settings={"url": cap_server.v2_url, "user": "alice"},
                secret={"password": cap_server.users["alice"]},
                created_by=ADMIN.id,
            )
    admin = ConnectionsUser(driver, fake_slack, ADMIN)

    await admin.command(f"connections {CAP_MODULE}")
    await admin.wait_view("screen", "No connection in *dev* yet")
    found = await driver.block_suggestion(ADMIN, "connection", "cap-11")
    everything = await driver.block_suggestion(ADMIN, "connection", "")
    await admin.submit({"connection": "cap-115"})
    await admin.wait_view("screen", "uses `cap-115` in *dev* now")

    assert [o["value"] for o in found.json["options"]] == [f"cap-{n}" for n in range(110, 120)]
    assert len(everything.json["options"]) == 100


async def test_without_secret_keys_connections_say_why_they_are_unavailable(
    database: Database, database_url: str, fake_slack: FakeSlack, slack_signing_secret: str
) -> None:
    settings = slack_settings(database_url, fake_slack, slack_signing_secret)
    async with (
        serving(database, None, settings=settings) as url,
        Driver(url, slack_signing_secret, fake_slack) as driver,
    ):
        await driver.slash_command(ADMIN, f"connections {CAP_MODULE} dev")

    assert fake_slack.ephemerals_for(ADMIN.id)[-1].text == UNAVAILABLE
    assert fake_slack.calls("views.open") == []
