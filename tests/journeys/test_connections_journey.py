"""Issue 5 end to end, through Slack: a developer without the credentials asks an administrator,
the administrator connects dev from their DM, an app in a fresh venv uses it with only the two
environment variables; then qa is connected through the modal with another CAP user.

Also the helpers the other connection journeys share: a Slack user in the connections modal, the
published CAP integration, and the scan for secrets in everything the service wrote or sent.
"""

from __future__ import annotations

import asyncio
import copy
import logging
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import pytest

from bot.log import QUIET_LOGGERS
from generator.publisher import deploy
from handlers.connections_service import ConnectionService
from handlers.views.connections import (
    ADMIN_OPEN_ACTION,
    ASK_ACTION,
    NEW_ACTION,
    OPEN_ACTION,
    TEST_ACTION,
    kind_of,
    target_value,
)
from providers.model import Catalog
from tests.connections.test_runtime_journey import cap_users, index_url, run_app
from tests.fixtures.connections import CAP_MODULE, add_environment, cap_spec, grant, runtime_token
from tests.fixtures.venvs import fresh_venv, pip_install
from tests.journeys.service import RunningService
from tests.journeys.test_wizard_happy_path import database_files
from tests.journeys.wizard_user import STEP_TIMEOUT_S, visible_text
from tests.peers.cap import CapServer
from tests.slack import (
    ADMIN,
    BYSTANDER,
    DEVELOPER,
    AckResponse,
    Driver,
    FakeMessage,
    FakeSlack,
    SlackUser,
    wait_for,
)
from tests.slack.blockkit import chosen_state, iter_elements

pytestmark = pytest.mark.peers

WRONG_PASSWORD = "not-alices-password-7311"


def message_text(message: FakeMessage) -> str:
    return "\n".join([message.text or "", visible_text({"blocks": message.blocks or []})])


def action_ids(message: FakeMessage) -> list[str]:
    return [ref.action_id for ref in iter_elements(message.blocks or [])]


class ConnectionsUser:
    """A Slack user in the connections modal and their DMs, as far as Slack's client lets them."""

    def __init__(self, driver: Driver, fake: FakeSlack, user: SlackUser) -> None:
        self.driver = driver
        self.fake = fake
        self.user = user

    @property
    def view(self) -> dict[str, Any]:
        shown = self.fake.current_view(self.user.id)
        assert shown is not None, f"{self.user.name} has no modal open"
        return shown

    @property
    def kind(self) -> str:
        shown = self.fake.current_view(self.user.id)
        return kind_of(str(shown.get("callback_id", ""))) if shown else ""

    @property
    def text(self) -> str:
        return visible_text(self.view)

    def typed(self, action_id: str) -> str:
        """What the user's Slack client holds in a text input of the modal."""
        for entries in self.view["state"]["values"].values():
            if action_id in entries:
                return str(entries[action_id].get("value") or "")
        return ""

    def status(self) -> str:
        block = next((b for b in self.view["blocks"] if b.get("block_id") == "status"), None)
        return str(block["text"]["text"]) if block else ""

    async def wait_view(self, kind: str, containing: str = "") -> dict[str, Any]:
        def shown() -> bool:
            return self.kind == kind and containing in self.text

        await wait_for(shown, STEP_TIMEOUT_S, what=f"a {kind} view with {containing!r} (now {self.kind!r})")
        return self.view

    async def wait_status(self, containing: str) -> str:
        """The status line once it says ``containing`` (the slow work runs after the ack)."""
        await wait_for(lambda: containing in self.status(), STEP_TIMEOUT_S, what=f"status {containing!r}")
        return self.status()

    async def command(self, text: str) -> AckResponse:
        ack = await self.driver.slash_command(self.user, text)
        assert ack.status == 200, ack
        return ack

    async def click(self, action_id: str, **where: Any) -> AckResponse:
        ack = await self.driver.block_action(self.user, action_id, **where)
        assert ack.status == 200, ack
        return ack

    async def choose(self, action_id: str, value: str) -> AckResponse:
        ack = await self.driver.block_action(self.user, action_id, value)
        assert ack.status == 200, ack
        return ack

    def type(self, values: dict[str, Any]) -> None:
        """Type into (or pick in) the inputs of the modal without submitting it, as a user does
        before pressing a button of the modal."""
        shown = self.view
        inputs = {ref.action_id: ref for ref in iter_elements(shown["blocks"]) if ref.in_input}
        for action_id, value in values.items():
            ref = inputs[action_id]
            entry = chosen_state(ref.element, value)
            self.fake.workspace.type_into(shown["id"], {ref.block_id: {action_id: entry}})

    async def submit(self, values: dict[Any, Any] | None = None) -> AckResponse:
        ack = await self.driver.view_submission(self.user, values=values)
        assert ack.status == 200, ack
        return ack

    @staticmethod
    def errors(ack: AckResponse) -> dict[str, str]:
        answer = ack.json or {}
        return dict(answer.get("errors", {})) if answer.get("response_action") == "errors" else {}

    def dms(self) -> list[FakeMessage]:
        return self.fake.messages_for(self.user.id)

    async def wait_dm(self, containing: str) -> FakeMessage:
        def found() -> FakeMessage | None:
            return next((m for m in reversed(self.dms()) if containing in message_text(m)), None)

        return await wait_for(found, STEP_TIMEOUT_S, what=f"a DM to {self.user.name} with {containing!r}")

    async def wait_ephemeral(self, containing: str) -> FakeMessage:
        def found() -> FakeMessage | None:
            messages = self.fake.ephemerals_for(self.user.id)
            return next((m for m in reversed(messages) if containing in (m.text or "")), None)

        return await wait_for(
            found, STEP_TIMEOUT_S, what=f"an ephemeral to {self.user.name} with {containing!r}"
        )


