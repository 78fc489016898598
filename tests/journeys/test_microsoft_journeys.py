"""Issue 6 end to end through Slack, for Dataverse, Dynamics 365 and SharePoint Online.

A developer signs in with Microsoft from the wizard, picks the environment or site and the
objects, and publishes; without the credentials they ask an administrator, whose DM carries the
certificate the service generated. The administrator first submits the form before uploading it
(the identity peer rejects the assertion: a clear message, nothing saved), then uploads THAT
certificate to the app registration and submits again: Test connection signs in with an
assertion signed by the service's private key and reads from the system, the connection is saved
and associated. An app in a fresh venv with only IB_MANAGER_URL and IB_RUNTIME_TOKEN then lists and
writes records through ``service``, with the access token the Integration Manager hands out.
"""

from __future__ import annotations

import asyncio
import json
import uuid
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import jwt
import pytest

from handlers.views.connections import ADMIN_OPEN_ACTION
from providers.dataverse import DISCOVERY_URL_ENV
from providers.microsoft import CLIENT_ID_ENV, CLIENT_SECRET_ENV, TENANT_ENV
from tests.connections.test_runtime_journey import index_url
from tests.fixtures.connections import runtime_token
from tests.fixtures.microsoft import (
    SIGN_IN_CLIENT_ID,
    SIGN_IN_SECRET,
    TENANT,
    DataverseEnvironmentPeer,
    GraphSite,
)
from tests.fixtures.venvs import fresh_venv, pip_install, run_python
from tests.journeys.service import RunningService
from tests.journeys.test_admin_requests import ask_admin
from tests.journeys.test_connections_journey import (
    assert_nothing_leaked,
    capture_logs,
    connections_of,
    message_text,
)
from tests.journeys.test_signin_microsoft import come_back, sign_in
from tests.journeys.test_wizard_happy_path import jobs_of
from tests.journeys.wizard_user import STEP_TIMEOUT_S, WizardUser
from tests.peers.identity import IdentityServer
from tests.slack import Driver, FakeSlack, wait_for

pytestmark = [pytest.mark.peers, pytest.mark.slow]
APP = Path(__file__).resolve().parents[1] / "microsoft" / "service_app.py"


