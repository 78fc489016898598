"""Every wizard view stays within what Slack accepts, however large the catalog or the input."""

from __future__ import annotations

from typing import Any

import pytest

from handlers.views.wizard import (
    loading_view,
    notice_view,
    objects_step,
    provider_step,
    publishing_view,
    resume_view,
    review_step,
    settings_step,
    source_step,
)
from handlers.wizard_state import CatalogSummary, SettingsState, SourceState, WizardState
from providers.base import all_providers, get_provider
from tests.slack.blockkit import is_view_too_large, iter_elements, view_problems

DRAFT_ID = "0b6d5f9e-3c1a-4a57-9a43-2f4c1d7e8b90"
LONG = "x" * 400


def crowded_state(step: str) -> WizardState:
    names = [f"A_{'VeryLongEntitySetName' * 5}{n:03}" for n in range(150)]
    return WizardState(
        step=step,
        provider="sap-odata",
        source=SourceState(
            kind="url", url="https://sap.example.com/" + LONG, user="u" * 255, text="<edmx/>" * 400
        ),
        catalog=CatalogSummary(service_name=LONG, title=LONG, object_count=5000, protocol="OData 2.0"),
        read_write=names[:120],
        read_only=names[120:],
        made_read_only=names[:30],
        customizations="\n".join(f"{n}.ID = id_{i}" for i, n in enumerate(names))[:3000],
        settings=SettingsState(LONG[:100], "m" * 60, LONG * 2, ":package:", open=True),
    )


def views() -> list[tuple[str, dict[str, Any]]]:
    sap = get_provider("sap-odata")
    labels = {name: LONG for name in crowded_state("objects").selected_objects}
    return [
        ("provider", provider_step(DRAFT_ID, crowded_state("provider"), all_providers())),
        ("source", source_step(DRAFT_ID, crowded_state("source"), sap, sap.source_fields())),
        ("objects", objects_step(DRAFT_ID, crowded_state("objects"), labels)),
        ("settings", settings_step(DRAFT_ID, crowded_state("settings"))),
        ("review", review_step(DRAFT_ID, crowded_state("review"), sap.title, LONG * 10)),
        ("loading", loading_view(DRAFT_ID, LONG)),
        ("resume", resume_view(DRAFT_ID, crowded_state("settings"), "today")),
        ("publishing", publishing_view(DRAFT_ID, "m" * 60)),
        ("notice", notice_view(LONG * 10)),
    ]


@pytest.mark.parametrize(("name", "view"), views(), ids=[name for name, _ in views()])
def test_views_are_accepted_by_slack_and_carry_only_the_draft_id(name: str, view: dict[str, Any]) -> None:
    assert view_problems(view, surface="modal") == []
    assert not is_view_too_large(view)
    assert view["private_metadata"] in (DRAFT_ID, "")
    assert view["callback_id"] == f"ib_wizard:{name}"


def test_the_source_step_never_fills_in_the_password() -> None:
    sap = get_provider("sap-odata")
    view = source_step(DRAFT_ID, crowded_state("source"), sap, sap.source_fields())
    [password] = [ref.element for ref in iter_elements(view["blocks"]) if ref.action_id == "password"]
    assert "initial_value" not in password


@pytest.mark.parametrize("provider", all_providers(), ids=lambda provider: provider.key)
def test_every_providers_source_step_is_accepted_by_slack(provider: Any) -> None:
    view = source_step(DRAFT_ID, crowded_state("source"), provider, provider.source_fields())
    assert view_problems(view, surface="modal") == []
    assert not any(
        ref.type == "button" and ref.action_id != "wizard_back" for ref in iter_elements(view["blocks"])
    )
