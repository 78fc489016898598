"""The ``salesforce`` provider: sObjects described by Salesforce's REST API.

Design time:

- the catalog, from describe-global plus one describe per object: live through simple-salesforce
  with an access token (``MetadataSource(kind="url", location=<instance URL>,
  password=<access token>)``), first outlined from describe-global alone, then
  :meth:`SalesforceProvider.complete` describes the objects a user picks (a few at a time); or
  offline from saved describe payloads (one payload, a JSON array of them, a .zip of JSON files, or for
  ``ib generate`` a folder of them; a describe-global among them orders the objects);
- the OAuth 2.0 web server flow with PKCE that the wizard's "Authorize Salesforce" button runs
  (:func:`start_authorization`, :func:`authorization_code`, :func:`exchange_code`,
  :func:`refresh_access_token`: pure functions plus one token request each), behind the
  wizard's :class:`~providers.base.DesignSignIn` as :class:`SalesforceSignIn`;
- lookups with one target type (``AccountId`` -> ``Account``) are attributes (the Id, with
  ``reference_to`` naming the target: a typed id in the package) and navigations named after
  their relationship (``Account``), which a spec may expand to read the related record;
  polymorphic ones stay plain ids only;
- connections: the JWT bearer flow with a certificate the service generates (its private key
  never leaves the service): :func:`jwt_bearer_login`, a connection test with a one-row query, and
  the short-lived access token the Integration Manager hands to generated packages.

Generated packages talk to Salesforce through ``providers/runtime/salesforce.py``.
"""

from __future__ import annotations

import asyncio
import hashlib
import io
import json
import logging
import os
import re
import time
import zipfile
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import Any, Final
from urllib.parse import urlencode

import httpx
import requests
from cryptography.exceptions import UnsupportedAlgorithm
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import padding, rsa
from simple_salesforce.api import Salesforce
from simple_salesforce.exceptions import (
    SalesforceError,
    SalesforceExpiredSession,
    SalesforceResourceNotFound,
)

from providers.base import (
    AdminInstructions,
    ConnectionField,
    ConnectionTestResult,
    ConnectionValueError,
    DesignSession,
    DesignSignIn,
    MetadataError,
    MetadataSource,
    ProviderError,
    RuntimeSupport,
    SessionExpired,
    SignInExpired,
    SignInRefused,
    SignInStart,
    SourceError,
    SourceField,
    callback_path,
    register,
)
from providers.certificates import PRIVATE_KEY_FIELD
from providers.metadata_source import check_public_url, max_metadata_bytes, read_metadata_source
from providers.model import (
    Attribute,
    Capabilities,
    Catalog,
    EnumMember,
    EnumType,
    Navigation,
    ObjectDef,
    ValueType,
)
from providers.oauth import (
    DEFAULT_HTTP,
    HttpOptions,
    b64url,
    new_state,
    pkce_challenge,
    pkce_verifier,
    state_matches,
)
from providers.runtime.salesforce import DEFAULT_API_VERSION, TEXT_TYPES

log = logging.getLogger(__name__)

LOGIN_URL_ENV: Final = "IB_SALESFORCE_LOGIN_URL"
SANDBOX_LOGIN_URL_ENV: Final = "IB_SALESFORCE_SANDBOX_LOGIN_URL"
API_VERSION_ENV: Final = "IB_SALESFORCE_API_VERSION"
CLIENT_ID_ENV: Final = "IB_SALESFORCE_CLIENT_ID"
CLIENT_SECRET_ENV: Final = "IB_SALESFORCE_CLIENT_SECRET"  # noqa: S105 (a variable name)
PRODUCTION_LOGIN_URL: Final = "https://login.salesforce.com"
SANDBOX_LOGIN_URL: Final = "https://test.salesforce.com"
FAMILY: Final = "salesforce"  # the design-time callback route's name
CALLBACK_PATH: Final = callback_path(FAMILY)
# My Domains (sandboxes are *.sandbox.my.salesforce.com, Government Cloud Plus *.my.salesforce.mil)
MY_DOMAIN_SUFFIXES: Final = (".my.salesforce.com", ".my.salesforce.mil")
ENVIRONMENT_FIELD: Final = "environment"
MY_DOMAIN_FIELD: Final = "my_domain"
# Design time reads object definitions; refresh_token lets the wizard outlive the access token.
DESIGN_SCOPES: Final = ("api", "refresh_token")
# What the External Client App of a connection must allow (the JWT bearer flow uses "api").
CONNECTION_SCOPES: Final = ("api", "refresh_token", "offline_access")
# Salesforce does not say when a session ends (the org's timeout, 15 minutes at the shortest,
# counted from the last use): packages ask the Integration Manager again after this long.
ACCESS_TOKEN_LIFETIME_S: Final = 15 * 60
JWT_LIFETIME_S: Final = 180  # Salesforce refuses assertions valid for more than 3 minutes
TEST_QUERY: Final = "SELECT Id FROM User LIMIT 1"

_API_NAME = re.compile(r"[A-Za-z][A-Za-z0-9_]*\Z")
_API_VERSION = re.compile(r"\d{2,3}\.0\Z")
_HOST = re.compile(r"[A-Za-z0-9.-]+\Z")
# Describes in flight at once when completing a catalog: a few round trips' worth of waiting for
# the objects a user picked, far below the 25 long-running requests an org allows at a time.
DESCRIBE_CONCURRENCY: Final = 6
_MAX_ARCHIVE_MEMBERS = 5000
_VALUE_TYPES: dict[str, ValueType] = {
    **dict.fromkeys(TEXT_TYPES, ValueType.STRING),
    "boolean": ValueType.BOOLEAN,
    "int": ValueType.INTEGER,
    "long": ValueType.INTEGER,
    "double": ValueType.FLOAT,
    "currency": ValueType.DECIMAL,
    "percent": ValueType.DECIMAL,
    "date": ValueType.DATE,
    "datetime": ValueType.DATETIME,
    "time": ValueType.TIME,
    "base64": ValueType.BINARY,
}
_NUMERIC_TYPES = frozenset({"int", "long", "double", "currency", "percent"})


