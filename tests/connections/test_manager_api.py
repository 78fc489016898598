"""The Integration Manager runtime API over real HTTP: tokens, environments, clear errors."""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass

import httpx
import pytest

from bot.manager import install_manager
from generator.publisher import Publisher, deploy
from handlers.connections_service import RUNTIME_CACHE_SECONDS, ConnectionService, RuntimeLookupError
from providers.model import Catalog
from storage import Database, Environments, RuntimeTokens, SecretBox, generate_key
from tests.fixtures.connections import add_environment, publish, runtime_token, serving
from tests.fixtures.publish import ADMIN, TEAM, shop_integration
from tests.peers.cap import CapServer

pytestmark = pytest.mark.peers
PATH = "/manager/v1/integrations/{module}/connection"


@dataclass
class Shop:
    """`shop` published to dev with a connection as CAP user alice, deployed to qa without one."""

    database: Database
    connections: ConnectionService
    dev_token: str
    qa_token: str
    qa_token_id: int


@pytest.fixture
async def shop_everywhere(
    database: Database,
    connections: ConnectionService,
    publisher: Publisher,
    shop: Catalog,
    cap_server: CapServer,
) -> Shop:
    await publish(publisher, shop, shop_integration())
    await add_environment(database, "qa")
    await deploy(database, team_id=TEAM, module_name="shop", environment="qa", actor=ADMIN, admins=[ADMIN])
    for environment, user in (("dev", "alice"), ("qa", "quinn")):
        await connections.create_connection(
            ADMIN,
            environment=environment,
            provider="sap-odata",
            name=f"cap-{environment}",
            values={"url": cap_server.v2_url, "user": user, "password": cap_server.users[user]},
        )
    await connections.associate(ADMIN, module_name="shop", environment="dev", connection_name="cap-dev")
    _, dev_token = await runtime_token(database, "dev")
    qa_token_id, qa_token = await runtime_token(database, "qa")
    return Shop(database, connections, dev_token, qa_token, qa_token_id)


@pytest.fixture
async def manager(database: Database, secret_box: SecretBox) -> AsyncIterator[httpx.AsyncClient]:
    async with (
        serving(database, secret_box, installers=[install_manager]) as base_url,
        httpx.AsyncClient(base_url=base_url, trust_env=False) as client,
    ):
        yield client


async def ask(client: httpx.AsyncClient, token: str | None, module: str = "shop") -> httpx.Response:
    headers = {"Authorization": f"Bearer {token}"} if token is not None else {}
    return await client.get(PATH.format(module=module), headers=headers)


async def test_each_environment_token_gets_that_environments_connection(
    shop_everywhere: Shop, manager: httpx.AsyncClient, cap_server: CapServer
) -> None:
    shop = shop_everywhere
    await shop.connections.associate(ADMIN, module_name="shop", environment="qa", connection_name="cap-qa")

    dev, qa = await ask(manager, shop.dev_token), await ask(manager, shop.qa_token)

    assert dev.status_code == qa.status_code == 200
    assert dev.headers["Cache-Control"] == qa.headers["Cache-Control"] == "no-store"
    assert dev.json() == {
        "url": cap_server.v2_url,
        "auth": {"type": "basic", "user": "alice", "password": cap_server.users["alice"]},
        "headers": {},
        "params": {},
        "expires_in": 300,
    }
    assert qa.json()["auth"] == {"type": "basic", "user": "quinn", "password": cap_server.users["quinn"]}


@pytest.mark.parametrize(
    "authorization",
    [None, "", "Bearer", "Bearer  x", "Basic X190b2tlbl9fOmlicnRfeA==", "Bearer ibrt_not-a-real-token"],
)
async def test_a_request_without_a_live_token_gets_401(
    shop_everywhere: Shop, manager: httpx.AsyncClient, authorization: str | None
) -> None:
    headers = {"Authorization": authorization} if authorization is not None else {}
    response = await manager.get(PATH.format(module="shop"), headers=headers)

    assert response.status_code == 401
    assert response.headers["WWW-Authenticate"].startswith("Bearer")
    assert "token" in response.json()["error"]
    assert "password" not in response.text


async def test_a_revoked_token_gets_401(shop_everywhere: Shop, manager: httpx.AsyncClient) -> None:
    shop = shop_everywhere
    await shop.connections.associate(ADMIN, module_name="shop", environment="qa", connection_name="cap-qa")

    async with shop.database.session() as session:
        assert await RuntimeTokens(session).revoke(shop.qa_token_id)
    refused = await ask(manager, shop.qa_token)

    assert refused.status_code == 401
    assert refused.json() == {
        "error": "the runtime token is unknown or revoked; create one with `ib env token create ENV`"
    }


