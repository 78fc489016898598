"""The package index as pip sees it: authentication per environment, PEP 503 pages, files."""

from __future__ import annotations

import base64
import hashlib
import re
from collections.abc import AsyncIterator

import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer
from yarl import URL

from bot.config import Settings
from bot.index import index_installer, install_index
from bot.web import create_app
from generator.publisher import Publisher, deploy
from providers.model import Catalog
from storage import Database, Environments, Integrations, RuntimeTokens
from storage.models import IntegrationVersion
from tests.fixtures.publish import ADMIN, ALICE, TEAM, shop_integration

Client = TestClient[web.Request, web.Application]
LINK = re.compile(r'<a href="(?P<href>[^"]+)" data-requires-python="(?P<python>[^"]+)">(?P<name>[^<]+)</a>')


def basic(token: str, user: str = "__token__") -> dict[str, str]:
    return {"Authorization": "Basic " + base64.b64encode(f"{user}:{token}".encode()).decode()}


async def new_token(database: Database, environment: str) -> str:
    async with database.session() as session:
        env = await Environments(session).require(environment)
        _, token = await RuntimeTokens(session).create(env, label="pip", created_by=ALICE)
    return token


async def publish_shop(publisher: Publisher, shop: Catalog, key: str) -> IntegrationVersion:
    job = await publisher.submit(
        team_id=TEAM, user_id=ALICE, spec=shop_integration(), catalog=shop, dedup_key=key
    )
    done = await publisher.wait(job.id)
    assert done.state == "published"
    async with publisher.database.session() as session:
        integration = await Integrations(session).by_module(TEAM, "shop")
        assert integration is not None
        return (await Integrations(session).versions(integration))[0]


@pytest.fixture
async def client(database: Database) -> AsyncIterator[Client]:
    client: Client = TestClient(TestServer(create_app(Settings(), database, installers=[install_index])))
    await client.start_server()
    try:
        yield client
    finally:
        await client.close()


@pytest.fixture
async def dev_token(database: Database) -> str:
    return await new_token(database, "dev")


async def test_the_index_asks_for_a_token_of_its_environment(
    database: Database, client: Client, dev_token: str
) -> None:
    async with database.session() as session:
        await Environments(session).create("qa")
    qa_token = await new_token(database, "qa")

    anonymous = await client.get("/envs/dev/simple/")
    assert anonymous.status == 401
    assert anonymous.headers["WWW-Authenticate"].startswith("Basic realm=")
    for headers in (basic("ibrt_not-a-token"), basic(qa_token), basic(dev_token, user="alice")):
        assert (await client.get("/envs/dev/simple/", headers=headers)).status == 401
    assert (await client.get("/envs/qa/simple/", headers=basic(dev_token))).status == 401
    assert (await client.get("/envs/nowhere/simple/", headers=basic(dev_token))).status == 401
    assert (await client.get("/envs/dev/simple/", headers=basic(dev_token))).status == 200
    assert (await client.get("/envs/qa/simple/", headers=basic(qa_token))).status == 200


async def test_a_revoked_token_no_longer_opens_the_index(
    database: Database, client: Client, dev_token: str
) -> None:
    async with database.session() as session:
        tokens = RuntimeTokens(session)
        row = await tokens.verify(dev_token)
        assert row is not None and await tokens.revoke(row.id)
    assert (await client.get("/envs/dev/simple/", headers=basic(dev_token))).status == 401


async def test_project_pages_link_every_file_with_its_sha256(
    database: Database, client: Client, dev_token: str, publisher: Publisher, shop: Catalog
) -> None:
    first = await publish_shop(publisher, shop, "one")
    second = await publish_shop(publisher, shop, "two")

    root = await client.get("/envs/dev/simple/", headers=basic(dev_token))
    assert '<a href="shop/">shop</a>' in await root.text()
    page = await client.get("/envs/dev/simple/shop/", headers=basic(dev_token))
    assert page.content_type == "text/html"
    links = {m["name"]: m for m in LINK.finditer(await page.text())}

    expected = {
        first.wheel_filename: first.sha256,
        second.wheel_filename: second.sha256,
        first.sdist_filename: first.sdist_sha256,
        second.sdist_filename: second.sdist_sha256,
    }
    assert {name: link["href"].split("#sha256=")[1] for name, link in links.items()} == expected
    assert {link["python"] for link in links.values()} == {"&gt;=3.11"}
    for name, link in links.items():
        # As pip does: the link is relative to the page, and the fragment is not sent.
        path = URL("/envs/dev/simple/shop/").join(URL(link["href"])).with_fragment(None)
        download = await client.get(str(path), headers=basic(dev_token))
        assert download.status == 200
        assert hashlib.sha256(await download.read()).hexdigest() == expected[name]