def connection_values(cap: CapServer, user: str, password: str) -> dict[str, str]:
    return {"url": cap.v2_url, "user": user, "password": password}


async def publish_cap_shop(service: RunningService, catalog: Catalog, fake: FakeSlack) -> None:
    """The CAP shop integration published to dev by DEVELOPER, its owner."""
    job = await service.publisher.submit(
        team_id=fake.workspace.team_id,
        user_id=DEVELOPER.id,
        spec=cap_spec(),
        catalog=catalog,
        dedup_key=f"journey-{CAP_MODULE}",
    )
    assert (await service.publisher.wait(job.id, timeout=120)).state == "published"


def connections_of(service: RunningService) -> ConnectionService:
    connections = service.bot.services.connections
    assert connections is not None
    return connections


def capture_logs(caplog: pytest.LogCaptureFixture) -> None:
    """Everything the service logs, as `ib serve` configures its loggers."""
    caplog.set_level(logging.DEBUG)
    for name in QUIET_LOGGERS:  # as `ib serve` configures them: these log request bodies at DEBUG
        caplog.set_level(logging.WARNING, logger=name)


def assert_nothing_leaked(
    secrets: Iterable[str], *, database_url: str, caplog: pytest.LogCaptureFixture, fake: FakeSlack
) -> None:
    """No secret in the database files, the logs, or anything sent to Slack (messages, views,
    acks, files)."""
    sent = fake.all_text_sent()
    files = database_files(database_url)
    for secret in secrets:
        assert secret not in sent, f"{secret!r} was sent to Slack"
        assert secret not in caplog.text, f"{secret!r} was logged"
        for path in files:
            assert secret.encode() not in path.read_bytes(), f"{secret!r} is in {path.name}"


async def app_run(python: Path, service: RunningService, token: str, key: int) -> dict[str, Any]:
    return await run_app(python, service.url, token, key)