@pytest.fixture(scope="module")
def app_python(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One venv with httpx for the module's apps; each journey installs its own integration."""
    python = fresh_venv(tmp_path_factory.mktemp("microsoft_apps") / "venv")
    pip_install(python, "httpx")
    return python


def service_signs_in_with_microsoft(monkeypatch: pytest.MonkeyPatch, ca_bundle: Path) -> None:
    """The service's own sign-in app; the service trusts the peers' certificate authorities."""
    monkeypatch.setenv(CLIENT_ID_ENV, SIGN_IN_CLIENT_ID)
    monkeypatch.setenv(CLIENT_SECRET_ENV, SIGN_IN_SECRET)
    monkeypatch.setenv(TENANT_ENV, TENANT)
    monkeypatch.setenv("REQUESTS_CA_BUNDLE", str(ca_bundle))
    monkeypatch.setenv("SSL_CERT_FILE", str(ca_bundle))


async def publish_signed_in(
    service: RunningService,
    user: WizardUser,
    identity: IdentityServer,
    provider: str,
    choose_source: Callable[[], Awaitable[Any]],
    table: str,
    module: str,
) -> None:
    """Sign in from the source step, choose the source, publish ``table`` read-write as ``module``."""
    await user.start()
    await user.choose_provider(provider)
    await user.wait_step("source")
    assert (await come_back(service, await sign_in(user, identity))).status_code == 200
    await wait_for(lambda: "Signed in as" in user.text, STEP_TIMEOUT_S, what="the signed-in source step")
    await choose_source()
    await user.pick_objects(read_write=[table])
    await user.fill_settings(application_name=f"Journey {module}", module_name=module)
    review = await user.wait_step("review")
    await user.submit()
    await user.wait_step("publishing")
    [queued] = await wait_for(
        lambda: jobs_of(service.database, review["private_metadata"]), STEP_TIMEOUT_S, what="the job"
    )
    job = await service.publisher.wait(queued.id, timeout=120)
    assert (job.state, job.error) == ("published", None)


async def connect_through_the_admin(
    service: RunningService,
    driver: Driver,
    fake: FakeSlack,
    identity: IdentityServer,
    module: str,
    where: dict[str, str],
    permissions: list[str],
) -> tuple[str, str]:
    """The developer asks, the administrator registers an app and connects: (its client id, what
    the connection test said).

    The first submission comes before the certificate is uploaded: refused, nothing saved."""
    asked = await ask_admin(driver, fake, module)
    admin, request_dm = asked.admin, asked.request_dm
    instructions = message_text(request_dm)
    assert f"name it `Integration Builder - {module}`" in instructions  # the app registration
    for permission in permissions:
        assert permission in instructions
    certificate_dm = await admin.wait_dm(f"For the connection of `{module}`")
    [file_id] = certificate_dm.files
    pem = fake.files[file_id].content
    assert pem is not None and pem.startswith(b"-----BEGIN CERTIFICATE-----")
    assert b"PRIVATE KEY" not in pem and "PRIVATE KEY" not in fake.all_text_sent()

    client_id = str(uuid.uuid4())
    await asyncio.to_thread(identity.register_app, client_id, TENANT)  # New registration
    await admin.click(ADMIN_OPEN_ACTION, message=request_dm)
    await admin.wait_view("admin", "Directory (tenant) id")
    form = {
        "connection_name": f"{module}-dev",
        "tenant_id": TENANT,
        "client_id": client_id,
        "auth_type": "certificate",
        **where,
    }
    await admin.submit(form)
    refused = await admin.wait_status("failed")
    assert "rejected the certificate: upload this connection's certificate" in refused, refused
    assert "Certificates & secrets" in refused and admin.kind == "admin"
    assert await connections_of(service).list_connections("dev") == []

    await asyncio.to_thread(identity.upload_certificate, client_id, pem.decode("ascii"))
    await asyncio.to_thread(identity.clear_token_requests)
    await admin.submit({"connection_name": f"{module}-dev"})
    await admin.wait_view("notice", "passed its test, is saved")
    signed = [
        r
        for r in await asyncio.to_thread(identity.token_requests)
        if r["client_id"] == client_id and r["grant_type"] == "client_credentials"
    ]
    # signed with the service's private key: the peer checks it against the uploaded certificate
    assert [r["status"] for r in signed] == [200]

    await asked.developer.wait_dm("set up the connection")
    [dev] = await connections_of(service).integration_connections(fake.workspace.team_id, module)
    assert (dev.environment, dev.connection) == ("dev", f"{module}-dev")
    [saved] = await connections_of(service).list_connections("dev")
    assert saved.values["client_id"] == client_id and saved.last_test_ok
    return client_id, str(saved.last_test_message)


async def run_app(
    python: Path, service: RunningService, module: str, kind: str, marker: str, trust: dict[str, str]
) -> dict[str, Any]:
    """``module`` from dev's index into the venv, then the app with only the manager's two variables."""
    _, token = await runtime_token(service.database, "dev")
    await asyncio.to_thread(
        pip_install, python, "--no-deps", module, index_url=index_url(service.url, token, "dev")
    )
    env = {"IB_MANAGER_URL": service.url, "IB_RUNTIME_TOKEN": token, **trust}
    output = await asyncio.to_thread(run_python, python, APP, [module, kind, marker], env)
    seen: dict[str, Any] = json.loads(output.strip().splitlines()[-1])
    return seen


@pytest.mark.parametrize("provider", ["dataverse", "dynamics365"])
async def test_dataverse_from_sign_in_to_an_app_using_the_administrators_certificate_connection(
    service: RunningService,
    driver: Driver,
    fake_slack: FakeSlack,
    dataverse_environment: DataverseEnvironmentPeer,
    app_python: Path,
    database_url: str,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
    provider: str,
) -> None:
    capture_logs(caplog)
    environment = dataverse_environment
    identity = environment.tenant.identity
    service_signs_in_with_microsoft(monkeypatch, identity.ca_path)
    monkeypatch.setenv(DISCOVERY_URL_ENV, environment.url)
    module = f"journey_{provider}"
    user = WizardUser(driver, fake_slack)

    async def environment_url() -> None:
        await user.give_source(environment_url=environment.api_url)

    await publish_signed_in(service, user, identity, provider, environment_url, "accounts", module)

    await asyncio.to_thread(environment.cap.clear_requests)
    _, tested = await connect_through_the_admin(
        service,
        driver,
        fake_slack,
        identity,
        module,
        {"url": environment.url},
        ["user_impersonation", "Dynamics CRM", "Application users"],
    )
    assert tested.startswith("connected to 127.0.0.1 as application user"), tested
    who = [r for r in await asyncio.to_thread(environment.cap.requests) if "WhoAmI" in r["path"]]
    assert who and all(r["user"] == "dataverse-app" for r in who)

    seen = await run_app(app_python, service, module, "dataverse", f"Journey {provider}", {})
    assert seen == {"listed": 3, "created": f"Journey {provider}", "read_back": f"Journey {provider}"}
    assert_nothing_leaked(
        [SIGN_IN_SECRET, "PRIVATE KEY"], database_url=database_url, caplog=caplog, fake=fake_slack
    )


async def test_sharepoint_from_sign_in_to_an_app_using_the_administrators_certificate_connection(
    service: RunningService,
    driver: Driver,
    fake_slack: FakeSlack,
    graph_site: GraphSite,
    app_python: Path,
    database_url: str,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    capture_logs(caplog)
    identity = graph_site.tenant.identity
    service_signs_in_with_microsoft(monkeypatch, graph_site.ca_bundle)
    module = "journey_sharepoint"
    user = WizardUser(driver, fake_slack)
    graph_site.fake.clear(graph_site.tasks)
    graph_site.fake.add_item(graph_site.site, graph_site.tasks, {"Title": "Existing task", "Hours": 1})

    async def search_the_site() -> None:
        assert await user.search("site", "Sales") == [graph_site.site.web_url]
        await user.give_source(site=graph_site.site.web_url)

    try:
        await publish_signed_in(
            service, user, identity, "sharepoint", search_the_site, "Project Tasks", module
        )
        client_id, tested = await connect_through_the_admin(
            service,
            driver,
            fake_slack,
            identity,
            module,
            {"site": graph_site.site.web_url},
            ["Sites.Selected", "Sites.ReadWrite.All", "Grant admin consent"],
        )
        assert tested == "connected to contoso.sharepoint.com:/sites/sales: its lists are readable"

        # The machine's trust store knows the Graph fake's certificate authority, as a real one
        # knows Microsoft's: that is no configuration of the app.
        trust = {"SSL_CERT_FILE": str(graph_site.fake.ca_path)}
        graph_site.fake.requests.clear()
        seen = await run_app(app_python, service, module, "sharepoint", "Journey task", trust)
        writes = [headers for method, _, headers in graph_site.fake.requests if method in ("POST", "PATCH")]
        # the token the manager handed out is the administrator's app's
        apps = {
            jwt.decode(h["authorization"][7:], options={"verify_signature": False})["appid"] for h in writes
        }
        assert apps == {client_id}
        assert seen == {
            "listed": ["Existing task"],
            "created": ["Journey task", 2.5],
            "read_back": "Journey task renamed",
        }
    finally:
        graph_site.fake.clear(graph_site.tasks)
    assert_nothing_leaked(
        [SIGN_IN_SECRET, "PRIVATE KEY"], database_url=database_url, caplog=caplog, fake=fake_slack
    )
