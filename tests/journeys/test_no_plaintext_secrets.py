"""No connection secret in plaintext anywhere the service writes or sends.

`ib serve` runs as its own process, logging at DEBUG as an operator chasing a problem would set
it, while users walk every path a password takes: an admin request answered first with a wrong
then with the right password, "Test connection" with a typed password, a save that fails its test,
an edit with a new user and password. Then the database file, the service's log output, the
test's captured logs and everything sent to Slack (messages, views, acks, files) are scanned for
every password typed. The in-process journeys (test_connections_*.py, test_admin_requests.py) end
with the same scan.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest

from generator.publisher import Publisher
from handlers.views.connections import ADMIN_OPEN_ACTION, ASK_ACTION, EDIT_ACTION, NEW_ACTION, TEST_ACTION
from providers.model import Catalog
from storage import Database
from tests.bot.test_serve import Served, start_serve
from tests.fixtures.connections import CAP_MODULE, cap_spec
from tests.fixtures.db import sqlite_url
from tests.journeys.test_connections_journey import (
    ConnectionsUser,
    assert_nothing_leaked,
    capture_logs,
    connection_values,
)
from tests.peers.cap import CapServer
from tests.slack import ADMIN, BYSTANDER, DEVELOPER, Driver, FakeSlack

pytestmark = pytest.mark.peers

WRONG = ("wrong-one-4417", "wrong-two-9902", "wrong-three-2718")


@pytest.fixture
def served(tmp_path: Path, fake_slack: FakeSlack, slack_signing_secret: str) -> Iterator[Served]:
    """`ib serve` in a process of its own, with BYSTANDER in IB_ADMINS and DEBUG logging."""
    served = start_serve(
        tmp_path,
        {
            "SLACK_SIGNING_SECRET": slack_signing_secret,
            "SLACK_BOT_TOKEN": fake_slack.bot_token,
            "IB_SLACK_API_URL": fake_slack.api_url,
            "IB_ADMINS": BYSTANDER.id,
            "IB_ALLOW_PRIVATE_URLS": "1",
            "IB_LOG_LEVEL": "DEBUG",
        },
    )
    yield served
    served.stop()


@pytest.fixture
async def served_database(served: Served) -> AsyncIterator[Database]:
    database = Database(sqlite_url(served.folder / "ib.db"))
    yield database
    await database.dispose()


async def publish_as_developer(database: Database, catalog: Catalog, fake: FakeSlack) -> None:
    publisher = Publisher(database)
    await publisher.start()
    try:
        job = await publisher.submit(
            team_id=fake.workspace.team_id,
            user_id=DEVELOPER.id,
            spec=cap_spec(),
            catalog=catalog,
            dedup_key="secrets-journey",
        )
        assert (await publisher.wait(job.id, timeout=120)).state == "published"
    finally:
        await publisher.stop()


async def test_no_password_typed_in_any_journey_is_stored_logged_or_sent_in_plaintext(
    served: Served,
    served_database: Database,
    fake_slack: FakeSlack,
    slack_signing_secret: str,
    cap_server: CapServer,
    cap_catalog: Catalog,
    caplog: pytest.LogCaptureFixture,
) -> None:
    capture_logs(caplog)
    alice, quinn = cap_server.users["alice"], cap_server.users["quinn"]
    await publish_as_developer(served_database, cap_catalog, fake_slack)

    async with Driver(served.base_url, slack_signing_secret, fake_slack) as driver:
        developer = ConnectionsUser(driver, fake_slack, DEVELOPER)
        admin = ConnectionsUser(driver, fake_slack, ADMIN)
        operator = ConnectionsUser(driver, fake_slack, BYSTANDER)  # in IB_ADMINS

        await developer.command(f"connections {CAP_MODULE} dev")
        await developer.wait_view("screen")
        await developer.click(ASK_ACTION)
        await developer.wait_view("ask")
        await developer.submit({"admin": ADMIN.id})
        await developer.wait_view("notice", "Sent")
        request_dm = await admin.wait_dm("Provide connection details")
        await admin.click(ADMIN_OPEN_ACTION, message=request_dm)
        await admin.wait_view("admin")
        await admin.submit({"connection_name": "cap-dev", **connection_values(cap_server, "alice", WRONG[0])})
        await admin.wait_status("failed")
        await admin.submit({"password": alice})
        await admin.wait_view("notice", "Connected")

        await operator.command(f"connections {CAP_MODULE} dev")
        await operator.wait_view("screen", "uses the connection `cap-dev`")
        await operator.click(NEW_ACTION)
        await operator.wait_view("form")
        operator.type({"connection_name": "cap-other", **connection_values(cap_server, "alice", WRONG[1])})
        await operator.click(TEST_ACTION)
        await operator.wait_status("The connection test failed")
        await operator.submit({"password": WRONG[2]})
        await operator.wait_status("nothing was saved")
        await operator.submit({"password": alice})
        await operator.wait_view("screen", "Saved `cap-other`")

        operator.type({"connection": "cap-dev"})
        await operator.click(EDIT_ACTION)
        await operator.wait_view("form", "Edit the SAP OData connection `cap-dev`")
        await operator.submit({"user": "quinn", "password": quinn})
        await operator.wait_view("screen", "Saved `cap-dev`")

    assert served.stop() == 0
    log = served.log()
    assert " DEBUG " in log  # the service did log, in detail
    assert_nothing_leaked(
        [alice, quinn, *WRONG],
        database_url=sqlite_url(served.folder / "ib.db"),
        caplog=caplog,
        fake=fake_slack,
    )
    for password in (alice, quinn, *WRONG):
        assert password not in log, f"{password!r} is in the service's log"
