"""The publish DM, "How to use", "My integrations" and the deploy modal as Slack would accept them."""

from __future__ import annotations

import html
import json
import re
from typing import Any

from generator.package import generate_package
from generator.publisher import install_command
from handlers.views.deploy import DeployForm, VersionChoice, deploy_modal, version_block_id
from handlers.views.integrations import (
    CONNECTIONS_ACTION,
    EnvironmentRow,
    IntegrationSummary,
    home_view,
    integrations_message,
    paginate,
)
from handlers.views.publish import (
    PUBLISH_STATES,
    failed_message,
    how_to_use_view,
    progress_message,
    published_message,
    usage_snippet,
)
from providers.model import Catalog
from tests.fixtures.generated import shop_catalog, shop_spec
from tests.fixtures.publish import all_objects
from tests.journeys.wizard_user import visible_text
from tests.slack.blockkit import (
    MAX_MESSAGE_BLOCKS,
    MAX_VIEW_BLOCKS,
    is_view_too_large,
    iter_elements,
    message_block_problems,
    view_problems,
)

INSTALL = install_command("https://ib.example.test", "dev", "shop")


def shown(blocks: list[dict[str, Any]]) -> str:
    """What a user reads: the blocks' texts with Slack's escapes undone."""
    return html.unescape(visible_text({"blocks": blocks}))


def code_blocks(text: str) -> list[str]:
    return re.findall(r"```(.*?)```", text, re.DOTALL)


def test_the_progress_message_names_the_state_it_is_in() -> None:
    for state in PUBLISH_STATES[:-1]:
        message = progress_message(application_name="Shop", module="shop", environment="dev", state=state)
        assert message_block_problems(message.blocks) == []
        assert message.text == f"Publishing shop to dev: {state}…"
        assert ":hourglass_flowing_sand: " + state.title() in shown(message.blocks)


def test_the_published_message_has_the_pip_line_a_snippet_that_calls_a_generated_action_and_buttons() -> None:
    package = generate_package(shop_catalog(), shop_spec("shop"))
    snippet = usage_snippet(package.readme)
    message = published_message(
        application_name="Shop <&> Co",
        module="shop",
        version="0.1.3",
        environment="dev",
        install_line=INSTALL,
        manager_url="https://ib.example.test",
        snippet=snippet,
    )

    assert message_block_problems(message.blocks) == []
    text = shown(message.blocks)
    assert "Shop <&> Co (shop) 0.1.3 is published to dev" in text.replace("*", "").replace("`", "")
    assert code_blocks(text) == [INSTALL, snippet]
    assert "$IB_RUNTIME_TOKEN" in INSTALL
    # The snippet calls the first object's search under the name the generator gave it.
    action = re.search(r"import (search_\w+)", snippet)
    assert action is not None
    assert f"def {action.group(1)}(" in package.files["shop/service.py"].decode()
    compile(snippet, "snippet", "exec")
    buttons = {ref.action_id: ref.element for ref in iter_elements(message.blocks)}
    assert json.loads(buttons[CONNECTIONS_ACTION]["value"]) == {"module": "shop", "env": "dev"}
    assert json.loads(buttons["publish_how_to_use"]["value"]) == {"module": "shop", "version": "0.1.3"}


def test_a_package_without_a_searchable_object_gets_no_snippet() -> None:
    assert usage_snippet("# Events\n\nOnly create_event.\n") == ""


def test_the_failure_message_gives_the_reason_as_a_sentence() -> None:
    message = failed_message(
        application_name="Shop",
        module="shop",
        environment="dev",
        reason="environment dev was removed while publishing; nothing was published",
        attached=True,
    )
    assert message_block_problems(message.blocks) == []
    assert message.text == (
        "Publishing shop to dev failed: Environment dev was removed while publishing; nothing was published."
    )
    assert "Download application package" in shown(message.blocks)


