"""`/ib deploy <integration> <env> [version]` and the deploy modal: promote a published version,
byte for byte, to another environment (:func:`generator.publisher.deploy`, deployer role needed).

`/ib deploy` with an integration and an environment deploys at once and answers with one line only
the user sees; with less it opens the modal (so does the Deploy button of "My integrations",
prefilled). The modal checks the deployer role in the ack, so a refusal shows under the target.
After a deployment the owner is told in a DM when the integration has no connection in the target
yet, with a button to pick one.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Mapping
from typing import Any

from slack_bolt.async_app import AsyncAck, AsyncApp, AsyncBoltContext
from slack_sdk.errors import SlackApiError
from slack_sdk.web.async_client import AsyncWebClient
from slack_sdk.webhook.async_client import AsyncWebhookClient
from sqlalchemy import select

from generator.publisher import PublishRefused, deploy
from handlers.services import CommandRequest, Services
from handlers.tasks import after_ack
from handlers.views.deploy import (
    CALLBACK_ID,
    INTEGRATION_ACTION,
    INTEGRATION_BLOCK,
    TARGET_ACTION,
    TARGET_BLOCK,
    VERSION_ACTION,
    DeployForm,
    VersionChoice,
    deploy_modal,
    deployed_text,
    integration_options,
    no_connection_message,
    outcome_view,
    version_block_id,
)
from handlers.views.integrations import DEPLOY_OPEN_ACTION
from handlers.views.publish import sentence
from storage import Associations, Deployments, Environments, Integrations
from storage.models import Integration, IntegrationVersion

log = logging.getLogger(__name__)

USAGE = "<integration> <env>"


async def deploy_form(
    services: Services,
    team_id: str,
    module: str | None,
    *,
    version: str | None = None,
    target: str | None = None,
) -> DeployForm:
    """The modal's content for ``module`` (None, or unknown: nothing picked yet)."""
    async with services.units.reading() as session:
        environments = tuple(environment.name for environment in await Environments(session).all())
        integrations = Integrations(session)
        integration = await integrations.by_module(team_id, module) if module else None
        if integration is None:
            return DeployForm(module=None, environments=environments, target=target)
        running: dict[int, list[str]] = {}
        for deployment in await Deployments(session).of_integration(integration.id):
            running.setdefault(deployment.version_id, []).append(deployment.environment.name)
        choices = tuple(
            VersionChoice(row.version, tuple(running.get(row.id, ())))
            for row in await integrations.versions(integration)
        )
    chosen = next(
        (choice for choice in choices if choice.version == version), choices[0] if choices else None
    )
    if target is None and chosen is not None:
        # From a Deploy button: the first environment that does not run this version yet.
        target = next((name for name in environments if name not in chosen.deployed_to), None)
    return DeployForm(
        module=integration.module_name,
        application_name=integration.application_name,
        versions=choices,
        version=chosen.version if chosen else None,
        environments=environments,
        target=target,
    )


async def promote(
    services: Services,
    client: AsyncWebClient,
    *,
    team_id: str,
    actor: str,
    module: str,
    environment: str,
    version: str | None,
) -> str:
    """Deploy, tell the owner when the target has no connection, and return the line for ``actor``.

    Raises :class:`PublishRefused` (one line) when the rules forbid it.
    """
    deployment = await deploy(
        services.database,
        team_id=team_id,
        module_name=module,
        environment=environment,
        version=version,
        actor=actor,
        admins=services.admins,
    )
    async with services.units.reading() as session:
        integration = await Integrations(session).by_module(team_id, module)
        association = (
            await Associations(session).get(integration.id, deployment.environment) if integration else None
        )
    connected = association is not None and association.connection_id is not None
    deployed = deployment.version
    if integration is not None and not connected:
        message = no_connection_message(module, deployed.version, environment, actor)
        try:
            await client.chat_postMessage(
                channel=integration.owner_user_id, text=message.text, blocks=message.blocks
            )
        except SlackApiError as error:
            log.warning(
                "the owner of %s was not told about %s: %s", module, environment, error.response.get("error")
            )
    return deployed_text(module, deployed.version, environment, deployed.sha256, connected=connected)