class AuthorizationError(SignInRefused):
    """The design-time authorization failed: denied consent, a forged or stale ``state``, or a
    code or refresh token Salesforce did not accept."""


class LoginError(ProviderError):
    """Salesforce's token endpoint refused a request; ``error`` is its OAuth error code."""

    def __init__(self, message: str, error: str = "") -> None:
        super().__init__(message)
        self.error = error


# --------------------------------------------------------------------------------------------
# Login hosts
# --------------------------------------------------------------------------------------------


def login_url(environment: str = "production", my_domain: str = "") -> str:
    """Where to log in: the My Domain URL when given, else production or sandbox login.

    The production and sandbox hosts come from ``IB_SALESFORCE_LOGIN_URL`` and
    ``IB_SALESFORCE_SANDBOX_LOGIN_URL`` (sovereign clouds, tests), defaulting to
    login.salesforce.com and test.salesforce.com. A My Domain must be on one of
    :data:`MY_DOMAIN_SUFFIXES` or be one of those two hosts: the design-time sign-in sends the
    user's browser there and the service's token request follows.
    """
    production = normalize_login_url(os.environ.get(LOGIN_URL_ENV) or PRODUCTION_LOGIN_URL)
    sandbox = normalize_login_url(os.environ.get(SANDBOX_LOGIN_URL_ENV) or SANDBOX_LOGIN_URL)
    if my_domain.strip():
        login = normalize_login_url(my_domain, MY_DOMAIN_FIELD)
        host = httpx.URL(login).host
        if login not in (production, sandbox) and not host.endswith(MY_DOMAIN_SUFFIXES):
            raise ConnectionValueError(
                f"the My Domain URL names {host}, which is not a My Domain: give "
                "https://yourcompany.my.salesforce.com (sandboxes: "
                "https://yourcompany--sandbox.sandbox.my.salesforce.com), or leave it empty",
                MY_DOMAIN_FIELD,
            )
        return login
    if environment == "sandbox":
        return sandbox
    if environment not in ("", "production"):
        raise ConnectionValueError(f"unknown Salesforce org kind {environment!r}: production or sandbox")
    return production


def sign_in_login_url(options: Mapping[str, str]) -> str:
    """Where the wizard's "Authorize Salesforce" goes for the source step's choices (its
    ``sign_in`` fields, kept in the source options); ConnectionValueError for a bad My Domain."""
    return login_url(options.get(ENVIRONMENT_FIELD, "production"), options.get(MY_DOMAIN_FIELD, ""))


def normalize_login_url(text: str, field_name: str = "login_url") -> str:
    """``https://host[:port]`` from a login URL, a host, or a My Domain name alone
    (``acme`` -> ``https://acme.my.salesforce.com``); ConnectionValueError for anything else."""
    value = text.strip()
    if not value:
        raise ConnectionValueError("give the login URL or My Domain URL", field_name)
    if "://" not in value:
        value = "https://" + value
    try:
        url = httpx.URL(value)
    except httpx.InvalidURL:
        raise ConnectionValueError(f"{text.strip()!r} is not a URL", field_name) from None
    if url.scheme != "https":
        raise ConnectionValueError("Salesforce login URLs start with https://", field_name)
    if url.userinfo or url.query or url.path not in ("", "/"):
        raise ConnectionValueError(
            "give only the host of the login URL, e.g. https://yourcompany.my.salesforce.com", field_name
        )
    host = url.host
    if not host or not _HOST.match(host):
        raise ConnectionValueError(f"{text.strip()!r} has no valid host name", field_name)
    if "." not in host and host != "localhost":
        host += ".my.salesforce.com"
    return f"https://{host}" + (f":{url.port}" if url.port else "")


def jwt_audience(login: str) -> str:
    """The ``aud`` of a JWT bearer assertion: Salesforce wants login.salesforce.com (or
    test.salesforce.com for sandboxes) even when the token request goes to a My Domain."""
    host = httpx.URL(login).host
    if host == "test.salesforce.com" or host.endswith(".sandbox.my.salesforce.com"):
        return SANDBOX_LOGIN_URL
    if host == "salesforce.com" or host.endswith(".salesforce.com"):
        return PRODUCTION_LOGIN_URL
    return login


def callback_url(base_url: str) -> str:
    """The design-time OAuth callback of a service reachable at ``base_url`` (``IB_BASE_URL``)."""
    return base_url.rstrip("/") + CALLBACK_PATH


# --------------------------------------------------------------------------------------------
# Tokens
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class SalesforceTokens:
    """What Salesforce's token endpoint answered."""

    access_token: str = field(repr=False)
    instance_url: str
    refresh_token: str | None = field(default=None, repr=False)
    scope: str = ""
    identity_url: str = ""  # the "id" URL: names the org and the user
    issued_at: str = ""  # milliseconds since 1970, as Salesforce writes it


@dataclass(frozen=True, slots=True)
class OAuthClient:
    """The External Client App the service itself uses for design-time authorization."""

    client_id: str
    client_secret: str | None = field(default=None, repr=False)

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> OAuthClient | None:
        """From ``IB_SALESFORCE_CLIENT_ID`` / ``IB_SALESFORCE_CLIENT_SECRET``; None when unset."""
        env = os.environ if environ is None else environ
        client_id = (env.get(CLIENT_ID_ENV) or "").strip()
        if not client_id:
            return None
        return cls(client_id, (env.get(CLIENT_SECRET_ENV) or "").strip() or None)


