"""The connections modal and admin-request DMs stay within what Slack accepts and never carry a
secret value, however large the input."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from handlers.connections_service import AdminRequestSummary, AssociationSummary, ConnectionSummary
from handlers.views.connections import (
    CONNECTION_BLOCK,
    STATUS_BLOCK,
    IntegrationScreen,
    ModalContext,
    Status,
    admin_form_view,
    admin_request_message,
    ask_view,
    connection_options,
    field_block_id,
    form_view,
    integration_view,
    parse_target,
    picker_view,
    requester_message,
    target_value,
    with_status,
)
from providers.base import AdminInstructions, ConnectionField, get_provider
from providers.certificates import CERTIFICATE_FIELD, PRIVATE_KEY_FIELD
from tests.slack.blockkit import (
    MAX_PRIVATE_METADATA,
    is_view_too_large,
    iter_elements,
    message_block_problems,
    view_problems,
)

NOW = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)
SAP_FIELDS = tuple(get_provider("sap-odata").connection_schema())
STORED = {"url": "https://sap.example.com/sap/opu/odata/sap/API/", "user": "TECH_USER", "sap_client": "100"}


def summary(name: str, used_by: tuple[str, ...] = ()) -> ConnectionSummary:
    return ConnectionSummary(
        id=1,
        name=name,
        environment="dev",
        provider="sap-odata",
        provider_title="SAP OData",
        values=STORED,
        secrets_set=("password",),
        created_by="U1",
        created_at=NOW,
        updated_at=NOW,
        last_test_ok=True,
        last_test_at=NOW,
        last_test_message="ok",
        used_by=used_by,
    )


def screen(connections: int, *, can_manage: bool = True, environments: int = 1) -> IntegrationScreen:
    return IntegrationScreen(
        association=AssociationSummary(
            "cap_shop", "CAP shop", "sap-odata", "dev", "conn-0" if connections else None
        ),
        provider_title="SAP OData",
        environments=("dev", *(f"env-{n}" for n in range(1, environments))),
        connections=tuple(
            summary(f"conn-{n}", used_by=tuple(f"m{i}" for i in range(30))) for n in range(connections)
        ),
        can_manage=can_manage,
    )


def request(note: str = "", instructions: str = "Do this.", files: int = 0) -> AdminRequestSummary:
    return AdminRequestSummary(
        id="6d2c7d8e-2f7a-4c62-9f1e-0a2b3c4d5e6f",
        requester="U0DEV",
        admin="U0ADM",
        module_name="cap_shop",
        application_name="CAP <shop> & co",
        environment="dev",
        provider="sap-odata",
        provider_title="SAP OData",
        note=note,
        status="pending",
        created_at=NOW,
        expires_at=NOW + timedelta(days=7),
        completed_at=None,
        connection=None,
        instructions=AdminInstructions(
            instructions, tuple((f"cert-{n}.pem", b"-----BEGIN CERTIFICATE-----") for n in range(files))
        ),
    )


def element(view: dict[str, Any], action_id: str) -> dict[str, Any]:
    [found] = [ref.element for ref in iter_elements(view["blocks"]) if ref.action_id == action_id]
    return dict(found)


def assert_valid(view: dict[str, Any]) -> None:
    assert view_problems(view, surface="modal") == []
    assert not is_view_too_large(view)
    assert len(view["private_metadata"]) <= MAX_PRIVATE_METADATA


@pytest.mark.parametrize("count", [0, 1, 100, 101, 5000])
@pytest.mark.parametrize("can_manage", [True, False])
def test_the_main_view_is_valid_with_any_number_of_connections(count: int, can_manage: bool) -> None:
    view = integration_view(screen(count, can_manage=can_manage, environments=150), Status("x" * 5000, False))
    assert_valid(view)
    if can_manage and count:
        select = element(view, CONNECTION_BLOCK)
        assert select["type"] == ("static_select" if count <= 100 else "external_select")
        assert select["initial_option"]["value"] == "conn-0"
    assert (view.get("submit") is not None) == (can_manage and count > 0)


def test_without_the_role_the_main_view_offers_only_asking_an_administrator() -> None:
    view = integration_view(screen(2, can_manage=False))
    actions = {ref.action_id for ref in iter_elements(view["blocks"])}
    assert actions == {"connection_ask"}
    assert "needs the connection_admin role" in str(view["blocks"])


def test_the_searched_select_offers_at_most_100_matches() -> None:
    connections = [summary(f"conn-{n}") for n in range(500)]
    assert len(connection_options(connections, "")) == 100
    assert [o["value"] for o in connection_options(connections, "CONN-42")] == [
        "conn-42",
        *[f"conn-{n}" for n in range(420, 430)],
    ]


def test_a_stored_secret_is_never_sent_back_and_an_edit_may_leave_it_blank() -> None:
    ctx = ModalContext("cap_shop", "dev", "sap-odata", connection="conn-0", secrets_set=("password",))
    view = form_view(ctx, SAP_FIELDS, provider_title="SAP OData", values=STORED, name="conn-0")
    assert_valid(view)
    password = element(view, "password")
    assert "initial_value" not in password and "initial_value" not in element(view, "api_key")
    password_block = next(b for b in view["blocks"] if b.get("block_id") == field_block_id("password"))
    assert password_block["optional"] is True
    assert "Slack shows what you type" in password_block["hint"]["text"]
    assert "keep the stored value" in password_block["hint"]["text"]
    assert element(view, "url")["initial_value"] == STORED["url"]
    assert element(view, "auth_type")["initial_option"]["value"] == "basic"
    assert "connection_name" not in {ref.action_id for ref in iter_elements(view["blocks"])}  # no renames


def test_a_problem_with_one_field_is_shown_under_it() -> None:
    ctx = ModalContext("cap_shop", "dev", "sap-odata")
    status = Status("Service root URL must be an http(s) URL", False, "url")
    view = form_view(ctx, SAP_FIELDS, provider_title="SAP OData", values={}, name="n" * 64, status=status)
    assert_valid(view)
    url_block = next(b for b in view["blocks"] if b.get("block_id") == field_block_id("url"))
    assert url_block["hint"]["text"].startswith("⚠ Service root URL must be")
    assert view["blocks"][1]["block_id"] == STATUS_BLOCK


def test_the_view_private_metadata_holds_names_only() -> None:
    ctx = ModalContext(
        "m" * 64, "e" * 32, "sap-odata", "c" * 64, tuple(f"secret_{n}" for n in range(20)), "r" * 36
    )
    assert ModalContext.from_json(ctx.to_json()) == ctx
    assert len(ctx.to_json()) < MAX_PRIVATE_METADATA
    assert ModalContext.from_json("not json") == ModalContext()
    assert ModalContext.from_json('{"s": "password"}') == ModalContext()


def test_an_answer_in_the_ack_keeps_every_block_and_action_id() -> None:
    ctx = ModalContext("cap_shop", "dev", "sap-odata")
    shown = form_view(ctx, SAP_FIELDS, provider_title="SAP OData", values={}, name="a")
    shown |= {"id": "V1", "hash": "h", "state": {"values": {}}}
    testing = with_status(shown, Status("Testing…"))
    again = with_status(testing, Status("Failed", False))
    ids = [(ref.block_id, ref.action_id) for ref in iter_elements(shown["blocks"])]
    assert [(ref.block_id, ref.action_id) for ref in iter_elements(again["blocks"])] == ids
    assert [b.get("block_id") for b in again["blocks"]].count(STATUS_BLOCK) == 1
    assert "id" not in again and "state" not in again
    assert_valid(again)


def test_the_admin_form_lets_generated_certificate_fields_stay_blank() -> None:
    fields = (
        ConnectionField("tenant", "Tenant"),
        ConnectionField(CERTIFICATE_FIELD, "Certificate", kind="multiline"),
        ConnectionField(PRIVATE_KEY_FIELD, "Private key", secret=True, kind="multiline"),
    )
    view = admin_form_view(
        ModalContext(request="r1"), request(files=1), fields, values={}, name="cap_shop-dev"
    )
    assert_valid(view)
    optional = {b["block_id"]: b["optional"] for b in view["blocks"] if b["type"] == "input"}
    assert optional == {
        "connection_name": False,
        field_block_id("tenant"): False,
        field_block_id(CERTIFICATE_FIELD): True,
        field_block_id(PRIVATE_KEY_FIELD): True,
    }


def test_the_ask_view_and_picker_are_valid() -> None:
    ctx = ModalContext("cap_shop", "dev", "sap-odata")
    assert_valid(ask_view(ctx, "SAP OData", admin="U0ADM", note="n" * 1000, status=Status("no", False)))
    choices = [AssociationSummary(f"m{n}", "M", "sap-odata", "dev", None) for n in range(150)]
    assert_valid(picker_view(choices))
    assert "/ib new" in str(picker_view([])["blocks"])


def test_admin_request_messages_fit_a_message_whatever_the_instructions() -> None:
    long_lines = "\n".join(f"{n}. " + "step " * 300 for n in range(200))
    for summary_ in (request(), request(note="line\n" * 500, instructions=long_lines, files=2)):
        for text, blocks in (admin_request_message(summary_), requester_message(summary_)):
            assert message_block_problems(blocks) == []
            assert text
    _, blocks = admin_request_message(request(note="<!channel> & <b>"))
    assert "&lt;!channel&gt; &amp; &lt;b&gt;" in str(blocks)  # user text cannot ping or format


def test_buttons_from_other_views_name_the_integration_and_environment() -> None:
    assert parse_target(target_value("cap_shop", "qa")) == ("cap_shop", "qa")
    assert parse_target('{"module": "shop", "env": "dev"}') == ("shop", "dev")
    assert parse_target("garbage") == ("", "")
