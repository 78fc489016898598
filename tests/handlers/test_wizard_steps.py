"""The rules of each wizard step, without Slack: what is refused, what is kept, where Back goes."""

from __future__ import annotations

from typing import Any

import pytest

from handlers.catalogs import ObjectIndex
from handlers.wizard_state import CatalogSummary, WizardState
from handlers.wizard_steps import KeepCatalog, SourceLoad, back_target, submit_objects, submit_source
from providers.base import get_provider
from providers.model import Attribute, Capabilities, Catalog, ObjectDef, ValueType

API = "https://slack.com/api/"
FIELDS = get_provider("sap-odata").source_fields()


def text(value: str) -> dict[str, Any]:
    return {"type": "plain_text_input", "value": value}


def slack_file(url: str, size: int = 2048) -> dict[str, Any]:
    return {
        "type": "file_input",
        "files": [{"name": "metadata.xml", "size": size, "url_private_download": url}],
    }


def source(**entries: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {f"source_{name}": {name: entry} for name, entry in entries.items()}


@pytest.mark.parametrize(
    "url",
    [
        "https://files.slack.com/files-pri/T1-F1/metadata.xml?download=1",
        "https://slack.com/files-pri/T1-F1/metadata.xml",
        "https://files.slack.com:443/files-pri/T1-F1/metadata.xml",
    ],
)
def test_files_are_downloaded_from_slack_only(url: str) -> None:
    outcome = submit_source(
        WizardState(), source(metadata_file=slack_file(url)), FIELDS, max_file_bytes=10_000, slack_api_url=API
    )
    assert isinstance(outcome, SourceLoad) and outcome.file is not None and outcome.file.url == url


@pytest.mark.parametrize(
    "url",
    [
        "https://files.slack.com.evil.example/metadata.xml",
        "https://evilslack.com/metadata.xml",
        "http://files.slack.com/metadata.xml",
        "https://files.slack.com:8443/metadata.xml",
        "file:///etc/passwd",
        "",
    ],
)
def test_a_file_link_anywhere_else_never_gets_the_bot_token(url: str) -> None:
    outcome = submit_source(
        WizardState(), source(metadata_file=slack_file(url)), FIELDS, max_file_bytes=10_000, slack_api_url=API
    )
    assert outcome == {
        "source_metadata_file": "Slack did not give a download link for this file; upload it again."
    }


def test_a_file_over_the_cap_is_refused_in_the_ack() -> None:
    big = slack_file("https://files.slack.com/f.xml", size=3 * 1024 * 1024)
    outcome = submit_source(
        WizardState(), source(metadata_file=big), FIELDS, max_file_bytes=2 * 1024 * 1024, slack_api_url=API
    )
    assert outcome == {"source_metadata_file": "metadata.xml is larger than 2 MB."}


def test_the_password_travels_to_the_fetch_only_and_options_are_kept() -> None:
    state = WizardState()
    values = {
        **source(
            metadata_url=text("https://sap.example.com/odata/"), user=text("bob"), password=text("pw-123456")
        ),
        "source_odata_version": {
            "odata_version": {"type": "static_select", "selected_option": {"value": "2.0"}}
        },
    }
    outcome = submit_source(state, values, FIELDS, max_file_bytes=1, slack_api_url=API)
    assert isinstance(outcome, SourceLoad)
    assert (outcome.source.user, outcome.source.password) == ("bob", "pw-123456")
    assert dict(outcome.source.options) == {"odata_version": "2.0"}
    assert "pw-123456" not in str(state.to_dict())


def test_next_on_an_unchanged_source_keeps_the_catalog_but_a_typed_password_fetches_again() -> None:
    state = WizardState(catalog=CatalogSummary(service_name="S"))
    state.source.kind, state.source.url, state.source.user = "url", "https://sap.example.com/odata/", "bob"
    unchanged = source(metadata_url=text(state.source.url), user=text("bob"))
    assert isinstance(
        submit_source(state, unchanged, FIELDS, max_file_bytes=1, slack_api_url=API), KeepCatalog
    )
    with_password = source(metadata_url=text(state.source.url), user=text("bob"), password=text("again"))
    assert isinstance(
        submit_source(state, with_password, FIELDS, max_file_bytes=1, slack_api_url=API), SourceLoad
    )


def catalog() -> Catalog:
    def obj(name: str, writable: bool = True) -> ObjectDef:
        capabilities = Capabilities(creatable=writable, updatable=writable, deletable=writable)
        attributes = (Attribute("ID", ValueType.INTEGER, "Edm.Int32", key=True),)
        return ObjectDef(
            name=name, entity_name=name, label=name, attributes=attributes, capabilities=capabilities
        )

    return Catalog("sap-odata", "S", "S", (obj("Books"), obj("Prices", writable=False)))


def picked(read_write: list[str], read_only: tuple[str, ...] = ()) -> dict[str, Any]:
    def options(names: list[str]) -> list[dict[str, Any]]:
        return [{"text": {"type": "plain_text", "text": n}, "value": n} for n in names]

    return {
        "objects_rw": {
            "objects_rw": {"type": "multi_external_select", "selected_options": options(read_write)}
        },
        "objects_ro": {
            "objects_ro": {"type": "multi_external_select", "selected_options": options(list(read_only))}
        },
    }


def test_objects_not_in_the_metadata_are_refused_and_unchangeable_ones_become_read_only() -> None:
    state = WizardState(provider="sap-odata", step="objects")
    index = ObjectIndex(catalog())
    errors = submit_objects(state, picked(["Books", "Forged"]), index)
    assert errors == {"objects_rw": "Not in the metadata: Forged. Search again and pick from the list."}

    assert submit_objects(state, picked(["Books", "Prices"]), index) is None
    assert (state.step, state.writable_objects, state.read_only_objects) == (
        "settings",
        ["Books"],
        ["Prices"],
    )
    assert state.read_write == ["Books", "Prices"]  # shown as chosen when the user comes back


@pytest.mark.parametrize(
    ("current", "requested", "has_catalog", "target"),
    [
        ("review", "objects", True, "objects"),
        ("review", "objects", False, "source"),
        ("settings", "provider", True, "provider"),
        ("objects", "settings", True, "objects"),  # Back never goes forward
        ("objects", "nowhere", True, "objects"),
    ],
)
def test_back_goes_to_an_earlier_step_that_has_what_it_needs(
    current: str, requested: str, has_catalog: bool, target: str
) -> None:
    state = WizardState(catalog=CatalogSummary(service_name="S") if has_catalog else None)
    assert back_target(current, requested, state) == target


def test_at_most_100_objects_per_list_so_that_back_shows_them_all() -> None:
    many = Catalog(
        "sap-odata",
        "S",
        "S",
        tuple(
            ObjectDef(
                f"Set{n}", f"Set{n}", f"Set{n}", (Attribute("ID", ValueType.INTEGER, "Edm.Int32", key=True),)
            )
            for n in range(101)
        ),
    )
    errors = submit_objects(
        WizardState(step="objects"), picked([o.name for o in many.objects]), ObjectIndex(many)
    )
    assert errors == {"objects_rw": "Choose at most 100 objects here; make a second integration for more."}