async def _token_request(login: str, form: Mapping[str, str], http: HttpOptions) -> SalesforceTokens:
    await check_public_url(login, allow_private=http.allow_private)
    url = f"{login}/services/oauth2/token"
    try:
        async with httpx.AsyncClient(verify=http.tls(), timeout=http.timeout_s) as client:
            response = await client.post(url, data=dict(form), headers={"Accept": "application/json"})
    except httpx.TimeoutException:
        raise SourceError(f"no answer from {login} within {http.timeout_s:g} s") from None
    except httpx.HTTPError as exc:
        raise SourceError(f"could not connect to {login} ({type(exc).__name__})") from None
    try:
        answer = response.json()
    except ValueError:
        answer = None
    if not isinstance(answer, dict):
        raise LoginError(
            f"{login} answered {response.status_code} without an OAuth answer: is it Salesforce?"
        )
    if response.status_code != 200:
        error = str(answer.get("error") or "")
        description = str(answer.get("error_description") or "").strip()
        raise LoginError(_login_problem(error, description), error)
    try:
        tokens = SalesforceTokens(
            access_token=str(answer["access_token"]),
            instance_url=str(answer["instance_url"]).rstrip("/"),
            refresh_token=str(answer["refresh_token"]) if answer.get("refresh_token") else None,
            scope=str(answer.get("scope") or ""),
            identity_url=str(answer.get("id") or ""),
            issued_at=str(answer.get("issued_at") or ""),
        )
    except KeyError as missing:
        raise LoginError(f"Salesforce's token answer has no {missing}") from None
    if not tokens.instance_url.startswith("https://"):
        raise LoginError(f"Salesforce named an instance that is not https: {tokens.instance_url}")
    return tokens


def _login_problem(error: str, description: str) -> str:
    said = f"{error}: {description}" if description else error or "no reason given"
    if description == "user hasn't approved this consumer":
        return (
            f"Salesforce refused the login ({said}): the user is not pre-authorized for the External "
            "Client App (Policies: admin-approved users, with the user's profile or permission set)"
        )
    if error == "invalid_client_id" or error == "invalid_client":
        return f"Salesforce does not know this consumer key ({said})"
    if error == "invalid_grant" and "audience" in description:
        return f"Salesforce refused the login ({said}): check the login URL (production or sandbox)"
    if error == "invalid_grant" and "assertion" in description:
        return (
            f"Salesforce refused the signed login ({said}): the External Client App must use the "
            "certificate of this connection, and the username must exist in this org"
        )
    return f"Salesforce refused the login ({said})"


def jwt_assertion(
    consumer_key: str, username: str, audience: str, private_key_pem: str | bytes, *, now: float | None = None
) -> str:
    """A JWT bearer assertion (RS256) for ``username``, signed with the connection's private key."""
    pem = private_key_pem.encode("ascii") if isinstance(private_key_pem, str) else private_key_pem
    try:
        key = serialization.load_pem_private_key(pem, password=None)
    except (ValueError, TypeError, UnsupportedAlgorithm):
        raise ConnectionValueError(
            "the private key is not an unencrypted PEM private key", PRIVATE_KEY_FIELD
        ) from None
    if not isinstance(key, rsa.RSAPrivateKey):
        raise ConnectionValueError("Salesforce signs logins with RSA keys only", PRIVATE_KEY_FIELD)
    issued = time.time() if now is None else now
    header = {"alg": "RS256", "typ": "JWT"}
    claims = {"iss": consumer_key, "sub": username, "aud": audience, "exp": int(issued) + JWT_LIFETIME_S}
    signing_input = ".".join(
        b64url(json.dumps(part, separators=(",", ":")).encode()) for part in (header, claims)
    )
    signature = key.sign(signing_input.encode("ascii"), padding.PKCS1v15(), hashes.SHA256())
    return f"{signing_input}.{b64url(signature)}"


async def jwt_bearer_login(
    login: str,
    consumer_key: str,
    username: str,
    private_key_pem: str | bytes,
    http: HttpOptions = DEFAULT_HTTP,
) -> SalesforceTokens:
    """Log ``username`` in with the JWT bearer flow (no refresh token: log in again instead)."""
    assertion = jwt_assertion(consumer_key, username, jwt_audience(login), private_key_pem)
    form = {"grant_type": "urn:ietf:params:oauth:grant-type:jwt-bearer", "assertion": assertion}
    return await _token_request(login, form, http)


# --------------------------------------------------------------------------------------------
# Design-time authorization: OAuth 2.0 web server flow with PKCE
# --------------------------------------------------------------------------------------------


def authorize_url(
    login: str,
    client_id: str,
    redirect_uri: str,
    state: str,
    code_challenge: str,
    scopes: Sequence[str] = DESIGN_SCOPES,
) -> str:
    """The Salesforce page that asks the user to log in and allow access."""
    query = urlencode(
        {
            "response_type": "code",
            "client_id": client_id,
            "redirect_uri": redirect_uri,
            "state": state,
            "code_challenge": code_challenge,
            "code_challenge_method": "S256",
            "scope": " ".join(scopes),
        }
    )
    return f"{login}/services/oauth2/authorize?{query}"


@dataclass(frozen=True, slots=True)
class AuthorizationRequest:
    """One started authorization: send the user to ``url``; keep the rest (server-side, with the
    draft) until the callback, which must bring back ``state``."""

    url: str = field(repr=False)  # carries the state
    login_url: str
    client_id: str
    redirect_uri: str
    state: str = field(repr=False)
    code_verifier: str = field(repr=False)


def start_authorization(
    login: str, client_id: str, redirect_uri: str, scopes: Sequence[str] = DESIGN_SCOPES
) -> AuthorizationRequest:
    """A fresh state and PKCE verifier, and the authorize URL that carries them."""
    state, verifier = new_state(), pkce_verifier()
    url = authorize_url(login, client_id, redirect_uri, state, pkce_challenge(verifier), scopes)
    return AuthorizationRequest(url, login, client_id, redirect_uri, state, verifier)


