"""MSAL for real against the identity peer: app-only tokens with a secret or a certificate (cached
until they expire), the design-time authorization code flow with PKCE, and what each refusal says."""

from __future__ import annotations

import asyncio
from urllib.parse import parse_qsl, urlsplit

import httpx
import jwt
import pytest

from providers.base import ConnectionValueError, ProviderError
from providers.certificates import PRIVATE_KEY_FIELD, generate_certificate
from providers.microsoft import (
    AUTHORITY_HOST_ENV,
    AppCredential,
    MicrosoftLoginError,
    SignInClient,
    SignInError,
    SignInExpired,
    acquire_app_token,
    authority_host,
    complete_sign_in,
    refresh_sign_in,
    start_sign_in,
)
from tests.fixtures.microsoft import REDIRECT_URI, SIGN_IN_CLIENT_ID, TENANT, MicrosoftTenant

pytestmark = pytest.mark.peers
RESOURCE = "https://contoso.crm.example"
DISCOVERY_SCOPE = "https://globaldisco.crm.example/user_impersonation"


def _claims(tenant: MicrosoftTenant, token: str, audience: str) -> dict[str, object]:
    keys = jwt.PyJWKSet.from_dict(tenant.identity.signing_keys())
    kid = jwt.get_unverified_header(token)["kid"]
    key = next(k for k in keys.keys if k.key_id == kid)
    return dict(jwt.decode(token, key.key, algorithms=["RS256"], audience=audience))


def _callback(tenant: MicrosoftTenant, url: str) -> dict[str, str]:
    """What the browser brings back to the callback after the user signed in at ``url``."""
    response = httpx.get(url, verify=tenant.identity.tls(), trust_env=False)
    assert response.status_code == 302, response.text
    location = response.headers["location"]
    assert location.startswith(REDIRECT_URI + "?")
    return dict(parse_qsl(urlsplit(location).query))


def test_a_secret_gets_a_token_for_the_resource_that_is_reused_until_it_expires(
    microsoft_tenant: MicrosoftTenant,
) -> None:
    microsoft_tenant.identity.clear_token_requests()
    credential = microsoft_tenant.secret_credential()
    scopes = [f"{RESOURCE}/.default"]
    first = asyncio.run(acquire_app_token(credential, scopes, microsoft_tenant.http))
    second = asyncio.run(acquire_app_token(credential, scopes, microsoft_tenant.http))

    assert second.token == first.token and 0 < second.expires_in <= first.expires_in <= 3600
    assert [r["grant_type"] for r in microsoft_tenant.identity.token_requests()] == ["client_credentials"]
    claims = _claims(microsoft_tenant, first.token, RESOURCE)
    assert claims["tid"] == microsoft_tenant.tenant and claims["appid"] == microsoft_tenant.client_id


def test_a_wrong_secret_is_refused_and_named(microsoft_tenant: MicrosoftTenant) -> None:
    credential = microsoft_tenant.secret_credential("not-the-secret")
    with pytest.raises(MicrosoftLoginError) as refused:
        asyncio.run(acquire_app_token(credential, [f"{RESOURCE}/.default"], microsoft_tenant.http))
    assert refused.value.field == "client_secret"
    assert "the client secret is wrong" in str(refused.value) and "AADSTS7000215" in str(refused.value)
    assert "Trace ID" not in str(refused.value)


def test_the_registered_certificate_signs_in(microsoft_tenant: MicrosoftTenant) -> None:
    credential = microsoft_tenant.certificate_credential()
    token = asyncio.run(acquire_app_token(credential, [f"{RESOURCE}/.default"], microsoft_tenant.http))
    assert _claims(microsoft_tenant, token.token, RESOURCE)["appid"] == microsoft_tenant.client_id


def test_a_certificate_the_identity_server_does_not_know_is_refused_clearly(
    microsoft_tenant: MicrosoftTenant,
) -> None:
    stranger = generate_certificate("not uploaded to the app registration")
    credential = microsoft_tenant.certificate_credential(stranger)
    with pytest.raises(MicrosoftLoginError) as refused:
        asyncio.run(acquire_app_token(credential, [f"{RESOURCE}/.default"], microsoft_tenant.http))
    assert refused.value.field == "certificate"
    assert "rejected the certificate" in str(refused.value) and "upload this connection's certificate" in str(
        refused.value
    )


