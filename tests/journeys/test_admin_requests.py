"""Admin requests through Slack: cancelled by the requester, expired, answered once by the
addressed administrator only (forged or retried submissions change nothing), and, for providers
that sign in with a certificate, the generated certificate attached to the administrator's DM."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta

import pytest

from generator.spec import IntegrationSpec, ObjectSelection
from handlers.views.connections import ADMIN_OPEN_ACTION, ASK_ACTION, CANCEL_REQUEST_ACTION
from providers.base import get_provider
from providers.model import Catalog
from storage import AdminRequests
from storage.models import utcnow
from tests.fixtures.connections import CAP_MODULE
from tests.fixtures.salesforce import file_source, org_describes
from tests.journeys.service import RunningService
from tests.journeys.test_connections_journey import (
    ConnectionsUser,
    action_ids,
    assert_nothing_leaked,
    capture_logs,
    connection_values,
    connections_of,
    message_text,
    publish_cap_shop,
)
from tests.peers.cap import CapServer
from tests.slack import ADMIN, BYSTANDER, DEVELOPER, Driver, FakeMessage, FakeSlack, wait_for

pytestmark = pytest.mark.peers


@dataclass
class Asked:
    developer: ConnectionsUser
    admin: ConnectionsUser
    request_dm: FakeMessage  # the administrator's DM with the "Provide connection details" button


async def ask_admin(driver: Driver, fake: FakeSlack, module: str, note: str = "") -> Asked:
    """DEVELOPER asks ADMIN for the connection of ``module`` in dev."""
    developer = ConnectionsUser(driver, fake, DEVELOPER)
    admin = ConnectionsUser(driver, fake, ADMIN)
    await developer.command(f"connections {module} dev")
    await developer.wait_view("screen")
    await developer.click(ASK_ACTION)
    await developer.wait_view("ask")
    await developer.submit({"admin": ADMIN.id, "note": note})
    await developer.wait_view("notice", "Sent")
    return Asked(developer, admin, await admin.wait_dm("Provide connection details"))


@pytest.fixture
async def asked(
    service: RunningService, driver: Driver, fake_slack: FakeSlack, cap_catalog: Catalog
) -> Asked:
    """The CAP shop published, and its connection in dev asked for."""
    await publish_cap_shop(service, cap_catalog, fake_slack)
    return await ask_admin(driver, fake_slack, CAP_MODULE)


def request_id(message: FakeMessage) -> str:
    [button] = [b for block in message.blocks or [] for b in block.get("elements", []) if b.get("action_id")]
    return str(button["value"])


async def test_the_requester_cancels_and_the_button_then_does_nothing(
    asked: Asked, fake_slack: FakeSlack
) -> None:
    developer, admin, request_dm = asked.developer, asked.admin, asked.request_dm
    confirmation = await developer.wait_dm("Cancel request")

    # Only the requester can cancel (a forged click by the administrator is refused).
    await admin.click(CANCEL_REQUEST_ACTION, message=confirmation)
    await admin.wait_ephemeral(f"Only <@{DEVELOPER.id}>, who asked, can cancel")
    await developer.click(CANCEL_REQUEST_ACTION, message=confirmation)
    await wait_for(lambda: "You cancelled" in message_text(confirmation), what="the edited confirmation")
    assert CANCEL_REQUEST_ACTION not in action_ids(confirmation)
    told = await admin.wait_dm("cancelled the request")
    assert "nothing to do" in message_text(told)

    await admin.click(ADMIN_OPEN_ACTION, message=request_dm)
    await admin.wait_ephemeral(f"<@{DEVELOPER.id}> cancelled this request")
    assert fake_slack.current_view(ADMIN.id) is None


async def test_an_expired_request_opens_nothing(
    asked: Asked, service: RunningService, fake_slack: FakeSlack
) -> None:
    admin, request_dm = asked.admin, asked.request_dm
    async with service.database.session() as session:  # eight days later
        row = await AdminRequests(session, connections_of(service).box).get(request_id(request_dm))
        assert row is not None
        row.expires_at = utcnow() - timedelta(days=1)

    await admin.click(ADMIN_OPEN_ACTION, message=request_dm)
    expired = await admin.wait_ephemeral("This request expired on")
    assert f"<@{DEVELOPER.id}> can send a new one" in (expired.text or "")
    assert fake_slack.current_view(ADMIN.id) is None


async def test_only_the_addressed_administrator_completes_a_request_and_only_once(
    asked: Asked,
    service: RunningService,
    driver: Driver,
    fake_slack: FakeSlack,
    cap_server: CapServer,
    database_url: str,
    caplog: pytest.LogCaptureFixture,
) -> None:
    capture_logs(caplog)
    developer, admin, request_dm = asked.developer, asked.admin, asked.request_dm
    alice = cap_server.users["alice"]
    await admin.click(ADMIN_OPEN_ACTION, message=request_dm)
    form = await admin.wait_view("admin")

    # A submission of the administrator's view by someone else (forged) is refused in the ack.
    forged = await driver.view_submission(
        BYSTANDER,
        view=form["id"],
        values={"connection_name": "stolen", **connection_values(cap_server, "alice", alice)},
    )
    assert f"Only <@{ADMIN.id}>" in admin.errors(forged)["connection_name"]

    ack = await admin.submit({"connection_name": "cap-dev", **connection_values(cap_server, "alice", alice)})
    retried = await driver.resend(ack, retry_num=1, retry_reason="http_timeout")
    assert retried.status == 200
    await admin.wait_view("notice", "Connected")
    await service.settled()

    ready = [m for m in developer.dms() if "set up the connection" in message_text(m)]
    assert len(ready) == 1
    assert [c.name for c in await connections_of(service).list_connections("dev")] == ["cap-dev"]
    assert_nothing_leaked([alice], database_url=database_url, caplog=caplog, fake=fake_slack)


async def salesforce_catalog() -> Catalog:
    describes, describe_global = org_describes()
    return await get_provider("salesforce").discover(file_source([*describes, describe_global]))


async def test_a_certificate_for_the_administrator_is_attached_to_their_dm_without_its_key(
    service: RunningService, driver: Driver, fake_slack: FakeSlack
) -> None:
    job = await service.publisher.submit(
        team_id=fake_slack.workspace.team_id,
        user_id=DEVELOPER.id,
        spec=IntegrationSpec(
            provider="salesforce",
            application_name="Sales accounts",
            module_name="sales_accounts",
            objects=[ObjectSelection("Account")],
        ),
        catalog=await salesforce_catalog(),
        dedup_key="journey-sales-accounts",
    )
    assert (await service.publisher.wait(job.id, timeout=120)).state == "published"
    asked = await ask_admin(
        driver, fake_slack, "sales_accounts", note="The integration user is integration@example.com"
    )
    admin, request_dm = asked.admin, asked.request_dm
    certificate_dm = await admin.wait_dm("For the connection of `sales_accounts`")
    [file_id] = certificate_dm.files
    certificate = fake_slack.files[file_id]
    assert certificate.filename == "integration-builder-sales_accounts-dev.pem"
    assert certificate.content is not None and certificate.content.startswith(b"-----BEGIN CERTIFICATE-----")
    assert certificate_dm.channel == fake_slack.workspace.dm_channel(ADMIN.id)
    assert [call.args["users"] for call in fake_slack.calls("conversations.open")] == [ADMIN.id]
    assert "integration-builder-sales_accounts-dev.pem" in message_text(request_dm)
    assert "PRIVATE KEY" not in fake_slack.all_text_sent()

    await admin.click(ADMIN_OPEN_ACTION, message=request_dm)
    await admin.wait_view("admin", "Private key")
    key_block = next(b for b in admin.view["blocks"] if b.get("block_id") == "field_private_key")
    assert key_block["optional"] is True
    assert "certificate generated for this request" in key_block["hint"]["text"]