def authorization_code(params: Mapping[str, str], expected_state: str) -> str:
    """The code from the callback's query parameters, after checking ``state``.

    AuthorizationError for a forged or stale ``state`` (checked first, so a forged callback
    learns nothing), denied consent (``error=access_denied``) and any other error Salesforce sent.
    """
    if not state_matches(params.get("state"), expected_state):
        raise AuthorizationError(
            "this Salesforce authorization does not belong to your current wizard (forged or stale "
            "state): press Authorize Salesforce again"
        )
    error = params.get("error")
    if error == "access_denied":
        raise AuthorizationError(
            "Salesforce access was not allowed (consent denied): press Authorize Salesforce and choose Allow"
        )
    if error:
        description = " ".join((params.get("error_description") or "").split())[:300]
        raise AuthorizationError(
            f"Salesforce refused the authorization ({error}: {description or 'no reason'})"
        )
    code = params.get("code") or ""
    if not code:
        raise AuthorizationError("Salesforce sent no authorization code: press Authorize Salesforce again")
    return code


async def exchange_code(
    request: AuthorizationRequest,
    code: str,
    client_secret: str | None = None,
    http: HttpOptions = DEFAULT_HTTP,
) -> SalesforceTokens:
    """Trade the callback's code (and the PKCE verifier) for tokens at /services/oauth2/token."""
    form = {
        "grant_type": "authorization_code",
        "code": code,
        "client_id": request.client_id,
        "redirect_uri": request.redirect_uri,
        "code_verifier": request.code_verifier,
    }
    if client_secret:
        form["client_secret"] = client_secret
    try:
        return await _token_request(request.login_url, form, http)
    except LoginError as error:
        raise AuthorizationError(f"{error}: press Authorize Salesforce again") from None


async def refresh_access_token(
    login: str,
    client_id: str,
    refresh_token: str,
    client_secret: str | None = None,
    http: HttpOptions = DEFAULT_HTTP,
) -> SalesforceTokens:
    """A new access token for a design-time authorization (the refresh token stays the same)."""
    form = {"grant_type": "refresh_token", "refresh_token": refresh_token, "client_id": client_id}
    if client_secret:
        form["client_secret"] = client_secret
    try:
        tokens = await _token_request(login, form, http)
    except LoginError as error:
        raise AuthorizationError(f"{error}: press Authorize Salesforce again") from None
    if tokens.refresh_token is None:
        return SalesforceTokens(
            tokens.access_token,
            tokens.instance_url,
            refresh_token,
            tokens.scope,
            tokens.identity_url,
            tokens.issued_at,
        )
    return tokens


class SalesforceSignIn:
    """The wizard's "Authorize Salesforce" (:class:`~providers.base.DesignSignIn`): the callback
    reads the org's objects at once, later ones are described with the kept token, renewed when
    Salesforce no longer accepts it."""

    family = FAMILY
    title = "Salesforce"
    done_page = "Signed in to Salesforce. Go back to Slack: the wizard reads your objects now."
    hint = ""
    reads_at_once = True

    def configured(self) -> bool:
        return OAuthClient.from_env() is not None

    async def start(self, options: Mapping[str, str], callback_url: str) -> SignInStart:
        client = OAuthClient.from_env()
        if client is None:
            raise AuthorizationError("Salesforce sign-in is not configured any more")
        # A My Domain or org kind the user gave is refused here (ProviderError) before any URL.
        request = start_authorization(sign_in_login_url(options), client.client_id, callback_url)
        pending = {
            "login_url": request.login_url,
            "client_id": request.client_id,
            "redirect_uri": request.redirect_uri,
            "code_verifier": request.code_verifier,
            "options": dict(options),  # the objects' source keeps them
        }
        return SignInStart(request.url, request.state, pending)

    async def complete(
        self, pending: Mapping[str, Any], state: str, params: Mapping[str, str]
    ) -> DesignSession:
        client = OAuthClient.from_env()
        if client is None:
            raise AuthorizationError("Salesforce sign-in is not configured any more")
        request = AuthorizationRequest(
            "",
            str(pending["login_url"]),
            str(pending["client_id"]),
            str(pending["redirect_uri"]),
            state,
            str(pending["code_verifier"]),
        )
        tokens = await exchange_code(request, authorization_code(params, state), client.client_secret)
        kept = {
            "access_token": tokens.access_token,
            "refresh_token": tokens.refresh_token or "",
            "instance_url": tokens.instance_url,
            "login_url": request.login_url,  # where the refresh token is traded later
        }
        org = MetadataSource(
            kind="url",
            location=tokens.instance_url,
            password=tokens.access_token,
            options=dict(pending.get("options") or {}),
        )
        return DesignSession(kept, read_now=org)

    async def renew(self, tokens: Mapping[str, Any]) -> dict[str, Any]:
        client = OAuthClient.from_env()
        if client is None:
            raise SignInExpired("Salesforce sign-in is not configured any more")
        try:
            renewed = await refresh_access_token(
                str(tokens.get("login_url") or tokens["instance_url"]),
                client.client_id,
                str(tokens.get("refresh_token") or ""),
                client.client_secret,
            )
        except AuthorizationError as error:
            log.info("renewing a Salesforce design-time session failed: %s", error)
            raise SignInExpired(
                "your Salesforce session ended and Salesforce refused to renew it: press "
                "Authorize Salesforce to sign in again (your choices are kept)"
            ) from None
        return {"access_token": renewed.access_token}

    async def authorize(self, tokens: Mapping[str, Any] | None, source: MetadataSource) -> MetadataSource:
        if source.location:
            return source  # the org the callback read, with the token it got (see complete)
        if not tokens or not tokens.get("instance_url"):
            raise SignInExpired("the Salesforce sign-in ended: press Authorize Salesforce to sign in again")
        return replace(source, location=str(tokens["instance_url"]), password=str(tokens["access_token"]))

    async def search(self, tokens: Mapping[str, Any], field_name: str, query: str) -> list[tuple[str, str]]:
        return []  # no source field of Salesforce's is searched


# --------------------------------------------------------------------------------------------
# Describe payloads -> catalog
# --------------------------------------------------------------------------------------------


def _api_name(value: Any, what: str) -> str:
    name = str(value or "")
    # names go into SOQL and URLs unquoted: only what Salesforce itself allows
    if not _API_NAME.match(name):
        raise MetadataError(f"{what} {name!r} is not a Salesforce API name")
    return name


