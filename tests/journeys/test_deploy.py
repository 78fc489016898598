"""Deploying dev -> qa from Slack: `/ib deploy <integration> <env>` and the deploy modal, the
deployer role, and the owner's DM about the missing connection."""

from __future__ import annotations

import json

import pytest

from providers.model import Catalog
from storage import AccessGrants, Deployments, Environments, Integrations
from tests.journeys.publishing import add_environment, publish_shop, readable
from tests.journeys.service import RunningService
from tests.journeys.wizard_user import visible_text
from tests.slack import BYSTANDER, DEVELOPER, Driver, FakeMessage, FakeSlack, SlackUser, wait_for


@pytest.fixture
async def published(service: RunningService, fake_slack: FakeSlack, shop: Catalog) -> RunningService:
    """shop 0.1.0 published to dev by the developer, and a qa environment to deploy to."""
    await add_environment(service, "qa")
    await publish_shop(service, fake_slack, shop)
    return service


async def grant_deployer(service: RunningService, user: SlackUser, environment: str) -> None:
    async with service.database.session() as session:
        await AccessGrants(session).grant(user.id, "deployer", environment, created_by="setup")


async def served(service: RunningService, team_id: str, environment: str) -> dict[str, str]:
    """version -> sha256 of what the environment's index runs now."""
    async with service.database.session() as session:
        env = await Environments(session).require(environment)
        integration = await Integrations(session).by_module(team_id, "shop")
        assert integration is not None
        current = await Deployments(session).current(integration.id, env)
    return {current.version.version: current.version.sha256} if current is not None else {}


async def ephemeral_reply(driver: Driver, fake: FakeSlack, user: SlackUser, text: str) -> str:
    before = len(fake.ephemerals_for(user.id))
    ack = await driver.slash_command(user, text)
    assert ack.status == 200 and not ack.text.strip()
    replies = await wait_for(lambda: fake.ephemerals_for(user.id)[before:], what=f"the answer to /ib {text}")
    (reply,) = replies
    return str(reply.text)


async def no_connection_dm(fake: FakeSlack, owner: SlackUser) -> FakeMessage:
    return await wait_for(
        lambda: next(
            (m for m in fake.messages_for(owner.id) if "no connection in qa" in (m.text or "")), None
        ),
        what="the owner's DM about the connection",
    )


async def test_deploying_by_slash_command_needs_the_deployer_role_and_tells_the_owner(
    published: RunningService, driver: Driver, fake_slack: FakeSlack
) -> None:
    team = fake_slack.workspace.team_id
    refused = await ephemeral_reply(driver, fake_slack, BYSTANDER, "deploy shop qa")
    assert refused == (
        f":no_entry: <@{BYSTANDER.id}> may not deploy to qa: that needs the deployer role "
        f"(`ib access grant {BYSTANDER.id} deployer qa`)."
    )
    assert await served(published, team, "qa") == {}

    await grant_deployer(published, BYSTANDER, "qa")
    deployed = await ephemeral_reply(driver, fake_slack, BYSTANDER, "deploy shop qa")

    in_dev, in_qa = await served(published, team, "dev"), await served(published, team, "qa")
    assert in_qa == in_dev and list(in_qa) == ["0.1.0"]  # the same bytes: the same sha256
    sha = in_qa["0.1.0"]
    assert deployed == (
        f":white_check_mark: Deployed *shop* 0.1.0 to `qa` (sha256 `{sha[:12]}…`). "
        "It has no connection in `qa` yet; its owner was told."
    )
    told = await no_connection_dm(fake_slack, DEVELOPER)
    assert f"<@{BYSTANDER.id}> deployed *shop* 0.1.0 to `qa`" in readable(told)
    (button,) = [e for b in told.blocks or [] if (e := b.get("accessory"))]
    assert button["action_id"] == "connections_open"
    assert json.loads(button["value"]) == {"module": "shop", "env": "qa"}
    assert fake_slack.messages_for(BYSTANDER.id) == []


