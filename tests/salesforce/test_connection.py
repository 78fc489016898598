"""Salesforce connections: JWT bearer logins against the fake org, the connection test, what the
Integration Manager hands out, and what the administrator is told."""

from __future__ import annotations

import asyncio
import json
from typing import Any

import httpx
import jwt
import pytest
from cryptography import x509

from providers.base import ConnectionValueError, get_provider
from providers.certificates import PRIVATE_KEY_FIELD, generate_certificate
from providers.salesforce import TEST_QUERY, jwt_assertion, jwt_audience
from tests.fixtures.salesforce import INTEGRATION_USER, SalesforceOrg

pytestmark = pytest.mark.peers


def _answer(
    org: SalesforceOrg, values: dict[str, str] | None = None, secrets: dict[str, str] | None = None
) -> Any:
    return asyncio.run(org.provider.connection_answer(values or org.values, secrets or org.secrets))


def test_the_manager_hands_out_a_short_lived_token_and_never_the_key(salesforce_org: SalesforceOrg) -> None:
    answer = _answer(salesforce_org)
    assert answer["url"] == salesforce_org.api_root("62.0")
    assert answer["auth"]["type"] == "bearer" and answer["expires_in"] == 900
    assert "PRIVATE KEY" not in json.dumps(answer)
    response = httpx.get(
        answer["url"] + "sobjects",
        headers={"Authorization": f"Bearer {answer['auth']['token']}"},
        verify=salesforce_org.http.tls(),
    )
    assert response.status_code == 200 and response.json()["sobjects"]
    versioned = _answer(salesforce_org, {**salesforce_org.values, "api_version": "v61.0"})
    assert versioned["url"].endswith("/services/data/v61.0/")


def test_the_connection_test_logs_in_and_runs_a_one_row_query(salesforce_org: SalesforceOrg) -> None:
    result = asyncio.run(
        salesforce_org.provider.test_connection(salesforce_org.values, salesforce_org.secrets)
    )
    assert result.ok, result.message
    assert result.message == f"connected to 127.0.0.1 as {INTEGRATION_USER}: a one-row query answered"
    assert salesforce_org.fake.queries[-1].text == TEST_QUERY


@pytest.mark.parametrize(
    ("change", "field", "says"),
    [
        ({"consumer_key": "3MVGunknown"}, "consumer_key", "does not know this consumer key"),
        ({"username": "stranger@example.com"}, None, "not pre-authorized for the External Client App"),
        ({"consumer_key": " "}, "consumer_key", "give the consumer key"),
        ({"username": ""}, "username", "give the username"),
        ({"login_url": "http://127.0.0.1"}, "login_url", "start with https://"),
        ({"api_version": "latest"}, "api_version", "looks like 62.0"),
    ],
    ids=["consumer-key", "not-pre-authorized", "no-consumer-key", "no-username", "http", "api-version"],
)
def test_unusable_values_name_their_field(
    salesforce_org: SalesforceOrg, change: dict[str, str], field: str | None, says: str
) -> None:
    values = {**salesforce_org.values, **change}
    with pytest.raises(ConnectionValueError) as refused:
        _answer(salesforce_org, values)
    assert refused.value.field == field and says in str(refused.value)
    result = asyncio.run(salesforce_org.provider.test_connection(values, salesforce_org.secrets))
    assert not result.ok and says in result.message and "\n" not in result.message


def test_a_key_that_does_not_belong_to_the_certificate_is_refused(salesforce_org: SalesforceOrg) -> None:
    other = generate_certificate("someone else")
    with pytest.raises(
        ConnectionValueError, match=r"refused the signed login .*certificate of this connection"
    ):
        _answer(salesforce_org, secrets={PRIVATE_KEY_FIELD: other.private_key_pem.decode()})
    for broken in ("", "-----BEGIN PRIVATE KEY-----\nnope\n-----END PRIVATE KEY-----\n"):
        with pytest.raises(ConnectionValueError) as refused:
            _answer(salesforce_org, secrets={PRIVATE_KEY_FIELD: broken} if broken else {"other": "x"})
        assert refused.value.field == PRIVATE_KEY_FIELD


def test_the_assertion_is_what_salesforce_verifies(salesforce_org: SalesforceOrg) -> None:
    assertion = jwt_assertion(
        "key", "user@example.com", "https://login.salesforce.com", salesforce_org.private_key_pem
    )
    public_key = x509.load_pem_x509_certificate(salesforce_org.app.certificate_pem.encode()).public_key()
    claims = jwt.decode(assertion, public_key, algorithms=["RS256"], audience="https://login.salesforce.com")  # type: ignore[arg-type]
    assert (claims["iss"], claims["sub"]) == ("key", "user@example.com")
    assert jwt.get_unverified_header(assertion)["alg"] == "RS256"
    assert jwt_audience("https://acme.my.salesforce.com") == "https://login.salesforce.com"
    assert jwt_audience("https://acme--uat.sandbox.my.salesforce.com") == "https://test.salesforce.com"
    assert jwt_audience("https://test.salesforce.com") == "https://test.salesforce.com"
    assert jwt_audience(salesforce_org.fake.base_url) == salesforce_org.fake.base_url


def test_the_schema_marks_the_private_key_secret() -> None:
    provider = get_provider("salesforce")
    fields = {f.name: f for f in provider.connection_schema()}
    assert list(fields) == ["login_url", "consumer_key", "username", PRIVATE_KEY_FIELD, "api_version"]
    assert {name for name, f in fields.items() if f.secret} == {PRIVATE_KEY_FIELD}
    assert provider.needs_certificate and provider.implemented


def test_the_admin_is_told_how_to_set_up_the_external_client_app(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("IB_BASE_URL", "https://ib.example.test/")
    instructions = get_provider("salesforce").admin_instructions(
        {
            "requester": "<@U1>",
            "integration": "crm",
            "environment": "qa",
            "certificate": "integration-builder-crm-qa.pem",
            "access": "read-only",
        }
    )
    text = instructions.text
    for expected in (
        "*Salesforce connection for crm in *qa**",
        "<@U1> needs read-only access",
        "External Client App",
        "`https://ib.example.test/oauth/salesforce/callback`",
        "`api`, `refresh_token`, `offline_access`",
        "Enable JWT Bearer Flow* and upload the attached certificate `integration-builder-crm-qa.pem`",
        "Admin approved users are pre-authorized",
        "Consumer Key",
    ):
        assert expected in text, expected
    # the service attaches the certificate it generated to the request itself
    assert instructions.files == ()