def _attribute(object_name: str, raw: Mapping[str, Any]) -> Attribute:
    name = _api_name(raw.get("name"), f"{object_name}: field")
    sf_type = str(raw.get("type") or "")
    value_type = _VALUE_TYPES.get(sf_type, ValueType.JSON)
    label = " ".join(str(raw.get("label") or "").split())
    references = [str(r) for r in raw.get("referenceTo") or ()]
    reference_to = None
    if sf_type == "reference" and references:
        label = f"{label} (Id of {' or '.join(references)})" if label else f"Id of {' or '.join(references)}"
        if len(references) == 1:
            # a typed id (AccountId) in the package; polymorphic ones (Owner: User or Group) stay str
            reference_to = _api_name(references[0], f"{object_name}.{name}: target")
    enum = None
    if sf_type in ("picklist", "multipicklist"):
        members = tuple(
            EnumMember(str(v["value"]), str(v["value"]), " ".join(str(v.get("label") or "").split()))
            for v in raw.get("picklistValues") or ()
            if isinstance(v, Mapping) and v.get("active", True) and v.get("value") not in (None, "")
        )
        if members:
            enum = EnumType(f"{object_name}_{name}", members)
            value_type = ValueType.ENUM
    length = raw.get("length")
    numeric = sf_type in _NUMERIC_TYPES
    precision = raw.get("digits") if sf_type in ("int", "long") else raw.get("precision")
    return Attribute(
        name=name,
        type=value_type,
        wire_type=sf_type,
        label=label,
        key=sf_type == "id",
        nullable=bool(raw.get("nillable", True)),
        creatable=bool(raw.get("createable", False)),
        updatable=bool(raw.get("updateable", False)),
        filterable=bool(raw.get("filterable", True)),
        sortable=bool(raw.get("sortable", True)),
        max_length=int(length) if sf_type in TEXT_TYPES and isinstance(length, int) and length > 0 else None,
        precision=int(precision) if numeric and isinstance(precision, int) and precision > 0 else None,
        scale=int(raw["scale"])
        if numeric and isinstance(raw.get("scale"), int) and raw["scale"] > 0
        else None,
        enum=enum,
        collection=sf_type == "multipicklist",
        reference_to=reference_to,
    )


def _navigation(object_name: str, raw: Mapping[str, Any]) -> Navigation | None:
    """The relationship of a lookup field (``AccountId`` -> ``Account``), which a package may read
    the related record through (SOQL ``Account.Name``). Polymorphic lookups (``OwnerId`` of
    ``Group`` or ``User``) have no single target type and are left out; the id field itself is an
    attribute either way, and is what create and update set."""
    relationship = raw.get("relationshipName")
    targets = list(raw.get("referenceTo") or ())
    if raw.get("type") != "reference" or not relationship or len(targets) != 1:
        return None
    name = _api_name(relationship, f"{object_name}: relationship")
    target = _api_name(targets[0], f"{object_name}.{name}: target")
    label = " ".join(str(raw.get("label") or "").split()).removesuffix(" ID").strip()
    return Navigation(name=name, target=target, many=False, label=label or name)


def object_from_describe(describe: Mapping[str, Any]) -> ObjectDef:
    """One sObject describe payload (``GET .../sobjects/<name>/describe``) as a neutral object."""
    name = _api_name(describe.get("name"), "object")
    fields = describe.get("fields")
    if not isinstance(fields, list):
        raise MetadataError(f"the describe of {name} has no list of fields")
    shown = [f for f in fields if isinstance(f, Mapping) and not f.get("deprecatedAndHidden")]
    attributes = tuple(_attribute(name, f) for f in shown)
    navigations = tuple(
        navigation for f in shown for navigation in [_navigation(name, f)] if navigation is not None
    )
    return replace(object_outline(describe), attributes=attributes, navigations=navigations, outline=False)


def object_outline(summary: Mapping[str, Any]) -> ObjectDef:
    """An sObject as describe-global lists it (a describe has the same keys): its name, labels and
    what it allows, without its fields (:attr:`ObjectDef.outline`)."""
    name = _api_name(summary.get("name"), "object")
    queryable = bool(summary.get("queryable", False))
    retrieveable = bool(summary.get("retrieveable", queryable))
    label = " ".join(str(summary.get("label") or name).split())
    plural = " ".join(str(summary.get("labelPlural") or "").split())
    custom = bool(summary.get("custom", name.endswith("__c")))
    return ObjectDef(
        name=name,
        entity_name=name,
        label=label,
        attributes=(),
        capabilities=Capabilities(
            queryable=queryable,
            countable=queryable,
            creatable=bool(summary.get("createable", False)),
            updatable=bool(summary.get("updateable", False)),
            deletable=bool(summary.get("deletable", False)),
            readable_by_key=retrieveable,
        ),
        description=f"{plural}." if plural and plural != label else "",
        group="Custom objects" if custom else "Standard objects",
        # the runtime reads created records back unless Salesforce cannot retrieve them by Id
        runtime={} if retrieveable else {"retrieveable": False},
        outline=True,
    )


def catalog_from_global(
    describe_global: Mapping[str, Any],
    *,
    service_name: str = "Salesforce",
    api_version: str = DEFAULT_API_VERSION,
    source_sha256: str = "",
) -> Catalog:
    """The org's objects as describe-global lists them, outlined: those anyone may query or create,
    in its order (hidden, deprecated ones left out)."""
    listed = describe_global.get("sobjects") if isinstance(describe_global, Mapping) else None
    if not isinstance(listed, list):
        raise MetadataError("Salesforce's describe-global has no list of sobjects")
    objects = tuple(
        object_outline(o)
        for o in listed
        if isinstance(o, Mapping)
        and not o.get("deprecatedAndHidden")
        and (o.get("queryable") or o.get("createable"))
    )
    if not objects:
        raise MetadataError("this Salesforce user can neither query nor create any object")
    return _catalog(objects, service_name, api_version, source_sha256)


