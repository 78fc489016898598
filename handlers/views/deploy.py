"""The deploy modal (integration, version, target environment), its outcomes, and the DM that tells
an owner their integration has no connection in the environment it was deployed to."""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Final

from handlers.views.blocks import (
    MAX_BLOCKS,
    Block,
    context,
    input_block,
    modal,
    option,
    section,
)
from handlers.views.integrations import Message, connect_button, notice_modal

CALLBACK_ID: Final = "ib_deploy"
TITLE: Final = "Deploy"
INTEGRATION_ACTION: Final = "deploy_integration"  # external select: the workspace may have hundreds
INTEGRATION_BLOCK: Final = "deploy_integration"
VERSION_ACTION: Final = "deploy_version"
TARGET_ACTION: Final = "deploy_target"
TARGET_BLOCK: Final = "deploy_target"
SELECT_MAX_OPTIONS: Final = 100


def version_block_id(module: str) -> str:
    """The version input's block, named after the integration so that a choice made for one
    integration is not kept when the modal switches to another."""
    return f"deploy_version:{module}"


@dataclass(frozen=True, slots=True)
class VersionChoice:
    version: str
    deployed_to: tuple[str, ...]  # environments running it now


@dataclass(frozen=True, slots=True)
class DeployForm:
    """What the modal shows; ``module`` None until an integration is picked."""

    module: str | None
    application_name: str = ""
    versions: tuple[VersionChoice, ...] = ()  # newest first
    version: str | None = None
    environments: tuple[str, ...] = ()
    target: str | None = None


def integration_option(module: str, application_name: str) -> dict[str, Any]:
    return option(module, module, application_name if application_name != module else "")


def _version_option(choice: VersionChoice) -> dict[str, Any]:
    where = f"in {', '.join(choice.deployed_to)}" if choice.deployed_to else ""
    return option(choice.version, choice.version, where)


def deploy_modal(form: DeployForm) -> dict[str, Any]:
    integration: dict[str, Any] = {
        "type": "external_select",
        "action_id": INTEGRATION_ACTION,
        "min_query_length": 0,
        "placeholder": {"type": "plain_text", "text": "Search your workspace's integrations"},
    }
    if form.module is not None:
        integration["initial_option"] = integration_option(form.module, form.application_name)
    blocks: list[Block] = [
        input_block(
            INTEGRATION_BLOCK,
            "Integration",
            integration,
            dispatch_action=True,
            hint="Only published integrations can be deployed.",
        )
    ]
    if form.module is None:
        blocks.append(context("Pick an integration to see its versions."))
    elif not form.versions:
        blocks.append(context(f"`{form.module}` has no published version yet."))
    else:
        versions = [_version_option(choice) for choice in form.versions[:SELECT_MAX_OPTIONS]]
        chosen = next((o for o in versions if o["value"] == form.version), versions[0])
        element = {
            "type": "static_select",
            "action_id": VERSION_ACTION,
            "options": versions,
            "initial_option": chosen,
        }
        hint = "Newest first. The same bytes (and sha256) are served by the target's package index."
        blocks.append(input_block(version_block_id(form.module), "Version", element, hint=hint))
    targets = [option(name, name) for name in form.environments[:SELECT_MAX_OPTIONS]]
    target: dict[str, Any] = {
        "type": "static_select",
        "action_id": TARGET_ACTION,
        "options": targets,
        "placeholder": {"type": "plain_text", "text": "Where it should run"},
    }
    initial_target = next((o for o in targets if o["value"] == form.target), None)
    if initial_target is not None:
        target["initial_option"] = initial_target
    blocks.append(input_block(TARGET_BLOCK, "Target environment", target))
    return modal(
        TITLE,
        blocks[:MAX_BLOCKS],
        callback_id=CALLBACK_ID,
        private_metadata=json.dumps({"module": form.module}),
        submit="Deploy",
    )


def outcome_view(text: str) -> dict[str, Any]:
    """Deploying…, deployed, or why not."""
    return notice_modal(TITLE, text, callback_id=CALLBACK_ID)


def deployed_text(module: str, version: str, environment: str, sha256: str, *, connected: bool) -> str:
    text = f":white_check_mark: Deployed *{module}* {version} to `{environment}` (sha256 `{sha256[:12]}…`)."
    if not connected:
        text += f" It has no connection in `{environment}` yet; its owner was told."
    return text


def no_connection_message(module: str, version: str, environment: str, deployed_by: str) -> Message:
    """The owner's DM after a deployment to an environment where the integration has no connection."""
    text = (
        f"<@{deployed_by}> deployed *{module}* {version} to `{environment}`. It has no connection in "
        f"`{environment}` yet, so apps there cannot call it: pick one."
    )
    blocks: list[Block] = [
        section(text, accessory=connect_button(module, environment, "Pick a connection")),
    ]
    return Message(f"{module} {version} has no connection in {environment} yet", blocks)


def integration_options(found: Sequence[tuple[str, str]]) -> list[dict[str, Any]]:
    """Options of the integration search: (module, application name) pairs, at most 100."""
    return [integration_option(module, name) for module, name in found[:SELECT_MAX_OPTIONS]]