def test_an_unknown_tenant_is_named(microsoft_tenant: MicrosoftTenant) -> None:
    credential = AppCredential("fabrikam.example", microsoft_tenant.client_id, client_secret="x")
    with pytest.raises(MicrosoftLoginError) as refused:
        asyncio.run(acquire_app_token(credential, [f"{RESOURCE}/.default"], microsoft_tenant.http))
    assert refused.value.field == "tenant_id" and "does not know the tenant 'fabrikam.example'" in str(
        refused.value
    )


def test_sign_in_with_pkce_then_a_token_for_another_resource(microsoft_tenant: MicrosoftTenant) -> None:
    client = microsoft_tenant.sign_in_client
    request = asyncio.run(start_sign_in(client, REDIRECT_URI, [DISCOVERY_SCOPE], microsoft_tenant.http))
    sent = dict(parse_qsl(urlsplit(request.url).query))
    assert sent["code_challenge_method"] == "S256" and sent["state"] == request.state
    assert "code_verifier" not in request.url

    params = _callback(microsoft_tenant, request.url)
    tokens = asyncio.run(complete_sign_in(client, request.flow, params, microsoft_tenant.http))
    assert tokens.tenant_id == microsoft_tenant.tenant and tokens.username == "dana@contoso.example"
    assert tokens.refresh_token and DISCOVERY_SCOPE in tokens.scopes
    assert _claims(microsoft_tenant, tokens.access_token, "https://globaldisco.crm.example")["scp"] == (
        "user_impersonation"
    )

    assert tokens.refresh_token is not None
    environment = asyncio.run(
        refresh_sign_in(
            client,
            tokens.refresh_token,
            [f"{RESOURCE}/user_impersonation"],
            microsoft_tenant.http,
            tokens.tenant_id,
        )
    )
    assert _claims(microsoft_tenant, environment.access_token, RESOURCE)["upn"] == "dana@contoso.example"


def test_a_code_is_worth_nothing_without_the_flows_pkce_verifier(microsoft_tenant: MicrosoftTenant) -> None:
    client = microsoft_tenant.sign_in_client
    first = asyncio.run(start_sign_in(client, REDIRECT_URI, [DISCOVERY_SCOPE], microsoft_tenant.http))
    other = asyncio.run(start_sign_in(client, REDIRECT_URI, [DISCOVERY_SCOPE], microsoft_tenant.http))
    params = _callback(microsoft_tenant, first.url)
    # the callback's code with another flow's verifier (and that flow's state, so state checks pass)
    with pytest.raises(ProviderError):
        asyncio.run(
            complete_sign_in(client, other.flow, {**params, "state": other.state}, microsoft_tenant.http)
        )


def test_a_forged_state_is_refused_before_any_token_request(microsoft_tenant: MicrosoftTenant) -> None:
    client = microsoft_tenant.sign_in_client
    request = asyncio.run(start_sign_in(client, REDIRECT_URI, [DISCOVERY_SCOPE], microsoft_tenant.http))
    params = _callback(microsoft_tenant, request.url)
    microsoft_tenant.identity.clear_token_requests()
    with pytest.raises(SignInError, match="forged or stale state"):
        asyncio.run(
            complete_sign_in(client, request.flow, {**params, "state": "forged"}, microsoft_tenant.http)
        )
    assert microsoft_tenant.identity.token_requests() == []


def test_denied_consent_asks_to_sign_in_again(microsoft_tenant: MicrosoftTenant) -> None:
    client = microsoft_tenant.sign_in_client
    request = asyncio.run(start_sign_in(client, REDIRECT_URI, [DISCOVERY_SCOPE], microsoft_tenant.http))
    microsoft_tenant.identity.deny_next_consent()
    params = _callback(microsoft_tenant, request.url)
    assert params["error"] == "access_denied"
    with pytest.raises(SignInError, match="consent denied"):
        asyncio.run(complete_sign_in(client, request.flow, params, microsoft_tenant.http))