def catalog_from_describes(
    describes: Sequence[Mapping[str, Any]],
    describe_global: Mapping[str, Any] | None = None,
    *,
    service_name: str = "Salesforce",
    api_version: str = DEFAULT_API_VERSION,
    source_sha256: str = "",
) -> Catalog:
    """A catalog of the described objects, in describe-global's order when it is given."""
    if not describes:
        listed = len((describe_global or {}).get("sobjects") or ())
        raise MetadataError(
            f"describe-global lists {listed} objects but no object describe is included: add the describe "
            "of each object you need (GET /services/data/vXX.X/sobjects/<Object>/describe)"
            if describe_global
            else "no sObject describe found: nothing to integrate"
        )
    objects: dict[str, ObjectDef] = {}
    for describe in describes:
        obj = object_from_describe(describe)
        if obj.name in objects:
            raise MetadataError(f"the object {obj.name} is described twice")
        objects[obj.name] = obj
    order = [
        str(o.get("name")) for o in (describe_global or {}).get("sobjects") or () if isinstance(o, Mapping)
    ]
    position = {name: index for index, name in enumerate(order)}
    ranked = sorted(objects.values(), key=lambda o: (position.get(o.name, len(order)), o.name.lower()))
    return _catalog(tuple(ranked), service_name, api_version, source_sha256)


def _catalog(objects: tuple[ObjectDef, ...], service_name: str, api_version: str, sha256: str) -> Catalog:
    return Catalog(
        provider=SalesforceProvider.key,
        service_name=service_name,
        title=service_name,
        objects=objects,
        runtime={"api_version": api_version},
        source_sha256=sha256,
    )


def _json_document(data: bytes, where: str) -> Any:
    try:
        return json.loads(data.decode("utf-8-sig"))
    except UnicodeDecodeError:
        raise MetadataError(f"{where} is not UTF-8 text") from None
    except json.JSONDecodeError as exc:
        raise MetadataError(f"{where} is not valid JSON: {exc.msg} (line {exc.lineno})") from None


def _archive_documents(data: bytes, limit: int, location: str) -> Iterable[tuple[Any, str]]:
    try:
        archive = zipfile.ZipFile(io.BytesIO(data))
    except zipfile.BadZipFile:
        raise MetadataError(f"{location} is not a readable .zip file") from None
    members = [
        m
        for m in archive.infolist()
        if not m.is_dir() and m.filename.lower().endswith(".json") and not m.filename.startswith("__MACOSX/")
    ]
    if len(members) > _MAX_ARCHIVE_MEMBERS:
        raise MetadataError(f"{location} holds more than {_MAX_ARCHIVE_MEMBERS} JSON files")
    if sum(m.file_size for m in members) > limit:
        raise MetadataError(f"{location} unpacks to more than the metadata limit of {limit:,} bytes")
    for member in members:
        with archive.open(member) as stream:
            content = stream.read(limit + 1)
        if len(content) > member.file_size:  # a forged size in the archive's directory
            raise MetadataError(f"{member.filename} in {location} is larger than it claims")
        where = f"{member.filename} in {location}"
        yield _json_document(content, where), where


def parse_describes(data: bytes, location: str = "the metadata") -> tuple[list[Mapping[str, Any]], Any]:
    """The sObject describes and the describe-global (or None) in saved describe JSON.

    ``data`` is one describe payload, describe-global, a JSON array of such payloads, or a .zip
    of JSON files holding any of these.
    """
    limit = max_metadata_bytes()
    if len(data) > limit:
        raise MetadataError(f"{location} is larger than the metadata limit of {limit:,} bytes")
    if data.startswith(b"PK\x03\x04"):
        documents = list(_archive_documents(data, limit, location))
    else:
        documents = [(_json_document(data, location), location)]
    describes: list[Mapping[str, Any]] = []
    describe_global: Any = None
    for document, where in documents:
        for payload in document if isinstance(document, list) else [document]:
            if isinstance(payload, Mapping) and isinstance(payload.get("sobjects"), list):
                describe_global = payload
            elif isinstance(payload, Mapping) and "fields" in payload and "name" in payload:
                describes.append(payload)
            else:
                raise MetadataError(
                    f"{where} is neither an sObject describe nor describe-global "
                    "(save GET /services/data/vXX.X/sobjects/<Object>/describe)"
                )
    return describes, describe_global


# --------------------------------------------------------------------------------------------
# The provider
# --------------------------------------------------------------------------------------------


def _api_version(value: str, field_name: str = "api_version") -> str:
    version = value.strip().removeprefix("v") or os.environ.get(API_VERSION_ENV, "") or DEFAULT_API_VERSION
    if not _API_VERSION.match(version):
        raise ConnectionValueError(f"the Salesforce API version looks like 62.0, not {value!r}", field_name)
    return version


def _org_name(instance: str) -> str:
    """``acme`` for https://acme.my.salesforce.com: what the module name is suggested from."""
    label = httpx.URL(instance).host.split(".", 1)[0]
    return label if label[:1].isalpha() else "Salesforce"


def _salesforce_problem(error: SalesforceError) -> str:
    try:
        details = json.loads(error.content)
        first = details[0] if isinstance(details, list) else details
        said = f"{first.get('errorCode')}: {first.get('message')}"
    except (ValueError, TypeError, AttributeError, IndexError, KeyError):
        said = f"HTTP {error.status}"
    return " ".join(said.split())[:300]