async def deploy_from_command(services: Services, client: AsyncWebClient, request: CommandRequest) -> None:
    module, environment, *rest = request.args
    try:
        line = await promote(
            services,
            client,
            team_id=request.team_id,
            actor=request.user_id,
            module=module,
            environment=environment,
            version=rest[0] if rest else None,
        )
    except PublishRefused as refused:
        line = f":no_entry: {sentence(str(refused))}"
    answer = await AsyncWebhookClient(str(request.body.get("response_url", ""))).send(
        text=line, response_type="ephemeral"
    )
    if answer.status_code != 200:
        log.warning("the answer to /ib deploy was refused: %s %s", answer.status_code, answer.body)


async def open_modal(
    services: Services,
    client: AsyncWebClient,
    team_id: str,
    trigger_id: str,
    form_args: Mapping[str, str | None],
) -> None:
    """Open the modal at once (a trigger lives 3 s), then fill it."""
    try:
        opened = await client.views_open(trigger_id=trigger_id, view=outcome_view("Loading…"))
    except SlackApiError as error:
        log.info("deploy modal not opened: %s", error.response.get("error"))
        return
    form = await deploy_form(
        services,
        team_id,
        form_args.get("module"),
        version=form_args.get("version"),
        target=form_args.get("target"),
    )
    await _update(client, opened["view"]["id"], deploy_modal(form), view_hash=opened["view"]["hash"])


async def _update(
    client: AsyncWebClient, view_id: str, view: dict[str, Any], *, view_hash: str | None = None
) -> None:
    try:
        await client.views_update(view_id=view_id, view=view, hash=view_hash)
    except SlackApiError as error:
        # The user closed the modal or it changed meanwhile: nothing to show any more.
        log.info("views.update of the deploy modal failed: %s", error.response.get("error"))


def _selected(values: Mapping[str, Mapping[str, Any]], block_id: str, action_id: str) -> str | None:
    chosen = (values.get(block_id, {}).get(action_id) or {}).get("selected_option") or {}
    value = chosen.get("value")
    return str(value) if value else None


def _shown_module(view: Mapping[str, Any]) -> str | None:
    try:
        module = json.loads(str(view.get("private_metadata") or "{}")).get("module")
    except (ValueError, AttributeError):
        return None
    return str(module) if module else None


async def submit(
    services: Services,
    ack: AsyncAck,
    body: Mapping[str, Any],
    client: AsyncWebClient,
    context: AsyncBoltContext,
) -> None:
    """Check the form (and the deployer role) in the ack; deploy afterwards and show the outcome."""
    view = body["view"]
    values: Mapping[str, Mapping[str, Any]] = view.get("state", {}).get("values", {})
    module = _selected(values, INTEGRATION_BLOCK, INTEGRATION_ACTION)
    shown = _shown_module(view)
    version = _selected(values, version_block_id(shown), VERSION_ACTION) if shown else None
    target = _selected(values, TARGET_BLOCK, TARGET_ACTION)
    user_id = str(context.user_id)
    errors: dict[str, str] = {}
    if module is None:
        errors[INTEGRATION_BLOCK] = "Pick an integration."
    elif module != shown or version is None:
        errors[INTEGRATION_BLOCK] = (
            f"{module} has no version to deploy yet (or its versions are still loading)."
        )
    if target is None:
        errors[TARGET_BLOCK] = "Pick the environment to deploy to."
    elif not await services.has_role(user_id, "deployer", target):
        errors[TARGET_BLOCK] = (
            f"You need the deployer role in {target} to deploy there; an admin grants it with "
            f"`ib access grant {user_id} deployer {target}`."
        )
    if errors or module is None or target is None:
        await ack(response_action="errors", errors=errors)
        return
    await ack(response_action="update", view=outcome_view(f"Deploying *{module}* {version} to `{target}`…"))
    services.tasks.spawn(
        finish_submission(services, client, context, str(view["id"]), module, version, target), name="deploy"
    )


