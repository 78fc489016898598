"""Design-time authorization (web server flow with PKCE) against the fake org, and what the
access token it gives can read: describe-global and describes, live."""

from __future__ import annotations

import asyncio
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

import httpx
import pytest
import requests
from requests.adapters import HTTPAdapter
from simple_salesforce import SalesforceLogin
from simple_salesforce.api import Salesforce

from bot.cli import main
from providers.base import ConnectionValueError, MetadataSource, SessionExpired, SourceError, complete_catalog
from providers.salesforce import (
    AuthorizationError,
    AuthorizationRequest,
    OAuthClient,
    SalesforceTokens,
    authorization_code,
    exchange_code,
    login_url,
    normalize_login_url,
    pkce_challenge,
    pkce_verifier,
    refresh_access_token,
    sign_in_login_url,
    start_authorization,
)
from tests.fixtures.salesforce import CALLBACK_URL, INTEGRATION_USER, SalesforceOrg

pytestmark = pytest.mark.peers


def test_pkce_follows_rfc_7636() -> None:
    # the example of RFC 7636, appendix B
    assert (
        pkce_challenge("dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk")
        == "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM"
    )
    verifier = pkce_verifier()
    assert 43 <= len(verifier) <= 128 and verifier != pkce_verifier()
    assert set(verifier) <= set("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-._~")


