"""From Publish in the wizard to an app calling the CAP peer: the DM shows the progress in place,
then the pip line and a snippet; both work as shown, with a runtime token and a connection."""

from __future__ import annotations

import asyncio
import re
import shlex
from pathlib import Path

import pytest

from bot.app_keys import SECRET_BOX
from bot.index import index_installer
from handlers.connections_service import ConnectionService
from storage import Environments, RuntimeTokens
from tests.fixtures.connections import serving
from tests.fixtures.venvs import fresh_venv, pip_install_result, run_python
from tests.journeys.publishing import code_blocks, final_dm, readable, states
from tests.journeys.service import RunningService
from tests.journeys.wizard_user import WizardUser
from tests.peers.cap import CapServer
from tests.slack import ADMIN, DEVELOPER, Driver, FakeSlack, wait_for

pytestmark = [pytest.mark.peers, pytest.mark.slow]

MODULE = "cap_journey"
STATES = ["generating", "building", "publishing", "published"]


async def test_publish_from_the_wizard_then_install_and_run_what_the_dm_shows(
    service: RunningService, driver: Driver, fake_slack: FakeSlack, cap_server: CapServer, tmp_path: Path
) -> None:
    user = WizardUser(driver, fake_slack)
    await user.start()
    await user.choose_provider("sap-odata")
    await user.give_source(metadata_url=cap_server.v2_url, user="alice", password=cap_server.users["alice"])
    await user.pick_objects(read_write=["Products"], read_only=["Categories"])
    await user.fill_settings(application_name="CAP shop", module_name=MODULE)
    await user.wait_step("review")
    await user.submit()

    message = await final_dm(fake_slack, DEVELOPER, MODULE)
    shown = states(message)
    # One message edited in place; edits are paced, so states may be coalesced, never reordered.
    assert shown[0] == "generating" and shown[-1] == "published"
    assert shown == sorted(set(shown), key=STATES.index)
    assert message.channel == fake_slack.workspace.dm_channel(DEVELOPER.id)
    assert len(fake_slack.messages_for(DEVELOPER.id)) == 1
    text = readable(message)
    assert f"CAP shop ({MODULE}) 0.1.0 is published to dev." in text.replace("*", "").replace("`", "")
    install_line, snippet = code_blocks(text)
    assert install_line == (
        "pip install --index-url https://__token__:$IB_RUNTIME_TOKEN@ib.example.test/envs/dev/simple/ "
        + MODULE
    )

    async with service.database.session() as session:
        dev = await Environments(session).require("dev")
        _, token = await RuntimeTokens(session).create(dev, label="app", created_by=DEVELOPER.id)
    connections = ConnectionService(service.database, service.app[SECRET_BOX], admins=[ADMIN.id])
    await connections.create_connection(
        ADMIN.id,
        environment="dev",
        provider="sap-odata",
        name="cap-dev",
        values={"url": cap_server.v2_url, "user": "alice", "password": cap_server.users["alice"]},
    )
    await connections.associate(ADMIN.id, module_name=MODULE, environment="dev", connection_name="cap-dev")
    python = await asyncio.to_thread(fresh_venv, tmp_path / "venv")
    (tmp_path / "app.py").write_text(snippet)

    # The index alone (unknown projects 404 instead of going to PyPI: httpx is in the wheelhouse).
    async with serving(service.database, None, installers=[index_installer(None)]) as index_base:
        # What the user does with the line: put a token (and here the local address) in.
        command = shlex.split(
            install_line.replace(
                "https://__token__:$IB_RUNTIME_TOKEN@ib.example.test",
                index_base.replace("http://", f"http://__token__:{token}@"),
            )
        )
        index_url = command[command.index("--index-url") + 1]
        installed = await asyncio.to_thread(pip_install_result, python, command[-1], index_url=index_url)
    assert installed.returncode == 0, installed.stdout + installed.stderr
    output = await asyncio.to_thread(
        run_python,
        python,
        tmp_path / "app.py",
        [],
        {"IB_MANAGER_URL": service.url, "IB_RUNTIME_TOKEN": token},
    )
    records = output.strip().splitlines()
    # The snippet searched the first object (Categories) through the connection of dev.
    assert [
        re.search(r"name='(\w+)'", record)[1] for record in records if record.startswith("Categories(")
    ] == [
        "Beverages",
        "Condiments",
        "Confections",
        "Dairy",
        "Grains",
    ], output

    ack = await driver.slash_command(DEVELOPER, "list")
    assert ack.status == 200
    listed = await wait_for(lambda: fake_slack.ephemerals_for(DEVELOPER.id), what="the answer to /ib list")
    assert "dev · version 0.1.0 · :link: connection cap-dev" in readable(listed[-1]).replace("*", "").replace(
        "`", ""
    )
    assert token not in fake_slack.all_text_sent()
