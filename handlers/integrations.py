"""My integrations: `/ib list` (a message only the user sees) and the App Home tab, with their
page buttons and the Download button (the package, posted to the user's DM).

Every listener acks at once; reading the database and talking to Slack happen afterwards in
``services.tasks``. `/ib list` answers through the command's response_url, so its page buttons
replace that same message.
"""

from __future__ import annotations

import json
import logging
import re
from typing import Any

from slack_bolt.async_app import AsyncAck, AsyncApp, AsyncBoltContext
from slack_sdk.web.async_client import AsyncWebClient
from slack_sdk.webhook.async_client import AsyncWebhookClient

from handlers.publish_progress import upload_to_dm
from handlers.services import CommandRequest, Services
from handlers.views.integrations import (
    DOWNLOAD_ACTION,
    PAGE_ACTIONS,
    EnvironmentRow,
    IntegrationSummary,
    home_view,
    integrations_message,
    package_comment,
)
from providers.base import all_providers
from storage import Associations, Deployments, Integrations

log = logging.getLogger(__name__)


async def my_integrations(services: Services, team_id: str, user_id: str) -> list[IntegrationSummary]:
    """The integrations ``user_id`` owns in the workspace, each with where it runs and on which
    connection, by module name."""
    titles = {provider.key: provider.title for provider in all_providers()}
    summaries = []
    async with services.units.reading() as session:
        integrations = Integrations(session)
        for integration in await integrations.in_team(team_id):
            if integration.owner_user_id != user_id:
                continue
            versions = await integrations.versions(integration)
            rows = []
            for deployment in await Deployments(session).of_integration(integration.id):
                association = await Associations(session).get(integration.id, deployment.environment)
                connection = association.connection if association is not None else None
                rows.append(
                    EnvironmentRow(
                        deployment.environment.name,
                        deployment.version.version,
                        connection.name if connection is not None else None,
                    )
                )
            summaries.append(
                IntegrationSummary(
                    module_name=integration.module_name,
                    application_name=integration.application_name,
                    provider_title=titles.get(integration.provider, integration.provider),
                    open=integration.open,
                    latest_version=versions[0].version if versions else None,
                    environments=tuple(rows),
                )
            )
    return summaries


async def publish_home(
    services: Services, client: AsyncWebClient, team_id: str, user_id: str, page: int = 0
) -> None:
    view = home_view(await my_integrations(services, team_id, user_id), page)
    await client.views_publish(user_id=user_id, view=view)


async def answer_list(
    services: Services, response_url: str, team_id: str, user_id: str, page: int = 0, *, replace: bool = False
) -> None:
    """`/ib list` (``replace``: a page button of that answer) through the interaction's response_url."""
    message = integrations_message(await my_integrations(services, team_id, user_id), page)
    answer = await AsyncWebhookClient(response_url).send(
        text=message.text,
        blocks=message.blocks,
        response_type="ephemeral",
        replace_original=replace or None,
    )
    if answer.status_code != 200:
        log.warning("the answer to /ib list was refused: %s %s", answer.status_code, answer.body)


async def may_download(services: Services, team_id: str, user_id: str, module: str) -> bool:
    """The owner, or a developer of an environment the integration runs in."""
    async with services.units.reading() as session:
        integration = await Integrations(session).by_module(team_id, module)
        if integration is None:
            return False
        if integration.owner_user_id == user_id:
            return True
        environments = [d.environment.name for d in await Deployments(session).of_integration(integration.id)]
    for environment in environments:
        if await services.has_role(user_id, "developer", environment):
            return True
    return False


async def send_package(
    services: Services, client: AsyncWebClient, team_id: str, user_id: str, value: str
) -> None:
    """Download: the version's wheel, posted to the user's DM."""
    try:
        wanted = json.loads(value)
        module, version_name = str(wanted["module"]), str(wanted["version"])
    except (ValueError, KeyError, TypeError):
        log.warning("a Download button with a broken value was clicked")
        return
    if not await may_download(services, team_id, user_id, module):
        await client.chat_postMessage(
            channel=user_id, text=f"You may not download {module}: ask its owner or a developer of it."
        )
        return
    async with services.units.reading() as session:
        integrations = Integrations(session)
        integration = await integrations.by_module(team_id, module)
        version = await integrations.get_version(integration, version_name) if integration else None
        wheel = await integrations.artifact(version, version.wheel_filename) if version else None
    if version is None or wheel is None:
        await client.chat_postMessage(
            channel=user_id, text=f"{module} {version_name} does not exist any more."
        )
        return
    comment = package_comment(module, version.version, version.sha256, version.wheel_filename)
    await upload_to_dm(client, user_id, [(version.wheel_filename, wheel)], comment)


def _page(value: str) -> int:
    try:
        return max(0, int(value))
    except ValueError:
        return 0


def register(app: AsyncApp, services: Services) -> None:
    async def list_command(request: CommandRequest) -> None:
        await request.ack()
        response_url = str(request.body.get("response_url", ""))
        services.tasks.spawn(
            answer_list(services, response_url, request.team_id, request.user_id), name="integrations-list"
        )

    services.subcommands.add(
        "list", list_command, summary="your integrations, their versions and connections"
    )

    @app.event("app_home_opened")
    async def home_opened(event: dict[str, Any], client: AsyncWebClient, context: AsyncBoltContext) -> None:
        if event.get("tab", "home") != "home":
            return
        services.tasks.spawn(
            publish_home(services, client, str(context.team_id), str(event.get("user", ""))), name="home"
        )

    @app.action(re.compile(f"^({'|'.join(PAGE_ACTIONS)})$"))
    async def turn_page(
        ack: AsyncAck,
        body: dict[str, Any],
        action: dict[str, Any],
        client: AsyncWebClient,
        context: AsyncBoltContext,
    ) -> None:
        await ack()
        page = _page(str(action.get("value", "")))
        team_id, user_id = str(context.team_id), str(context.user_id)
        if body.get("container", {}).get("type") == "view":
            services.tasks.spawn(publish_home(services, client, team_id, user_id, page), name="home-page")
        elif body.get("response_url"):
            services.tasks.spawn(
                answer_list(services, str(body["response_url"]), team_id, user_id, page, replace=True),
                name="integrations-page",
            )

    @app.action(DOWNLOAD_ACTION)
    async def download(
        ack: AsyncAck, action: dict[str, Any], client: AsyncWebClient, context: AsyncBoltContext
    ) -> None:
        await ack()
        services.tasks.spawn(
            send_package(
                services, client, str(context.team_id), str(context.user_id), str(action.get("value", ""))
            ),
            name="integration-download",
        )