def test_a_revoked_sign_in_asks_to_sign_in_again(microsoft_tenant: MicrosoftTenant) -> None:
    client = microsoft_tenant.sign_in_client
    request = asyncio.run(start_sign_in(client, REDIRECT_URI, [DISCOVERY_SCOPE], microsoft_tenant.http))
    tokens = asyncio.run(
        complete_sign_in(
            client, request.flow, _callback(microsoft_tenant, request.url), microsoft_tenant.http
        )
    )
    assert tokens.refresh_token is not None
    scopes = [f"{RESOURCE}/user_impersonation"]
    # a refusal for another reason (here the service's own secret) leaves the sign-in usable
    wrong_secret = SignInClient(SIGN_IN_CLIENT_ID, "not-the-secret", TENANT)
    with pytest.raises(SignInError, match="client secret is wrong") as refused:
        asyncio.run(refresh_sign_in(wrong_secret, tokens.refresh_token, scopes, microsoft_tenant.http))
    assert not isinstance(refused.value, SignInExpired)

    microsoft_tenant.identity.revoke_refresh_tokens()
    with pytest.raises(SignInExpired, match="press Sign in with Microsoft again"):
        asyncio.run(refresh_sign_in(client, tokens.refresh_token, scopes, microsoft_tenant.http))


def test_starting_a_sign_in_asks_nothing_of_the_identity_host(
    microsoft_tenant: MicrosoftTenant, monkeypatch: pytest.MonkeyPatch
) -> None:
    """It runs while Slack waits for an ack: even an identity host that does not answer at all
    (nothing listens on port 9) does not hold it up."""
    monkeypatch.setenv(AUTHORITY_HOST_ENV, "https://127.0.0.1:9")
    client = microsoft_tenant.sign_in_client
    request = asyncio.run(start_sign_in(client, REDIRECT_URI, [DISCOVERY_SCOPE], microsoft_tenant.http))
    url = urlsplit(request.url)
    query = dict(parse_qsl(url.query))
    assert f"{url.scheme}://{url.netloc}{url.path}" == f"https://127.0.0.1:9/{TENANT}/oauth2/v2.0/authorize"
    assert query["client_id"] == SIGN_IN_CLIENT_ID and query["redirect_uri"] == REDIRECT_URI
    assert query["state"] == request.state and query["code_challenge_method"] == "S256"
    assert query["response_mode"] == "query" and query["nonce"]
    assert set(query["scope"].split()) == {DISCOVERY_SCOPE, "openid", "profile", "offline_access"}


@pytest.mark.parametrize(
    ("values", "secrets", "field", "words"),
    [
        ({"tenant_id": "", "client_id": "x"}, {}, "tenant_id", "tenant"),
        ({"tenant_id": "contoso.onmicrosoft.com", "client_id": "app"}, {}, "client_id", "is a GUID"),
        (
            {"tenant_id": "t", "client_id": "5e8a1c3d-7f2b-4a6e-8c9d-1b3f5a7c9e2d"},
            {},
            PRIVATE_KEY_FIELD,
            "admin request",
        ),
        (
            {"tenant_id": "t", "client_id": "5e8a1c3d-7f2b-4a6e-8c9d-1b3f5a7c9e2d", "auth_type": "secret"},
            {},
            "client_secret",
            "secret's value",
        ),
    ],
)
def test_connection_values_that_cannot_sign_in_name_their_field(
    values: dict[str, str], secrets: dict[str, str], field: str, words: str
) -> None:
    with pytest.raises(ConnectionValueError, match=words) as refused:
        AppCredential.from_connection(values, secrets)
    assert refused.value.field == field


def test_a_private_key_that_does_not_belong_to_the_certificate_is_named(
    microsoft_tenant: MicrosoftTenant,
) -> None:
    values, secrets = microsoft_tenant.connection()
    other = generate_certificate("another key")
    cases = [
        (
            {PRIVATE_KEY_FIELD: "-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----"},
            {},
            "not an unencrypted",
        ),
        (
            {PRIVATE_KEY_FIELD: other.private_key_pem.decode("ascii")},
            {},
            "does not belong to the certificate",
        ),
        ({}, {"certificate": "-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----"}, "not a PEM"),
    ]
    for secret_change, value_change, words in cases:
        with pytest.raises(ConnectionValueError, match=words):
            AppCredential.from_connection({**values, **value_change}, {**secrets, **secret_change})


def test_the_authority_host_must_be_https() -> None:
    assert (
        authority_host({"IB_MICROSOFT_AUTHORITY_HOST": "https://127.0.0.1:8443/"}) == "https://127.0.0.1:8443"
    )
    with pytest.raises(ProviderError, match="must be https"):
        authority_host({"IB_MICROSOFT_AUTHORITY_HOST": "http://login.example"})