@pytest.mark.slow
async def test_a_developer_asks_an_admin_who_connects_dev_and_apps_in_dev_and_qa_use_their_connections(
    service: RunningService,
    driver: Driver,
    fake_slack: FakeSlack,
    cap_server: CapServer,
    cap_catalog: Catalog,
    database_url: str,
    tmp_path: Path,
    caplog: pytest.LogCaptureFixture,
) -> None:
    capture_logs(caplog)
    database = service.database
    developer = ConnectionsUser(driver, fake_slack, DEVELOPER)
    admin = ConnectionsUser(driver, fake_slack, ADMIN)
    bystander = ConnectionsUser(driver, fake_slack, BYSTANDER)
    alice, quinn = cap_server.users["alice"], cap_server.users["quinn"]
    await publish_cap_shop(service, cap_catalog, fake_slack)

    # The owner has no connection_admin role: they can only ask.
    await developer.command(f"connections {CAP_MODULE} dev")
    await developer.wait_view("screen", "No connection in *dev* yet")
    assert "needs the connection_admin role" in developer.text
    assert "New connection" not in developer.text
    await developer.click(ASK_ACTION)
    await developer.wait_view("ask")
    refused = await developer.submit({"admin": DEVELOPER.id})
    assert "not yourself" in developer.errors(refused)["admin"]
    await developer.submit({"admin": ADMIN.id, "note": "A technical user for the shop app, please."})
    await developer.wait_view("notice", "Sent")

    request_dm = await admin.wait_dm("Provide connection details")
    asked = message_text(request_dm)
    assert f"<@{DEVELOPER.id}> asks you" in asked and f"`{CAP_MODULE}`" in asked and "*dev*" in asked
    assert "SU01" in asked  # the SAP provider's instructions
    assert "A technical user for the shop app, please." in asked
    await developer.wait_dm("Cancel request")

    # Someone else presses the administrator's button: refused, privately, and no form opens.
    await bystander.click(ADMIN_OPEN_ACTION, message=request_dm)
    refusal = await bystander.wait_ephemeral(f"Only <@{ADMIN.id}>")
    assert refusal.visible_to == BYSTANDER.id
    assert fake_slack.current_view(BYSTANDER.id) is None

    # The administrator's first try has a wrong password: the test fails, the form stays filled.
    await admin.click(ADMIN_OPEN_ACTION, message=request_dm)
    await admin.wait_view("admin", f"<@{DEVELOPER.id}> asks you")
    ack = await admin.submit(
        {"connection_name": "cap-dev", **connection_values(cap_server, "alice", WRONG_PASSWORD)}
    )
    assert ack.json["response_action"] == "update"
    failed = await admin.wait_status("failed")
    assert "nothing was saved" in failed and admin.kind == "admin"
    assert await connections_of(service).list_connections("dev") == []
    as_first_shown = copy.deepcopy(request_dm)  # a client that did not refresh the DM yet
    await admin.submit({"password": alice})
    await admin.wait_view("notice", "Connected")

    ready = await developer.wait_dm("set up the connection")
    assert "`cap-dev`" in message_text(ready)
    done = await admin.wait_dm("You provided the connection `cap-dev`")
    assert done.ts == request_dm.ts and ADMIN_OPEN_ACTION not in action_ids(done)
    [dev] = await connections_of(service).integration_connections(fake_slack.workspace.team_id, CAP_MODULE)
    assert (dev.environment, dev.connection) == ("dev", "cap-dev")
    # Works once: the button of the completed request opens nothing any more.
    await admin.click(ADMIN_OPEN_ACTION, message=as_first_shown)
    await admin.wait_ephemeral("completed already")

    # An app in dev with only IB_MANAGER_URL and IB_RUNTIME_TOKEN.
    _, dev_token = await runtime_token(database, "dev")
    python = await asyncio.to_thread(fresh_venv, tmp_path / "venv")
    await asyncio.to_thread(pip_install, python, "httpx")
    await asyncio.to_thread(
        pip_install, python, "--no-deps", CAP_MODULE, index_url=index_url(service.url, dev_token, "dev")
    )
    await asyncio.to_thread(cap_server.clear_requests)
    in_dev = await app_run(python, service, dev_token, 820_001)
    assert (in_dev["listed"], in_dev["created"], in_dev["created_by"]) == (3, 820_001, "alice")
    assert await asyncio.to_thread(cap_users, cap_server) == {"alice"}

    # Deployed to qa, connected there through the modal with the qa user quinn.
    await add_environment(database, "qa")
    await deploy(
        database,
        team_id=fake_slack.workspace.team_id,
        module_name=CAP_MODULE,
        environment="qa",
        actor=ADMIN.id,
        admins=[ADMIN.id],
    )
    await grant(database, ADMIN.id, "connection_admin", "qa")
    # The button the deployment DM carries ("Pick a connection").
    fake_slack.workspace.post_message(
        ADMIN.id,
        f"{CAP_MODULE} has no connection in qa yet",
        [
            {
                "type": "actions",
                "elements": [
                    {
                        "type": "button",
                        "text": {"type": "plain_text", "text": "Pick a connection"},
                        "action_id": OPEN_ACTION,
                        "value": target_value(CAP_MODULE, "qa"),
                    }
                ],
            }
        ],
    )
    await admin.click(OPEN_ACTION)
    await admin.wait_view("screen", "No connection in *qa* yet")
    await admin.click(NEW_ACTION)
    await admin.wait_view("form", "New SAP OData connection in *qa*")
    admin.type({"connection_name": "cap-qa", **connection_values(cap_server, "quinn", WRONG_PASSWORD)})
    await admin.click(TEST_ACTION)
    assert "The connection test failed" in await admin.wait_status("failed")
    await admin.submit({"password": quinn})
    saved = await admin.wait_view("screen", "uses `cap-qa` in *qa* now")
    assert "test passed" in visible_text(saved)

    _, qa_token = await runtime_token(database, "qa")
    await asyncio.to_thread(cap_server.clear_requests)
    in_qa = await app_run(python, service, qa_token, 820_002)
    assert (in_qa["created"], in_qa["created_by"]) == (820_002, "quinn")
    assert await asyncio.to_thread(cap_users, cap_server) == {"quinn"}

    await service.settled()
    assert_nothing_leaked(
        [alice, quinn, WRONG_PASSWORD], database_url=database_url, caplog=caplog, fake=fake_slack
    )