async def test_answers_are_kept_a_few_seconds_and_changes_made_through_the_service_drop_them(
    shop_everywhere: Shop, database: Database, secret_box: SecretBox, cap_server: CapServer
) -> None:
    shop, now = shop_everywhere, [1000.0]
    replica = ConnectionService(database, secret_box, admins=[ADMIN], monotonic=lambda: now[0])
    quinn = {"url": cap_server.v2_url, "user": "quinn", "password": cap_server.users["quinn"]}

    await replica.associate(ADMIN, module_name="shop", environment="qa", connection_name="cap-qa")
    assert (await replica.runtime_answer(shop.qa_token, "shop"))["auth"]["user"] == "quinn"
    await replica.edit_connection(
        ADMIN, environment="qa", name="cap-qa", values={**quinn, "sap_client": "300"}
    )
    assert (await replica.runtime_answer(shop.qa_token, "shop"))["params"] == {"sap-client": "300"}

    # Changes elsewhere (another replica, the CLI, a revocation) show after RUNTIME_CACHE_SECONDS.
    await shop.connections.edit_connection(ADMIN, environment="qa", name="cap-qa", values=quinn)
    async with database.session() as session:
        assert await RuntimeTokens(session).revoke(shop.qa_token_id)
    now[0] += RUNTIME_CACHE_SECONDS - 1
    kept = await replica.runtime_answer(shop.qa_token, "shop")
    assert (kept["params"], kept["expires_in"]) == ({"sap-client": "300"}, 300 - (RUNTIME_CACHE_SECONDS - 1))
    now[0] += 1
    with pytest.raises(RuntimeLookupError) as refused:
        await replica.runtime_answer(shop.qa_token, "shop")
    assert refused.value.reason == "unauthorized"


async def test_a_missing_association_says_which_integration_environment_and_how_to_fix_it(
    shop_everywhere: Shop, manager: httpx.AsyncClient
) -> None:
    response = await ask(manager, shop_everywhere.qa_token)

    assert response.status_code == 409
    assert response.json() == {
        "error": "integration 'shop' has no connection in environment 'qa': ask a connection admin to run "
        "/ib connections or `ib connection associate shop qa <connection name>`"
    }


async def test_an_integration_not_deployed_to_the_tokens_environment_is_404(
    shop_everywhere: Shop, database: Database, manager: httpx.AsyncClient
) -> None:
    await add_environment(database, "prod")
    _, prod_token = await runtime_token(database, "prod")

    for token, module, environment in (
        (shop_everywhere.dev_token, "orders", "dev"),
        (prod_token, "shop", "prod"),
    ):
        response = await ask(manager, token, module)
        assert response.status_code == 404
        assert response.json()["error"] == (
            f"integration {module!r} is not deployed to environment {environment!r}: deploy it with "
            f"/ib deploy or `ib deploy {module} {environment}`"
        )


async def test_removing_the_environment_ends_its_tokens(
    shop_everywhere: Shop, manager: httpx.AsyncClient
) -> None:
    async with shop_everywhere.database.session() as session:
        environments = Environments(session)
        await environments.remove(await environments.require("qa"), force=True)

    assert (await ask(manager, shop_everywhere.qa_token)).status_code == 401
    assert (await ask(manager, shop_everywhere.dev_token)).status_code == 200


async def test_a_secret_that_does_not_decrypt_fails_loudly_without_any_value(
    shop_everywhere: Shop, database: Database, cap_server: CapServer, caplog: pytest.LogCaptureFixture
) -> None:
    async with (
        serving(database, SecretBox([generate_key()]), installers=[install_manager]) as base_url,
        httpx.AsyncClient(base_url=base_url, trust_env=False) as client,
    ):
        response = await ask(client, shop_everywhere.dev_token)

    assert response.status_code == 500
    assert response.json() == {
        "error": "the Integration Manager could not read the connection of 'shop'; see its log"
    }
    assert "cannot be decrypted with the configured keys" in caplog.text
    assert cap_server.users["alice"] not in caplog.text + response.text


async def test_without_secret_keys_the_manager_answers_503(shop_everywhere: Shop, database: Database) -> None:
    async with (
        serving(database, None, installers=[install_manager]) as base_url,
        httpx.AsyncClient(base_url=base_url, trust_env=False) as client,
    ):
        response = await ask(client, shop_everywhere.dev_token)
    assert response.status_code == 503
    assert response.json() == {"error": "the Integration Manager has no secret keys configured"}
