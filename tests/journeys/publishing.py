"""What the publish, deploy and "My integrations" journeys share: reading the publish DM as the
user sees it, and putting integrations in place without walking the wizard each time."""

from __future__ import annotations

import html
import re

from generator.publisher import deploy
from providers.model import Catalog
from storage import Connections, Deployments, Environments, Integrations, SecretBox
from tests.fixtures.publish import shop_integration
from tests.journeys.documents import LIBRARY_V4
from tests.journeys.service import RunningService
from tests.journeys.wizard_user import WizardUser, visible_text
from tests.slack import DEVELOPER, FakeMessage, FakeSlack, SlackUser, wait_for

PUBLISH_TIMEOUT_S = 60.0  # a failure-detection limit, not a speed check
FINAL_STATES = ("published", "failed")


def state_of(text: str | None) -> str:
    """The publish state a version of the DM shows, read from its notification text."""
    text = text or ""
    if text.startswith("Published "):
        return "published"
    progress = re.fullmatch(r"Publishing \S+ to \S+: (\w+)…", text)
    if progress:
        return progress.group(1)
    return "failed" if " failed: " in text else f"unknown: {text!r}"


def states(message: FakeMessage) -> list[str]:
    """Every state the message showed, oldest first (its edit history)."""
    return [state_of(version["text"]) for version in message.versions]


def readable(message: FakeMessage) -> str:
    """The message's blocks as the user reads them (Slack's &amp; &lt; &gt; undone)."""
    return html.unescape(visible_text({"blocks": message.blocks or []}))


def code_blocks(text: str) -> list[str]:
    return re.findall(r"```(.*?)```", text, re.DOTALL)


async def final_dm(fake: FakeSlack, user: SlackUser = DEVELOPER, module: str = "") -> FakeMessage:
    """The publish DM (of ``module``) once it shows published or failed."""

    def finished() -> FakeMessage | None:
        for message in fake.messages_for(user.id):
            if module in (message.text or "") and state_of(message.text) in FINAL_STATES:
                return message
        return None

    return await wait_for(finished, PUBLISH_TIMEOUT_S, what=f"the final publish DM of {module or 'a job'}")


async def walk_to_review(user: WizardUser, module: str, *, open_integration: bool = False) -> None:
    """The wizard on the small pasted OData V4 document, up to the review."""
    await user.start()
    await user.choose_provider("sap-odata")
    await user.give_source(metadata_text=LIBRARY_V4)
    await user.pick_objects(read_write=["Books"], read_only=["Authors"])
    await user.fill_settings(
        application_name="Library", module_name=module, open=["open"] if open_integration else []
    )
    await user.wait_step("review")


async def publish_shop(
    service: RunningService,
    fake: FakeSlack,
    shop: Catalog,
    module: str = "shop",
    owner: SlackUser = DEVELOPER,
) -> str:
    """Publish the shop catalog to dev as ``owner`` (as `ib publish` would) and wait for its DM;
    returns the version."""
    job = await service.publisher.submit(
        team_id=fake.workspace.team_id,
        user_id=owner.id,
        spec=shop_integration(module),
        catalog=shop,
        dedup_key=f"publish-{module}-{len(fake.calls())}",
    )
    done = await service.publisher.wait(job.id, timeout=PUBLISH_TIMEOUT_S)
    assert done.state == "published", done.error
    await final_dm(fake, owner, module)
    assert done.version is not None
    return done.version


async def add_environment(service: RunningService, name: str, *, development: bool = False) -> None:
    async with service.database.session() as session:
        await Environments(session).create(name, development=development)


async def deploy_as_admin(service: RunningService, fake: FakeSlack, module: str, environment: str) -> None:
    """A deployment done outside Slack (`ib deploy` as the configured admin)."""
    await deploy(
        service.database,
        team_id=fake.workspace.team_id,
        module_name=module,
        environment=environment,
        actor="U0CLI",
        admins=["U0CLI"],
    )


async def connect(
    service: RunningService, box: SecretBox, fake: FakeSlack, module: str, environment: str, name: str
) -> None:
    """A connection in ``environment`` associated with ``module``, put in place directly."""
    async with service.database.session() as session:
        env = await Environments(session).require(environment)
        connection = await Connections(session, box).create(
            env,
            provider="sap-odata",
            name=name,
            settings={"url": "https://erp.example.test/"},
            secret={},
            created_by="U0CLI",
        )
        integration = await Integrations(session).by_module(fake.workspace.team_id, module)
        assert integration is not None
        await Connections(session, box).associate(integration.id, env, connection, updated_by="U0CLI")


async def seed_integrations(
    service: RunningService, fake: FakeSlack, count: int, owner: SlackUser = DEVELOPER
) -> list[str]:
    """``count`` integrations with one version each in dev, straight into the database (their
    "wheels" are not real packages); returns their module names."""
    modules = [f"seeded_{n:03d}" for n in range(count)]
    async with service.database.session() as session:
        dev = await Environments(session).require("dev")
        integrations = Integrations(session)
        for module in modules:
            integration = await integrations.create(
                team_id=fake.workspace.team_id,
                module_name=module,
                application_name=module.replace("_", " ").title(),
                provider="sap-odata",
                owner_user_id=owner.id,
                spec={},
            )
            version = await integrations.add_version(
                integration,
                version="0.1.0",
                wheel_filename=f"{module}-0.1.0-py3-none-any.whl",
                wheel=module.encode(),
                spec={},
                created_by=owner.id,
            )
            await Deployments(session).deploy(version, dev, deployed_by=owner.id)
    return modules