class SalesforceProvider:
    """Salesforce sObjects; see the module docstring."""

    key = "salesforce"
    title = "Salesforce"
    implemented = True
    needs_certificate = True
    runtime = RuntimeSupport(
        module="salesforce", modules=("errors", "query", "records", "connection", "client", "salesforce")
    )
    sign_in: DesignSignIn = SalesforceSignIn()

    def __init__(self, http: HttpOptions = DEFAULT_HTTP) -> None:
        self._http = http

    def source_fields(self) -> Sequence[SourceField]:
        return (
            SourceField(
                ENVIRONMENT_FIELD,
                "Salesforce org",
                "choice",
                choices=(("production", "Production or Developer Edition"), ("sandbox", "Sandbox")),
                sign_in=True,
            ),
            SourceField(
                MY_DOMAIN_FIELD,
                "My Domain URL",
                "url",
                hint="Optional: https://yourcompany.my.salesforce.com, to log in through your own domain "
                "(press Enter to use it for Authorize Salesforce).",
                sign_in=True,
            ),
            SourceField(
                "authorize",
                "Authorize Salesforce",
                "authorize",
                hint="Log in to Salesforce and allow Integration Builder to read your objects' definitions.",
            ),
            SourceField(
                "describe_file",
                "Saved describe JSON",
                "file",
                hint="Instead of authorizing: an sObject describe, a JSON array of them (plus "
                "describe-global) or a .zip of such files.",
            ),
        )

    async def discover(self, source: MetadataSource) -> Catalog:
        """Offline from describe JSON (``file``/``text``), or live (``url``: the instance URL, with
        the access token as ``password``; ``options["api_version"]``). Live, the catalog outlines
        the org's queryable or creatable objects from describe-global alone (an org lists hundreds:
        :meth:`complete` describes the few a user picks); ``options["objects"]`` names objects
        to describe at once instead, and only those are in the catalog."""
        options = source.options
        try:
            version = _api_version(options.get("api_version", ""))
        except ConnectionValueError as error:
            raise SourceError(str(error)) from None
        if source.kind != "url":
            data = await read_metadata_source(source)
            describes, describe_global = await asyncio.to_thread(
                parse_describes, data, source.location or "the metadata"
            )
            return catalog_from_describes(
                describes,
                describe_global,
                api_version=version,
                source_sha256=hashlib.sha256(data).hexdigest(),
            )
        instance, token = await self._live(source)
        wanted = [name.strip() for name in options.get("objects", "").split(",") if name.strip()]
        describe_global = await asyncio.to_thread(self._describe_global, instance, token, version)
        canonical = json.dumps(describe_global, sort_keys=True, separators=(",", ":"))
        catalog = catalog_from_global(
            describe_global,
            service_name=_org_name(instance),
            api_version=version,
            source_sha256=hashlib.sha256(canonical.encode()).hexdigest(),
        )
        if not wanted:
            return catalog
        listed = set(catalog.object_names())
        for name in wanted:
            _api_name(name, "object")
            if name not in listed:
                raise SourceError(f"the org has no object {name!r} (or this user cannot see it)")
        chosen = replace(catalog, objects=tuple(o for o in catalog.objects if o.name in wanted))
        return await self.complete(chosen, source, wanted)

    async def complete(self, catalog: Catalog, source: MetadataSource, names: Sequence[str]) -> Catalog:
        """``catalog`` with the objects ``names`` described live (``source`` as for
        :meth:`discover`), :data:`DESCRIBE_CONCURRENCY` describes at a time. SessionExpired when
        Salesforce no longer accepts the access token."""
        instance, token = await self._live(source)
        version = str(catalog.runtime.get("api_version") or DEFAULT_API_VERSION)
        for name in names:
            _api_name(name, "object")
        limit = asyncio.Semaphore(DESCRIBE_CONCURRENCY)
        session = self._http.requests_session()
        sf = Salesforce(instance_url=instance, session_id=token, version=version, session=session)

        async def describe(name: str) -> ObjectDef:
            async with limit:
                payload = await asyncio.to_thread(
                    self._call, instance, name, sf.restful, f"sobjects/{name}/describe"
                )
            described = object_from_describe(payload or {})
            if described.name != name:
                raise MetadataError(f"Salesforce answered the describe of {name} with {described.name}")
            return described

        try:
            async with asyncio.TaskGroup() as group:
                tasks = [group.create_task(describe(name)) for name in dict.fromkeys(names)]
        except* ProviderError as errors:
            raise errors.exceptions[0] from None
        finally:
            if session is not None:
                session.close()
        return catalog.with_objects(task.result() for task in tasks)

    async def _live(self, source: MetadataSource) -> tuple[str, str]:
        """(instance URL, access token) of a live source, checked."""
        instance = source.location.strip().rstrip("/")
        if not source.password:
            raise SourceError("authorize Salesforce first: reading the org's objects needs its access token")
        if not instance.startswith("https://"):
            raise SourceError(f"the Salesforce instance URL must start with https://, not {instance!r}")
        await check_public_url(instance, allow_private=self._http.allow_private)
        return instance, source.password

    def _describe_global(self, instance: str, token: str, version: str) -> Any:
        session = self._http.requests_session()
        try:
            sf = Salesforce(instance_url=instance, session_id=token, version=version, session=session)
            return self._call(instance, "the org's objects", sf.describe) or {}
        finally:
            if session is not None:
                session.close()

    def _call(self, instance: str, what: str, call: Callable[..., Any], *args: Any) -> Any:
        """One simple-salesforce call, its failures as one line the user can act on."""
        try:
            return call(*args, timeout=self._http.timeout_s)
        except SalesforceExpiredSession:
            raise SessionExpired(
                "the Salesforce authorization expired: press Authorize Salesforce again"
            ) from None
        except SalesforceResourceNotFound:
            raise SourceError(f"the org has no object {what!r} (or this user cannot see it)") from None
        except SalesforceError as error:
            raise SourceError(
                f"Salesforce refused to describe {what} ({_salesforce_problem(error)})"
            ) from None
        except requests.Timeout:
            raise SourceError(f"no answer from {instance} within {self._http.timeout_s:g} s") from None
        except requests.RequestException as error:
            raise SourceError(f"could not connect to {instance} ({type(error).__name__})") from None

    def connection_schema(self) -> Sequence[ConnectionField]:
        return (
            ConnectionField(
                "login_url",
                "Login URL",
                kind="url",
                default=PRODUCTION_LOGIN_URL,
                hint="Your My Domain URL (https://yourcompany.my.salesforce.com), or "
                "https://test.salesforce.com for a sandbox.",
            ),
            ConnectionField(
                "consumer_key",
                "Consumer key",
                hint="Of the External Client App: Settings > OAuth Settings > Consumer Key and Secret.",
            ),
            ConnectionField(
                "username",
                "Integration username",
                hint="The Salesforce user the integration acts as; pre-authorized for the app.",
            ),
            ConnectionField(
                PRIVATE_KEY_FIELD,
                "Private key (PEM)",
                secret=True,
                required=False,
                kind="multiline",
                hint="Leave empty when the service generated the certificate (admin requests do). Only "
                "for a certificate of your own uploaded to the app.",
            ),
            ConnectionField(
                "api_version",
                "API version",
                required=False,
                default=DEFAULT_API_VERSION,
                hint=f"Salesforce REST API version, e.g. {DEFAULT_API_VERSION}.",
            ),
        )

    def admin_instructions(self, context: Mapping[str, str]) -> AdminInstructions:
        """What a Salesforce administrator sets up. The service attaches the generated certificate
        itself (``context["certificate"]`` is its file name), so ``files`` stays empty."""
        integration = context.get("integration") or "the integration"
        environment = context.get("environment") or ""
        requester = context.get("requester") or "A developer"
        certificate = context.get("certificate")
        base_url = context.get("base_url") or os.environ.get("IB_BASE_URL", "")
        callback = callback_url(base_url) if base_url else f"the service's URL followed by {CALLBACK_PATH}"
        scopes = ", ".join(f"`{s}`" for s in CONNECTION_SCOPES)
        where = f" in *{environment}*" if environment else ""
        upload = (
            f"upload the attached certificate `{certificate}`"
            if certificate
            else "upload the certificate whose private key you will enter"
        )
        access = context.get("access", "read-write")
        return AdminInstructions(
            text=(
                f"*Salesforce connection for {integration}{where}*\n"
                f"{requester} needs {access} access to Salesforce through an External Client App that logs "
                "in with a certificate (OAuth 2.0 JWT bearer flow). In Salesforce Setup:\n"
                "1. *External Client App Manager* > *New External Client App*: name it after the "
                "integration, distribution state *Local*.\n"
                "2. *Enable OAuth*. Callback URL: "
                f"`{callback}`. OAuth scopes: {scopes} (Manage user data via APIs; Perform requests at any "
                "time).\n"
                f"3. Flow enablement: *Enable JWT Bearer Flow* and {upload}.\n"
                "4. Policies: *Permitted users: Admin approved users are pre-authorized*; add the profile "
                "or a permission set of the integration user, who needs API Enabled and access to the "
                "integration's objects.\n"
                "5. Press *Provide connection details* and enter the login URL (your My Domain URL, or "
                "https://test.salesforce.com for a sandbox), the app's *Consumer Key* (Settings > OAuth "
                "Settings > Consumer Key and Secret) and the integration username. No secret is needed: "
                "the certificate's private key stays in Integration Builder, encrypted."
            )
        )

    async def _login(
        self, values: Mapping[str, str], secrets: Mapping[str, str]
    ) -> tuple[SalesforceTokens, str]:
        login = normalize_login_url(values.get("login_url") or PRODUCTION_LOGIN_URL)
        consumer_key = (values.get("consumer_key") or "").strip()
        if not consumer_key:
            raise ConnectionValueError("give the consumer key of the External Client App", "consumer_key")
        username = (values.get("username") or "").strip()
        if not username:
            raise ConnectionValueError("give the username of the integration user", "username")
        version = _api_version(values.get("api_version") or "")
        private_key = secrets.get(PRIVATE_KEY_FIELD) or ""
        if not private_key.strip():
            raise ConnectionValueError(
                "this connection has no private key: create it through an admin request (the service "
                "generates the certificate), or paste the key of the app's certificate",
                PRIVATE_KEY_FIELD,
            )
        try:
            tokens = await jwt_bearer_login(login, consumer_key, username, private_key, self._http)
        except LoginError as error:
            field_name = {"invalid_client_id": "consumer_key", "invalid_client": "consumer_key"}.get(
                error.error
            )
            raise ConnectionValueError(str(error), field_name) from None
        return tokens, version

    async def connection_answer(
        self, values: Mapping[str, str], secrets: Mapping[str, str]
    ) -> dict[str, Any]:
        """A fresh access token from a JWT bearer login, never the private key."""
        tokens, version = await self._login(values, secrets)
        return {
            "url": f"{tokens.instance_url}/services/data/v{version}/",
            "auth": {"type": "bearer", "token": tokens.access_token},
            "expires_in": ACCESS_TOKEN_LIFETIME_S,
        }

    async def test_connection(
        self, values: Mapping[str, str], secrets: Mapping[str, str]
    ) -> ConnectionTestResult:
        """Log in with the JWT bearer flow and run a one-row query."""
        try:
            answer = await self.connection_answer(values, secrets)
            await check_public_url(answer["url"], allow_private=self._http.allow_private)
            async with httpx.AsyncClient(verify=self._http.tls(), timeout=self._http.timeout_s) as client:
                response = await client.get(
                    answer["url"] + "query",
                    params={"q": TEST_QUERY},
                    headers={
                        "Authorization": f"Bearer {answer['auth']['token']}",
                        "Accept": "application/json",
                    },
                )
        except ProviderError as error:
            return ConnectionTestResult(ok=False, message=str(error))
        except httpx.HTTPError as error:
            return ConnectionTestResult(
                ok=False, message=f"Salesforce did not answer the test query ({type(error).__name__})"
            )
        if response.status_code != 200:
            try:
                first = response.json()[0]
                said = f"{first.get('errorCode')}: {first.get('message')}"
            except (ValueError, KeyError, IndexError, TypeError, AttributeError):
                said = f"HTTP {response.status_code}"
            return ConnectionTestResult(
                ok=False, message=f"logged in, but the test query failed ({' '.join(said.split())[:300]})"
            )
        host = httpx.URL(answer["url"]).host
        return ConnectionTestResult(
            ok=True,
            message=f"connected to {host} as {values.get('username', '').strip()}: a one-row query answered",
        )


SALESFORCE_PROVIDER = SalesforceProvider()
register(SALESFORCE_PROVIDER)