async def test_deploying_an_unknown_integration_or_to_an_unknown_environment_says_so_in_one_line(
    published: RunningService, driver: Driver, fake_slack: FakeSlack
) -> None:
    await grant_deployer(published, DEVELOPER, "qa")
    assert await ephemeral_reply(driver, fake_slack, DEVELOPER, "deploy nothing qa") == (
        ":no_entry: There is no integration named nothing in this workspace."
    )
    assert await ephemeral_reply(driver, fake_slack, DEVELOPER, "deploy shop prod") == (
        ":no_entry: There is no environment named 'prod'; see `ib env list`."
    )
    assert await ephemeral_reply(driver, fake_slack, DEVELOPER, "deploy shop qa 9.9.9") == (
        ":no_entry: Shop has no version 9.9.9 (latest: 0.1.0)."
    )


async def open_deploy_modal_from_home(driver: Driver, fake: FakeSlack, user: SlackUser) -> dict[str, object]:
    await driver.event(user, "app_home_opened")
    await wait_for(lambda: fake.home_view(user.id), what="the App Home")
    ack = await driver.block_action(user, "deploy_open", block_id="env:shop:dev")
    assert ack.status == 200
    return await wait_for(
        lambda: (view := fake.current_view(user.id)) and view.get("submit") and view, what="the deploy modal"
    )


def selected(view: dict[str, object], action_id: str) -> str | None:
    for block in view["blocks"]:  # type: ignore[attr-defined]
        element = block.get("element") or {}
        if element.get("action_id") == action_id:
            return (element.get("initial_option") or {}).get("value")
    return None


async def test_the_deploy_button_opens_a_prefilled_modal_that_refuses_inline_without_the_role(
    published: RunningService, driver: Driver, fake_slack: FakeSlack
) -> None:
    view = await open_deploy_modal_from_home(driver, fake_slack, DEVELOPER)
    assert (selected(view, "deploy_integration"), selected(view, "deploy_version")) == ("shop", "0.1.0")
    assert selected(view, "deploy_target") == "qa"  # the first environment not running 0.1.0

    refused = await driver.view_submission(DEVELOPER)
    assert refused.json == {
        "response_action": "errors",
        "errors": {
            "deploy_target": "You need the deployer role in qa to deploy there; an admin grants it with "
            f"`ib access grant {DEVELOPER.id} deployer qa`."
        },
    }

    await grant_deployer(published, DEVELOPER, "qa")
    accepted = await driver.view_submission(DEVELOPER)
    assert accepted.json["response_action"] == "update"
    done = await wait_for(
        lambda: (
            "Deployed" in visible_text(fake_slack.current_view(DEVELOPER.id) or {})
            and fake_slack.current_view(DEVELOPER.id)
        ),
        what="the outcome in the modal",
    )
    assert "Deployed *shop* 0.1.0 to `qa`" in visible_text(done)
    assert list(await served(published, fake_slack.workspace.team_id, "qa")) == ["0.1.0"]
    await no_connection_dm(fake_slack, DEVELOPER)


async def test_the_modal_without_arguments_finds_the_integration_and_deploys_an_older_version(
    published: RunningService, driver: Driver, fake_slack: FakeSlack, shop: Catalog
) -> None:
    await publish_shop(published, fake_slack, shop)  # 0.1.1
    await grant_deployer(published, DEVELOPER, "qa")
    ack = await driver.slash_command(DEVELOPER, "deploy")
    assert ack.status == 200
    await wait_for(lambda: (v := fake_slack.current_view(DEVELOPER.id)) and v.get("submit"), what="the modal")

    options = await driver.block_suggestion(DEVELOPER, "deploy_integration", "")
    assert [o["value"] for o in json.loads(options.text)["options"]] == ["shop"]
    await driver.block_action(DEVELOPER, "deploy_integration", "shop")
    view = await wait_for(
        lambda: (v := fake_slack.current_view(DEVELOPER.id)) and selected(v, "deploy_version") and v,
        what="the versions of shop",
    )
    (versions,) = [
        b["element"]["options"]
        for b in view["blocks"]
        if b.get("element", {}).get("action_id") == "deploy_version"
    ]
    assert [o["value"] for o in versions] == ["0.1.1", "0.1.0"]  # newest first

    await driver.view_submission(DEVELOPER, values={"deploy_version": "0.1.0", "deploy_target": "qa"})

    await wait_for(
        lambda: "Deployed" in visible_text(fake_slack.current_view(DEVELOPER.id) or {}), what="the outcome"
    )
    assert list(await served(published, fake_slack.workspace.team_id, "qa")) == ["0.1.0"]
    assert list(await served(published, fake_slack.workspace.team_id, "dev")) == ["0.1.1"]