def test_the_authorize_url_carries_state_challenge_and_scopes(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("IB_SALESFORCE_LOGIN_URL", "https://login.example.test/")
    request = start_authorization(login_url(), "client-1", CALLBACK_URL)
    parts = urlsplit(request.url)
    query = {k: v[0] for k, v in parse_qs(parts.query).items()}
    assert (
        f"{parts.scheme}://{parts.netloc}{parts.path}"
        == "https://login.example.test/services/oauth2/authorize"
    )
    assert query == {
        "response_type": "code",
        "client_id": "client-1",
        "redirect_uri": CALLBACK_URL,
        "state": request.state,
        "code_challenge": pkce_challenge(request.code_verifier),
        "code_challenge_method": "S256",
        "scope": "api refresh_token",
    }
    assert request.state != start_authorization(login_url(), "client-1", CALLBACK_URL).state
    assert request.state not in repr(request) and request.code_verifier not in repr(request)


def test_login_hosts_for_production_sandbox_and_my_domain(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("IB_SALESFORCE_LOGIN_URL", raising=False)
    monkeypatch.delenv("IB_SALESFORCE_SANDBOX_LOGIN_URL", raising=False)
    assert login_url() == "https://login.salesforce.com"
    assert login_url("sandbox") == "https://test.salesforce.com"
    assert (
        login_url("sandbox", "acme--uat.sandbox.my.salesforce.com")
        == "https://acme--uat.sandbox.my.salesforce.com"
    )
    assert normalize_login_url("acme") == "https://acme.my.salesforce.com"
    assert normalize_login_url("https://acme.my.salesforce.com/") == "https://acme.my.salesforce.com"
    # The wizard's source step: the My Domain wins over the org kind.
    assert sign_in_login_url({"environment": "sandbox"}) == "https://test.salesforce.com"
    assert (
        sign_in_login_url({"environment": "sandbox", "my_domain": "acme"}) == "https://acme.my.salesforce.com"
    )
    assert (
        sign_in_login_url({"my_domain": "https://gov.my.salesforce.mil"}) == "https://gov.my.salesforce.mil"
    )
    for bad, says in (
        ("https://login.evil.example", "names login.evil.example, which is not a My Domain"),
        ("https://acme.my.salesforce.com.evil.example", "is not a My Domain"),
        ("http://acme.my.salesforce.com", "https://"),
    ):
        with pytest.raises(ConnectionValueError, match=says) as caught:
            sign_in_login_url({"my_domain": bad})
        assert caught.value.field == "my_domain"
    for bad, says in (
        ("http://acme.my.salesforce.com", "https://"),
        ("https://acme.my.salesforce.com/secur/login", "only the host"),
        ("https://user:pw@acme.my.salesforce.com", "only the host"),
        ("", "give the login URL"),
    ):
        with pytest.raises(ConnectionValueError, match=says):
            normalize_login_url(bad)


def test_the_oauth_client_comes_from_the_environment() -> None:
    assert OAuthClient.from_env({}) is None
    client = OAuthClient.from_env({"IB_SALESFORCE_CLIENT_ID": "id", "IB_SALESFORCE_CLIENT_SECRET": "shh"})
    assert client == OAuthClient("id", "shh") and "shh" not in repr(client)


def _authorize(org: SalesforceOrg) -> tuple[AuthorizationRequest, dict[str, str]]:
    """Start an authorization and follow the browser to the callback: its query parameters."""
    request = start_authorization(org.fake.base_url, org.app.consumer_key, CALLBACK_URL)
    answer = httpx.get(request.url, verify=org.http.tls(), follow_redirects=False)
    assert answer.status_code == 302
    location = answer.headers["location"]
    assert location.startswith(CALLBACK_URL + "?")
    return request, {k: v[0] for k, v in parse_qs(urlsplit(location).query).items()}


def _tokens(org: SalesforceOrg) -> SalesforceTokens:
    request, callback = _authorize(org)
    return asyncio.run(exchange_code(request, authorization_code(callback, request.state), http=org.http))


def test_code_exchange_gives_tokens_that_read_the_org(salesforce_org: SalesforceOrg) -> None:
    tokens = _tokens(salesforce_org)
    assert tokens.instance_url == salesforce_org.fake.base_url and tokens.refresh_token
    assert tokens.access_token not in repr(tokens) and tokens.refresh_token not in repr(tokens)

    source = MetadataSource(kind="url", location=tokens.instance_url, password=tokens.access_token)
    described_before = len(salesforce_org.fake.described)
    catalog = asyncio.run(salesforce_org.provider.discover(source))
    assert catalog.object_names() == ["Account", "Whizbang", "User", "Audit_Event__e"]
    assert not catalog.object("Audit_Event__e").capabilities.queryable
    assert catalog.service_name == "Salesforce" and len(catalog.source_sha256) == 64
    # Listed from describe-global alone: what the picker needs, no object described yet.
    assert salesforce_org.fake.described[described_before:] == []
    assert catalog.outlined(catalog.object_names()) == catalog.object_names()
    whizbang = catalog.object("Whizbang")
    assert (whizbang.label, whizbang.group, whizbang.attributes) == ("Whizbang", "Custom objects", ())

    # Completing describes exactly the objects asked for, and keeps the others outlined.
    completed = asyncio.run(
        complete_catalog(salesforce_org.provider, catalog, source, ["Whizbang", "Account"])
    )
    assert sorted(salesforce_org.fake.described[described_before:]) == ["Account", "Whizbang"]
    assert completed.object_names() == catalog.object_names()
    assert completed.outlined(completed.object_names()) == ["User", "Audit_Event__e"]
    assert "Name" in [a.name for a in completed.object("Account").attributes]
    assert completed.object("Whizbang").capabilities == whizbang.capabilities
    # Nothing outlined among the names: nothing asked of the org.
    asyncio.run(complete_catalog(salesforce_org.provider, completed, source, ["Account"]))
    assert len(salesforce_org.fake.described) == described_before + 2

    refreshed = asyncio.run(
        refresh_access_token(
            salesforce_org.fake.base_url,
            salesforce_org.app.consumer_key,
            tokens.refresh_token,
            http=salesforce_org.http,
        )
    )
    assert refreshed.access_token != tokens.access_token and refreshed.refresh_token == tokens.refresh_token
    chosen = MetadataSource(
        kind="url",
        location=tokens.instance_url,
        password=refreshed.access_token,
        options={"objects": "Whizbang"},
    )
    assert asyncio.run(salesforce_org.provider.discover(chosen)).object_names() == ["Whizbang"]


def test_live_discovery_says_what_went_wrong(salesforce_org: SalesforceOrg) -> None:
    tokens = _tokens(salesforce_org)
    unknown = MetadataSource(
        kind="url", location=tokens.instance_url, password=tokens.access_token, options={"objects": "Nope__c"}
    )
    with pytest.raises(SourceError, match="the org has no object 'Nope__c'"):
        asyncio.run(salesforce_org.provider.discover(unknown))
    live = MetadataSource(kind="url", location=tokens.instance_url, password=tokens.access_token)
    catalog = asyncio.run(salesforce_org.provider.discover(live))
    salesforce_org.fake.expire_sessions()
    with pytest.raises(SessionExpired, match="authorization expired: press Authorize Salesforce again"):
        asyncio.run(salesforce_org.provider.discover(live))
    with pytest.raises(SessionExpired):
        asyncio.run(complete_catalog(salesforce_org.provider, catalog, live, ["Account", "User"]))


def test_denied_consent_is_a_clear_error(salesforce_org: SalesforceOrg) -> None:
    salesforce_org.fake.deny_consent = True
    try:
        request, callback = _authorize(salesforce_org)
    finally:
        salesforce_org.fake.deny_consent = False
    assert callback["error"] == "access_denied" and "code" not in callback
    with pytest.raises(AuthorizationError, match="not allowed \\(consent denied\\)"):
        authorization_code(callback, request.state)


def test_a_forged_or_stale_state_is_refused_before_anything_else(salesforce_org: SalesforceOrg) -> None:
    request, callback = _authorize(salesforce_org)
    for forged in ({**callback, "state": "forged"}, {"code": callback["code"]}, {"error": "access_denied"}):
        with pytest.raises(AuthorizationError, match="forged or stale state"):
            authorization_code(forged, request.state)
    with pytest.raises(AuthorizationError, match="forged or stale state"):
        authorization_code(callback, "")


def test_a_code_works_once_and_only_with_its_verifier(salesforce_org: SalesforceOrg) -> None:
    request, callback = _authorize(salesforce_org)
    code = authorization_code(callback, request.state)
    impostor = AuthorizationRequest(
        request.url,
        request.login_url,
        request.client_id,
        request.redirect_uri,
        request.state,
        pkce_verifier(),
    )
    with pytest.raises(AuthorizationError, match="invalid code verifier"):
        asyncio.run(exchange_code(impostor, code, http=salesforce_org.http))

    request, callback = _authorize(salesforce_org)
    code = authorization_code(callback, request.state)
    asyncio.run(exchange_code(request, code, http=salesforce_org.http))
    with pytest.raises(AuthorizationError, match="invalid authorization code"):
        asyncio.run(exchange_code(request, code, http=salesforce_org.http))


class _ToFake(HTTPAdapter):
    """Sends simple-salesforce's login.salesforce.com requests to the fake (nothing leaves 127.0.0.1)."""

    def __init__(self, base_url: str) -> None:
        super().__init__()
        self.base_url = base_url

    def send(self, request: requests.PreparedRequest, **kwargs: object) -> requests.Response:  # type: ignore[override]
        assert request.url is not None
        request.url = request.url.replace("https://login.salesforce.com", self.base_url)
        assert request.url.startswith(self.base_url), request.url
        return super().send(request, **kwargs)  # type: ignore[arg-type]


def test_simple_salesforce_logs_in_with_the_jwt_bearer_flow_and_describes(
    salesforce_org: SalesforceOrg,
) -> None:
    session = requests.Session()
    session.trust_env = False  # REQUESTS_CA_BUNDLE would override verify
    session.verify = str(salesforce_org.fake.ca_path)
    session.mount("https://", _ToFake(salesforce_org.fake.base_url))
    session_id, instance = SalesforceLogin(
        username=INTEGRATION_USER,
        consumer_key=salesforce_org.app.consumer_key,
        privatekey=salesforce_org.private_key_pem,
        session=session,
    )
    assert instance == salesforce_org.fake.base_url.removeprefix("https://")

    sf = Salesforce(
        instance_url=salesforce_org.fake.base_url, session_id=session_id, session=session, version="62.0"
    )
    assert "Whizbang" in [o["name"] for o in sf.describe()["sobjects"]]
    fields = [f["name"] for f in sf.Whizbang.describe()["fields"]]
    assert fields[:4] == ["Id", "OwnerId", "IsDeleted", "Name"]
    assert sf.query(f"SELECT Id FROM User WHERE Username = '{INTEGRATION_USER}'")["totalSize"] == 1  # noqa: S608


def test_ib_generate_from_a_live_org_describes_the_objects_it_names(
    salesforce_org: SalesforceOrg, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    tokens = _tokens(salesforce_org)
    monkeypatch.setenv("SF_TOKEN", tokens.access_token)
    monkeypatch.setenv("SSL_CERT_FILE", str(salesforce_org.fake.ca_path))
    monkeypatch.setenv("REQUESTS_CA_BUNDLE", str(salesforce_org.fake.ca_path))
    before = len(salesforce_org.fake.described)
    out = tmp_path / "out"
    command = [
        *("generate", "--provider", "salesforce", "--metadata", tokens.instance_url),
        *("--password-env", "SF_TOKEN", "--allow-private-urls", "--objects", "Account,User"),
        *("--read-only", "User", "--app", "Live org", "--module", "sf_live", "--out", str(out)),
    ]
    assert main(command) == 0
    assert sorted(salesforce_org.fake.described[before:]) == ["Account", "User"]
    models = (out / "sf_live" / "models.py").read_text()
    assert "class Account(Record):" in models and "class User(Record):" in models