async def finish_submission(
    services: Services,
    client: AsyncWebClient,
    context: AsyncBoltContext,
    view_id: str,
    module: str,
    version: str | None,
    target: str,
) -> None:
    await after_ack(context)
    try:
        text = await promote(
            services,
            client,
            team_id=str(context.team_id),
            actor=str(context.user_id),
            module=module,
            environment=target,
            version=version,
        )
    except PublishRefused as refused:
        text = f":no_entry: {sentence(str(refused))}"
    await _update(client, view_id, outcome_view(text))


async def switch_integration(
    services: Services,
    client: AsyncWebClient,
    context: AsyncBoltContext,
    view: Mapping[str, Any],
    module: str | None,
) -> None:
    """Another integration was picked: show its versions, keep the chosen target."""
    values: Mapping[str, Mapping[str, Any]] = view.get("state", {}).get("values", {})
    target = _selected(values, TARGET_BLOCK, TARGET_ACTION)
    form = await deploy_form(services, str(context.team_id), module, target=target)
    await _update(client, str(view["id"]), deploy_modal(form), view_hash=view.get("hash"))


async def search(services: Services, team_id: str, query: str) -> list[tuple[str, str]]:
    """Published integrations of the workspace whose module or application name contains ``query``."""
    wanted = query.strip().lower()
    published = select(IntegrationVersion.integration_id)
    async with services.units.reading() as session:
        rows = await session.execute(
            select(Integration.module_name, Integration.application_name)
            .where(Integration.team_id == team_id, Integration.id.in_(published))
            .order_by(Integration.module_name)
        )
        return [(module, name) for module, name in rows if wanted in module.lower() or wanted in name.lower()]


def register(app: AsyncApp, services: Services) -> None:
    async def deploy_command(request: CommandRequest) -> None:
        await request.ack()
        if len(request.args) >= 2:
            services.tasks.spawn(
                deploy_from_command(services, request.client, request), name="deploy-command"
            )
            return
        form_args = {"module": request.args[0] if request.args else None}
        services.tasks.spawn(
            open_modal(services, request.client, request.team_id, request.trigger_id, form_args),
            name="deploy-open",
        )

    services.subcommands.add(
        "deploy",
        deploy_command,
        summary="promote a published version to another environment (the newest unless a version follows)",
        usage=USAGE,
    )

    @app.action(DEPLOY_OPEN_ACTION)
    async def deploy_button(
        ack: AsyncAck,
        body: dict[str, Any],
        action: dict[str, Any],
        client: AsyncWebClient,
        context: AsyncBoltContext,
    ) -> None:
        await ack()
        try:
            wanted = json.loads(str(action.get("value", "")))
            form_args = {"module": str(wanted["module"]), "version": str(wanted["version"])}
        except (ValueError, KeyError, TypeError):
            form_args = {}
        services.tasks.spawn(
            open_modal(services, client, str(context.team_id), str(body.get("trigger_id", "")), form_args),
            name="deploy-open",
        )

    @app.action(INTEGRATION_ACTION)
    async def integration_picked(
        ack: AsyncAck,
        body: dict[str, Any],
        action: dict[str, Any],
        client: AsyncWebClient,
        context: AsyncBoltContext,
    ) -> None:
        await ack()
        picked = (action.get("selected_option") or {}).get("value")
        if "view" in body:
            services.tasks.spawn(
                switch_integration(services, client, context, body["view"], str(picked) if picked else None),
                name="deploy-switch",
            )

    @app.options(INTEGRATION_ACTION)
    async def integration_suggestions(ack: AsyncAck, body: dict[str, Any], context: AsyncBoltContext) -> None:
        found = await search(services, str(context.team_id), str(body.get("value", "")))
        await ack(options=integration_options(found))

    @app.view(CALLBACK_ID)
    async def deploy_submission(
        ack: AsyncAck, body: dict[str, Any], client: AsyncWebClient, context: AsyncBoltContext
    ) -> None:
        await submit(services, ack, body, client, context)