async def test_pep_691_json_when_asked_for(
    client: Client, dev_token: str, publisher: Publisher, shop: Catalog
) -> None:
    version = await publish_shop(publisher, shop, "one")
    accept = {"Accept": "application/vnd.pypi.simple.v1+json, text/html;q=0.01"}
    page = await client.get("/envs/dev/simple/shop/", headers=basic(dev_token) | accept)

    assert page.content_type == "application/vnd.pypi.simple.v1+json"
    body = await page.json(content_type=None)
    assert body["name"] == "shop"
    assert {f["filename"]: f["hashes"]["sha256"] for f in body["files"]}[
        version.wheel_filename
    ] == version.sha256
    root = await client.get("/envs/dev/simple/", headers=basic(dev_token) | accept)
    assert (await root.json(content_type=None))["projects"] == [{"name": "shop"}]


async def test_names_are_normalized_and_unknown_projects_are_404(
    client: Client, dev_token: str, publisher: Publisher, shop: Catalog
) -> None:
    await publish_shop(publisher, shop, "one")
    redirect = await client.get("/envs/dev/simple/Shop/", headers=basic(dev_token), allow_redirects=False)
    assert redirect.status == 301
    assert redirect.headers["Location"] == "../shop/"
    assert (await client.get("/envs/dev/files/orders-0.1.0.tar.gz", headers=basic(dev_token))).status == 404


async def test_public_dependencies_go_to_pypi_but_internal_names_never_do(
    database: Database, client: Client, dev_token: str, publisher: Publisher, shop: Catalog
) -> None:
    async with database.session() as session:
        await Environments(session).create("qa")
    qa_token = await new_token(database, "qa")
    await publish_shop(publisher, shop, "one")

    httpx_page = await client.get("/envs/qa/simple/httpx/", headers=basic(qa_token), allow_redirects=False)
    assert (httpx_page.status, httpx_page.headers["Location"]) == (302, "https://pypi.org/simple/httpx/")
    # shop is published to dev only: qa must not hand out PyPI's "shop" instead
    assert (
        await client.get("/envs/qa/simple/shop/", headers=basic(qa_token), allow_redirects=False)
    ).status == 404

    closed = TestClient(TestServer(create_app(Settings(), database, installers=[index_installer(None)])))
    await closed.start_server()
    try:
        assert (await closed.get("/envs/qa/simple/httpx/", headers=basic(qa_token))).status == 404
    finally:
        await closed.close()


async def test_an_environment_serves_only_what_was_deployed_to_it(
    database: Database, client: Client, publisher: Publisher, shop: Catalog
) -> None:
    async with database.session() as session:
        await Environments(session).create("qa")
    qa_token = await new_token(database, "qa")
    first = await publish_shop(publisher, shop, "one")
    second = await publish_shop(publisher, shop, "two")
    await deploy(
        database,
        team_id=TEAM,
        module_name="shop",
        environment="qa",
        version="0.1.0",
        actor=ADMIN,
        admins=[ADMIN],
    )

    page = await client.get("/envs/qa/simple/shop/", headers=basic(qa_token))
    names = {m["name"] for m in LINK.finditer(await page.text())}
    assert names == {first.wheel_filename, first.sdist_filename}
    assert (
        await client.get(f"/envs/qa/files/{second.wheel_filename}", headers=basic(qa_token))
    ).status == 404
    download = await client.get(f"/envs/qa/files/{first.wheel_filename}", headers=basic(qa_token))
    assert hashlib.sha256(await download.read()).hexdigest() == first.sha256
