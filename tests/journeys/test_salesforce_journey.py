"""Issue 7 end to end, through the strict fake Slack and the fake Salesforce org: a developer
authorizes Salesforce in the wizard, picks Account, publishes; asks an administrator, whose DM
carries the certificate the service generated; the administrator uploads it to an External Client
App of the org and fills the connection form; the connection is tested with a JWT bearer login
the org verifies against that certificate; an app in a fresh venv with only IB_MANAGER_URL and
IB_RUNTIME_TOKEN creates, finds, updates and deletes an Account through ``service``."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest

from handlers.views.connections import ADMIN_OPEN_ACTION
from tests.connections.test_runtime_journey import index_url
from tests.fixtures.connections import runtime_token
from tests.fixtures.salesforce import CALLBACK_URL, INTEGRATION_USER, SalesforceOrg
from tests.fixtures.venvs import fresh_venv, pip_install, run_python
from tests.journeys.publishing import final_dm, state_of
from tests.journeys.service import RunningService
from tests.journeys.test_admin_requests import ask_admin
from tests.journeys.test_connections_journey import capture_logs, connections_of, message_text
from tests.journeys.test_signin_salesforce import authorize, come_back, use_org
from tests.journeys.test_wizard_happy_path import database_files
from tests.journeys.wizard_user import WizardUser
from tests.peers.salesforce_fake import ConnectedApp, user_id
from tests.slack import DEVELOPER, Driver, FakeSlack

pytestmark = [pytest.mark.peers, pytest.mark.slow]

MODULE = "sf_accounts"
APP = Path(__file__).parents[1] / "salesforce" / "service_app.py"
CONSUMER_KEY = "3MVG9journey" + "k" * 40


@pytest.fixture
def org(salesforce_org: SalesforceOrg, monkeypatch: pytest.MonkeyPatch) -> Iterator[SalesforceOrg]:
    """The fake org, as the service's sign-in client; what the journey adds to it goes afterwards."""
    use_org(salesforce_org, monkeypatch)
    yield salesforce_org
    salesforce_org.fake.apps.pop(CONSUMER_KEY, None)
    salesforce_org.fake.clear("Account")


async def run_app(python: Path, service: RunningService, token: str, org: SalesforceOrg, name: str) -> Any:
    env = {"IB_MANAGER_URL": service.url, "IB_RUNTIME_TOKEN": token, "SSL_CERT_FILE": str(org.fake.ca_path)}
    output = await asyncio.to_thread(run_python, python, APP, [MODULE, name], env)
    return json.loads(output.strip().splitlines()[-1])


async def test_authorize_publish_ask_an_admin_connect_with_the_certificate_and_use_it_from_an_app(
    service: RunningService,
    driver: Driver,
    fake_slack: FakeSlack,
    org: SalesforceOrg,
    database_url: str,
    tmp_path: Path,
    caplog: pytest.LogCaptureFixture,
) -> None:
    capture_logs(caplog)
    # The wizard: authorize the (fake) org, pick Account, publish.
    user = WizardUser(driver, fake_slack)
    await user.start()
    await user.choose_provider("salesforce")
    await user.wait_step("source")
    assert (await come_back(service, await authorize(user, org))).status_code == 200
    await user.pick_objects(read_write=["Account"])
    await user.fill_settings(application_name="Accounts", module_name=MODULE)
    await user.wait_step("review")
    await user.submit()
    await user.wait_step("publishing")
    assert state_of((await final_dm(fake_slack, DEVELOPER, MODULE)).text) == "published"

    # The developer asks an administrator; the administrator's DM carries the certificate.
    asked = await ask_admin(driver, fake_slack, MODULE, note=f"The integration user is {INTEGRATION_USER}")
    admin, request_dm = asked.admin, asked.request_dm
    assert "External Client App" in message_text(request_dm) and CALLBACK_URL in message_text(request_dm)
    certificate_dm = await admin.wait_dm(f"For the connection of `{MODULE}`")
    [file_id] = certificate_dm.files
    pem = fake_slack.files[file_id].content
    assert pem is not None and pem.startswith(b"-----BEGIN CERTIFICATE-----")

    # The administrator first uploads another certificate to the External Client App by mistake:
    # the org verifies the signed login against the app's certificate and refuses it.
    app = ConnectedApp(
        consumer_key=CONSUMER_KEY,
        certificate_pem=org.app.certificate_pem,
        callback_url=CALLBACK_URL,
        users={INTEGRATION_USER},
    )
    org.fake.register_app(app)
    await admin.click(ADMIN_OPEN_ACTION, message=request_dm)
    await admin.wait_view("admin", "Consumer key")
    form = {
        "connection_name": "sf-dev",
        "login_url": org.fake.base_url,
        "consumer_key": CONSUMER_KEY,
        "username": INTEGRATION_USER,
    }
    await admin.submit(form)
    await admin.wait_view("admin", "Salesforce refused the signed login")
    assert "must use the certificate of this connection" in admin.text
    assert await connections_of(service).list_connections("dev") == []

    # With the certificate from the DM uploaded instead, the same form connects.
    org.fake.register_app(replace(app, certificate_pem=pem.decode("ascii")))
    await admin.submit()
    await admin.wait_view("notice", "Connected")
    ready = await asked.developer.wait_dm("set up the connection")
    assert "`sf-dev`" in message_text(ready)
    [dev] = await connections_of(service).integration_connections(fake_slack.workspace.team_id, MODULE)
    assert (dev.environment, dev.connection) == ("dev", "sf-dev")

    # An app in dev, with the package pip-installed from the service's index.
    _, token = await runtime_token(service.database, "dev")
    python = await asyncio.to_thread(fresh_venv, tmp_path / "venv")
    await asyncio.to_thread(pip_install, python, "httpx")
    await asyncio.to_thread(
        pip_install, python, "--no-deps", MODULE, index_url=index_url(service.url, token, "dev")
    )
    seen = await run_app(python, service, token, org, "Journey O'Brien")
    assert "error" not in seen, seen
    assert seen["found"] == [[seen["created"], "Journey O'Brien", "Retail"]]
    assert seen["renamed"] == "Journey O'Brien (renamed)"
    assert seen["after_delete"] == "NotFound"
    # Written as the integration user: the manager handed out that user's session, not the key.
    created = org.fake.records["Account"][seen["created"]]
    assert created["OwnerId"] == user_id(INTEGRATION_USER)

    await service.settled()
    # The private key stays in the service, encrypted: nowhere in Slack, the logs or the database.
    for path in database_files(database_url):
        assert b"PRIVATE KEY" not in path.read_bytes(), path
    assert "PRIVATE KEY" not in fake_slack.all_text_sent() and "PRIVATE KEY" not in caplog.text
