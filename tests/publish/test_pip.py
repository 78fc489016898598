"""Real pip against the real index: publish, pip install into a fresh venv, import, call.

pip runs ``--isolated`` (no machine configuration, no other index) and finds only our index plus
a local folder of httpx wheels (the generated packages' one dependency), so the install works
offline once that folder exists: ``IB_TEST_WHEELHOUSE``, or one ``pip download`` per session.
"""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

import pytest
from aiohttp import web

from bot.config import Settings
from bot.index import index_installer
from bot.web import create_app
from generator.package import BASE_REQUIREMENTS
from generator.publisher import Publisher, deploy
from generator.spec import IntegrationSpec, ObjectSelection
from providers.base import MetadataSource
from providers.model import Catalog
from providers.sap_odata import SapODataProvider
from storage import Database, Environments, RuntimeTokens
from tests.fixtures.publish import ADMIN, ALICE, TEAM, shop_integration
from tests.peers.cap import CapServer

pytestmark = pytest.mark.slow
PIP_TIMEOUT_S = 300


def _pip_env() -> dict[str, str]:
    # Loopback only: no proxy may see the index (or its token).
    proxies = {"http_proxy", "https_proxy", "all_proxy", "no_proxy"}
    return {k: v for k, v in os.environ.items() if not k.startswith("PIP_") and k.lower() not in proxies}


@pytest.fixture(scope="session")
def wheelhouse(tmp_path_factory: pytest.TempPathFactory) -> Path:
    given = os.environ.get("IB_TEST_WHEELHOUSE")
    if given:
        return Path(given)
    folder = tmp_path_factory.mktemp("wheelhouse")
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "download",
            "--quiet",
            "--only-binary=:all:",
            "--dest",
            str(folder),
            *BASE_REQUIREMENTS,
        ],
        capture_output=True,
        text=True,
        timeout=PIP_TIMEOUT_S,
        check=False,
    )
    if result.returncode != 0:
        last = (result.stderr.strip().splitlines() or ["?"])[-1]
        pytest.skip(
            f"no httpx wheels for the fresh venv (set IB_TEST_WHEELHOUSE to a folder of them): {last}"
        )
    return folder


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


async def fresh_venv(folder: Path) -> Path:
    await asyncio.to_thread(
        subprocess.run, [sys.executable, "-m", "venv", "--without-pip", str(folder)], check=True, timeout=120
    )
    return folder / "bin" / "python"


async def pip_install(
    python: Path, index_url: str, module: str, wheelhouse: Path
) -> subprocess.CompletedProcess[str]:
    """``pip install`` into the venv of ``python`` (pip runs from our venv, installs into that one).

    It runs in a thread: the index answering it lives on this event loop.
    """
    command = [
        sys.executable,
        "-m",
        "pip",
        "--isolated",
        "--python",
        str(python),
        "install",
        "--no-input",
        "--no-cache-dir",
        "--index-url",
        index_url,
        "--find-links",
        str(wheelhouse),
        module,
    ]
    return await asyncio.to_thread(
        subprocess.run,
        command,
        capture_output=True,
        text=True,
        timeout=PIP_TIMEOUT_S,
        env=_pip_env(),
        check=False,
    )


def with_token(base_url: str, token: str, environment: str) -> str:
    return base_url.replace("http://", f"http://__token__:{token}@") + f"/envs/{environment}/simple/"


@pytest.mark.peers
async def test_a_published_package_installs_with_pip_and_calls_the_system(
    database: Database, publisher: Publisher, cap_server: CapServer, wheelhouse: Path, tmp_path: Path
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
    python = await fresh_venv(tmp_path / "venv")

    async with serving_index(database) as base_url:
        installed = await pip_install(python, with_token(base_url, token, "dev"), "cap_catalog", wheelhouse)
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
    database: Database, publisher: Publisher, shop: Catalog, wheelhouse: Path, tmp_path: Path
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
    python = await fresh_venv(tmp_path / "venv")

    async with serving_index(database) as base_url:
        refused = await pip_install(python, with_token(base_url, dev_token, "qa"), "shop", wheelhouse)
        installed = await pip_install(python, with_token(base_url, qa_token, "qa"), "shop", wheelhouse)

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
