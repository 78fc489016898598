"""Real pip against the real index: publish, pip install into a fresh venv, import, call.

pip finds only our index plus the wheelhouse of httpx wheels (the generated packages' one
dependency) that `make test` prepares, so nothing leaves the machine (tests/fixtures/venvs.py).
"""

from __future__ import annotations

import asyncio
import json
import subprocess
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

import pytest
from aiohttp import web

from bot.config import Settings
from bot.index import index_installer
from bot.web import create_app
from generator.publisher import Publisher, deploy
from generator.spec import IntegrationSpec, ObjectSelection
from providers.base import MetadataSource
from providers.model import Catalog
from providers.sap_odata import SapODataProvider
from storage import Database, Environments, RuntimeTokens
from tests.fixtures.publish import ADMIN, ALICE, TEAM, shop_integration
from tests.fixtures.venvs import fresh_venv, pip_install_result
from tests.peers.cap import CapServer

pytestmark = pytest.mark.slow


@asynccontextmanager
async def serving_index(database: Database) -> AsyncIterator[str]:
    """The index on a real socket on 127.0.0.1; yields its base URL. Unknown projects are 404
    instead of going to PyPI: httpx comes from the wheelhouse, and nothing leaves the machine."""
    runner = web.AppRunner(create_app(Settings(), database, installers=[index_installer(None)]))
    await runner.setup()
    try:
        site = web.TCPSite(runner, "127.0.0.1", 0)
        await site.start()
        port = runner.addresses[0][1]
        yield f"http://127.0.0.1:{port}"
    finally:
        await runner.cleanup()


async def token_of(database: Database, environment: str) -> str:
    async with database.session() as session:
        env = await Environments(session).require(environment)
        _, token = await RuntimeTokens(session).create(env, label="pip", created_by=ALICE)
    return token


async def install(python: Path, index_url: str, module: str) -> subprocess.CompletedProcess[str]:
    # in a thread: the index answering pip lives on this event loop
    return await asyncio.to_thread(pip_install_result, python, module, index_url=index_url)


def with_token(base_url: str, token: str, environment: str) -> str:
    return base_url.replace("http://", f"http://__token__:{token}@") + f"/envs/{environment}/simple/"


@pytest.mark.peers
async def test_a_published_package_installs_with_pip_and_calls_the_system(
    database: Database, publisher: Publisher, cap_server: CapServer, tmp_path: Path
) -> None:
    source = MetadataSource(
        kind="url", location=cap_server.v2_url, user="alice", password=cap_server.users["alice"]
    )
    catalog = await SapODataProvider(allow_private=True).discover(source)
    spec = IntegrationSpec(
        provider=catalog.provider,
        application_name="CAP catalog",
        module_name="cap_catalog",
        objects=[ObjectSelection("Categories", access="read-only"), ObjectSelection("Products")],
    )
    job = await publisher.submit(team_id=TEAM, user_id=ALICE, spec=spec, catalog=catalog, dedup_key="journey")
    assert (await publisher.wait(job.id)).state == "published"
    token = await token_of(database, "dev")
    python = await asyncio.to_thread(fresh_venv, tmp_path / "venv")

    async with serving_index(database) as base_url:
        installed = await install(python, with_token(base_url, token, "dev"), "cap_catalog")
    assert installed.returncode == 0, installed.stdout + installed.stderr

    script = (
        "import json, sys\n"
        "import cap_catalog\n"
        "from cap_catalog import BasicAuth, Connection, driver\n"
        "connection = Connection(sys.argv[1], auth=BasicAuth('alice', sys.argv[2]))\n"
        "page = driver.search_categories(connection, top=3)\n"
        "print(json.dumps({'version': cap_catalog.__version__, 'names': [c.name for c in page],"
        " 'total': page.total_count}))\n"
    )
    called = await asyncio.to_thread(
        subprocess.run,
        [str(python), "-c", script, cap_server.v2_url, cap_server.users["alice"]],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert called.returncode == 0, called.stderr
    result = json.loads(called.stdout)
    assert result["version"] == "0.1.0"
    assert len(result["names"]) == 3 and all(result["names"])
    assert result["total"] == 12


async def test_a_deployed_version_installs_from_qa_with_a_qa_token_only(
    database: Database, publisher: Publisher, shop: Catalog, tmp_path: Path
) -> None:
    async with database.session() as session:
        await Environments(session).create("qa")
    job = await publisher.submit(
        team_id=TEAM, user_id=ALICE, spec=shop_integration(), catalog=shop, dedup_key="k"
    )
    assert (await publisher.wait(job.id)).state == "published"
    deployment = await deploy(
        database, team_id=TEAM, module_name="shop", environment="qa", actor=ADMIN, admins=[ADMIN]
    )
    dev_token, qa_token = await token_of(database, "dev"), await token_of(database, "qa")
    python = await asyncio.to_thread(fresh_venv, tmp_path / "venv")

    async with serving_index(database) as base_url:
        refused = await install(python, with_token(base_url, dev_token, "qa"), "shop")
        installed = await install(python, with_token(base_url, qa_token, "qa"), "shop")

    assert refused.returncode != 0
    assert "401" in refused.stdout + refused.stderr
    assert installed.returncode == 0, installed.stdout + installed.stderr
    record = await asyncio.to_thread(
        subprocess.run,
        [str(python), "-c", "import importlib.metadata as m; print(m.version('shop'))"],
        capture_output=True,
        text=True,
        check=True,
    )
    assert record.stdout.strip() == deployment.version.version == "0.1.0"
