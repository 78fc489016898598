"""The sap-odata provider's surface the wizard, connections and admin requests are built from."""

from __future__ import annotations

from providers.runtime.connection import ApiKeyAuth, BasicAuth, connection_from_manager_answer
from providers.sap_odata import SAP_ODATA_PROVIDER, connection_answer


def test_only_password_and_api_key_are_secret() -> None:
    fields = {f.name: f for f in SAP_ODATA_PROVIDER.connection_schema()}
    assert list(fields) == [
        "url",
        "auth_type",
        "user",
        "password",
        "api_key",
        "sap_client",
        "additional_headers",
    ]
    assert {name for name, f in fields.items() if f.secret} == {"password", "api_key"}
    assert [value for value, _ in fields["auth_type"].choices] == ["basic", "api_key"]
    assert fields["additional_headers"].kind == "multiline"


def test_the_source_step_offers_url_file_text_and_a_version_choice() -> None:
    kinds = {f.name: f.kind for f in SAP_ODATA_PROVIDER.source_fields()}
    assert kinds == {
        "metadata_url": "url",
        "user": "text",
        "password": "password",
        "metadata_file": "file",
        "metadata_text": "multiline",
        "odata_version": "choice",
    }


def test_admin_instructions_name_the_service_and_the_sap_authorization() -> None:
    instructions = SAP_ODATA_PROVIDER.admin_instructions(
        {"service_name": "GWSAMPLE_BASIC", "access": "read-only", "requester": "<@U123>"}
    )
    assert "GWSAMPLE_BASIC" in instructions.text and "<@U123>" in instructions.text
    assert "S_SERVICE" in instructions.text and "display only" in instructions.text
    assert instructions.files == ()


def test_a_connection_becomes_what_generated_packages_resolve() -> None:
    basic = connection_from_manager_answer(
        connection_answer(
            {
                "url": "https://sap.example/srv/",
                "user": "tech",
                "sap_client": "100",
                "additional_headers": "X-A: 1",
            },
            {"password": "pw"},
        )
    )
    assert basic.auth == BasicAuth("tech", "pw")
    assert (basic.params, basic.headers) == ({"sap-client": "100"}, {"X-A": "1"})

    keyed = connection_from_manager_answer(
        connection_answer({"url": "https://api.example/srv", "auth_type": "api_key"}, {"api_key": "k"})
    )
    assert keyed.auth == ApiKeyAuth("k", "APIKey")
    assert keyed.auth_headers() == {"APIKey": "k"}