def test_how_to_use_shows_the_readme_of_a_large_package_within_a_modals_limits(gwsample: Catalog) -> None:
    package = generate_package(gwsample, all_objects(gwsample, "gwsample"))
    view = how_to_use_view(module="gwsample", version="0.1.0", install_line=INSTALL, readme=package.readme)

    assert view_problems(view, surface="modal") == []
    assert not is_view_too_large(view)
    text = shown(view["blocks"])
    assert INSTALL in code_blocks(text)
    assert "pip install gwsample\n" not in text
    assert "IB_MANAGER_URL" in text and "search_" in text
    assert "| attribute |" not in text  # tables do not fit a modal


def test_how_to_use_cuts_a_readme_longer_than_a_modal_holds() -> None:
    actions = ", ".join(f"`search_things_{n}`" for n in range(100))
    readme = "# Huge\n\n" + "".join(f"### Object {n}\n\nActions: {actions}.\n\n" for n in range(400))
    view = how_to_use_view(module="huge", version="1.0.0", install_line=INSTALL, readme=readme)

    assert view_problems(view, surface="modal") == []
    assert "README.md in the package has the rest" in shown(view["blocks"])


def summaries(count: int, environments: tuple[str, ...] = ("dev", "qa")) -> list[IntegrationSummary]:
    return [
        IntegrationSummary(
            module_name=f"module_{n:03d}",
            application_name=f"App {n}",
            provider_title="SAP OData",
            open=False,
            latest_version="0.1.1",
            environments=tuple(
                EnvironmentRow(env, "0.1.1", "erp" if env == "dev" else None) for env in environments
            ),
        )
        for n in range(count)
    ]


def test_my_integrations_fit_a_message_and_the_home_tab_in_pages_that_show_each_once() -> None:
    many = summaries(40)
    message_pages = paginate(many, MAX_MESSAGE_BLOCKS)
    home_pages = paginate(many, MAX_VIEW_BLOCKS)

    assert [s for page in message_pages for s in page] == many
    assert [s for page in home_pages for s in page] == many
    assert 1 < len(home_pages) < len(message_pages)
    for page in range(len(message_pages)):
        message = integrations_message(many, page)
        assert message_block_problems(message.blocks) == [], page
    for page in range(len(home_pages)):
        assert view_problems(home_view(many, page), surface="home") == [], page
    last = shown(integrations_message(many, len(message_pages) - 1).blocks)
    assert f"page {len(message_pages)} of {len(message_pages)}" in last
    assert "Previous" in last and "Next" not in last


def test_each_environment_row_shows_version_and_connection_with_its_buttons() -> None:
    (summary,) = summaries(1)
    message = integrations_message([summary])
    text = shown(message.blocks)

    assert "dev · version 0.1.1 · :link: connection erp" in text.replace("`", "").replace("*", "")
    assert "qa · version 0.1.1 · :warning: no connection yet" in text.replace("`", "").replace("*", "")
    connects = [
        json.loads(ref.element["value"])
        for ref in iter_elements(message.blocks)
        if ref.action_id == CONNECTIONS_ACTION
    ]
    assert connects == [{"module": "module_000", "env": "dev"}, {"module": "module_000", "env": "qa"}]


def test_an_integration_in_more_environments_than_a_page_holds_still_fits() -> None:
    crowded = summaries(1, tuple(f"env{n}" for n in range(80)))
    message = integrations_message(crowded)
    assert message_block_problems(message.blocks) == []
    assert "more environments" in shown(message.blocks)


def test_the_deploy_modal_offers_at_most_100_versions_newest_first() -> None:
    versions = tuple(VersionChoice(f"0.1.{n}", ("dev",) if n == 149 else ()) for n in reversed(range(150)))
    form = DeployForm(module="shop", versions=versions, version=None, environments=("dev", "qa"), target="qa")
    view = deploy_modal(form)

    assert view_problems(view, surface="modal") == []
    (version_select,) = [
        ref.element for ref in iter_elements(view["blocks"]) if ref.action_id == "deploy_version"
    ]
    offered = [option["value"] for option in version_select["options"]]
    assert len(offered) == 100 and offered[:2] == ["0.1.149", "0.1.148"]
    assert version_select["initial_option"]["value"] == "0.1.149"
    assert version_select["options"][0]["description"]["text"] == "in dev"
    assert any(block.get("block_id") == version_block_id("shop") for block in view["blocks"])
