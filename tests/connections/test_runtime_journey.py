"""The full runtime path: publish, connect, and an app in a fresh venv that has only
IB_MANAGER_URL and IB_RUNTIME_TOKEN reads and writes the CAP peer through ``service``, in dev and,
after a deployment, in qa with qa's own credentials."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import Any

import pytest

from bot.index import index_installer, install_index
from bot.web import ROUTE_INSTALLERS
from generator.publisher import Publisher, deploy
from handlers.connections_service import ConnectionService
from providers.model import Catalog
from storage import Database, RuntimeTokens, SecretBox
from tests.fixtures.connections import (
    CAP_MODULE,
    add_environment,
    cap_spec,
    grant,
    publish,
    runtime_token,
    serving,
)
from tests.fixtures.publish import ADMIN, ALICE, TEAM
from tests.fixtures.venvs import fresh_venv, pip_install, run_python
from tests.peers.cap import CapServer

pytestmark = [pytest.mark.peers, pytest.mark.slow]
APP = Path(__file__).with_name("runtime_app.py")
# ib serve's routes, with an index that answers 404 for unknown projects instead of sending pip
# to PyPI: httpx comes from the local wheelhouse and nothing leaves the machine.
INSTALLERS = [index_installer(None) if install is install_index else install for install in ROUTE_INSTALLERS]


def index_url(base_url: str, token: str, environment: str) -> str:
    return base_url.replace("http://", f"http://__token__:{token}@") + f"/envs/{environment}/simple/"


async def run_app(python: Path, base_url: str, token: str, key: int) -> dict[str, Any]:
    """The app in its venv, in a thread: the manager it calls runs on this event loop."""
    env = {"IB_MANAGER_URL": base_url, "IB_RUNTIME_TOKEN": token}
    output = await asyncio.to_thread(run_python, python, APP, [CAP_MODULE, str(key)], env)
    result: dict[str, Any] = json.loads(output.strip().splitlines()[-1])
    return result


def cap_users(cap: CapServer) -> set[str | None]:
    return {r["user"] for r in cap.requests() if r["path"].startswith("/odata/")}


async def test_an_app_gets_each_environments_connection_from_the_manager(
    database: Database,
    secret_box: SecretBox,
    publisher: Publisher,
    connections: ConnectionService,
    cap_catalog: Catalog,
    cap_server: CapServer,
    tmp_path: Path,
) -> None:
    await publish(publisher, cap_catalog, cap_spec())
    await grant(database, ALICE, "connection_admin", "dev")
    await connections.create_connection(
        ALICE,
        environment="dev",
        provider="sap-odata",
        name="cap-dev",
        values={"url": cap_server.v2_url, "user": "alice", "password": cap_server.users["alice"]},
    )
    await connections.associate(ALICE, module_name=CAP_MODULE, environment="dev", connection_name="cap-dev")
    _, dev_token = await runtime_token(database, "dev")
    python = await asyncio.to_thread(fresh_venv, tmp_path / "venv")

    async with serving(database, secret_box, installers=INSTALLERS) as base_url:
        await asyncio.to_thread(
            pip_install, python, CAP_MODULE, index_url=index_url(base_url, dev_token, "dev")
        )
        await asyncio.to_thread(cap_server.clear_requests)
        in_dev = await run_app(python, base_url, dev_token, 810_001)
        dev_users = await asyncio.to_thread(cap_users, cap_server)

        await add_environment(database, "qa")
        await deploy(
            database, team_id=TEAM, module_name=CAP_MODULE, environment="qa", actor=ADMIN, admins=[ADMIN]
        )
        _, qa_token = await runtime_token(database, "qa")
        unconnected = await run_app(python, base_url, qa_token, 810_002)

        await connections.create_connection(
            ADMIN,
            environment="qa",
            provider="sap-odata",
            name="cap-qa",
            values={"url": cap_server.v2_url, "user": "quinn", "password": cap_server.users["quinn"]},
        )
        await connections.associate(ADMIN, module_name=CAP_MODULE, environment="qa", connection_name="cap-qa")
        await asyncio.to_thread(cap_server.clear_requests)
        in_qa = await run_app(python, base_url, qa_token, 810_003)
        qa_users = await asyncio.to_thread(cap_users, cap_server)

        # A token the manager answered keeps its answer for RUNTIME_CACHE_SECONDS; this one is new.
        revoked_id, revoked_token = await runtime_token(database, "qa")
        async with database.session() as session:
            await RuntimeTokens(session).revoke(revoked_id)
        revoked = await run_app(python, base_url, revoked_token, 810_004)

    assert in_dev["total"] >= 1200
    assert (in_dev["listed"], in_dev["created"], in_dev["created_by"]) == (3, 810_001, "alice")
    assert in_dev["categories"] == 12
    assert dev_users == {"alice"}
    assert unconnected["error"] == "ConfigurationError"
    assert (
        f"integration '{CAP_MODULE}' has no connection in environment 'qa': ask a connection admin to run "
        f"/ib connections or `ib connection associate {CAP_MODULE} qa <connection name>`"
    ) in unconnected["message"]
    assert in_qa["created_by"] == "quinn" and in_qa["created"] == 810_003
    assert qa_users == {"quinn"}
    assert revoked["error"] == "Unauthorized"
    assert "unknown or revoked" in revoked["message"]
