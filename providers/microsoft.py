"""Microsoft identity for the Dataverse, Dynamics 365 and SharePoint providers, through MSAL.

- Authorities are ``https://<host>/<tenant>``; the host comes from ``IB_MICROSOFT_AUTHORITY_HOST``
  (default login.microsoftonline.com: sovereign clouds and tests point it elsewhere, e.g.
  ``https://127.0.0.1:8443``). MSAL runs with ``instance_discovery=False`` so it asks only that host.
- Design-time sign-in, the authorization code flow with PKCE, as steps the Slack layer calls:
  :func:`start_sign_in` (the URL to send the user to, plus the flow to keep server-side; no network
  request, so it fits in a Slack ack),
  :func:`complete_sign_in` (the callback's query parameters -> :class:`MicrosoftTokens`) and
  :func:`refresh_sign_in` (a token for another resource, e.g. one Dataverse environment, from the
  refresh token). The service's own app registration comes from ``IB_MICROSOFT_CLIENT_ID`` /
  ``IB_MICROSOFT_CLIENT_SECRET`` / ``IB_MICROSOFT_TENANT`` (:meth:`SignInClient.from_env`).
  :class:`MicrosoftSignIn` puts these steps behind the wizard's :class:`~providers.base.DesignSignIn`
  for each Microsoft provider (its scopes, what it lists or searches once signed in).
- App-only tokens for connections: :func:`acquire_app_token` with a certificate (the service
  generates it, see providers/certificates.py) or a client secret. One MSAL application object is
  kept per credential, so its token cache answers until shortly before a token expires.
- Throttling at design time: :func:`riding_out_throttling` waits out what a 429 (or a 503 with
  ``Retry-After``) asks, a few times within a few seconds, for the wizard's and ``ib generate``'s
  calls to Graph, the Global Discovery Service and Dataverse; generated packages do their own.

MSAL is synchronous (requests): every call that may touch the network runs in a worker thread.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import math
import os
import re
import threading
import time
import warnings
from collections import OrderedDict
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import Any, Final, TypeVar

import httpx
import msal
import requests
from cryptography import x509
from cryptography.exceptions import UnsupportedAlgorithm
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from msal.oauth2cli.oidc import Client as OidcClient

from providers.base import (
    ConnectionField,
    ConnectionValueError,
    DesignSession,
    MetadataSource,
    ProviderError,
    SignInRefused,
    SignInStart,
    SourceError,
    callback_path,
)
from providers.base import SignInExpired as SignInEnded
from providers.certificates import CERTIFICATE_FIELD, PRIVATE_KEY_FIELD
from providers.metadata_source import Throttled
from providers.oauth import DEFAULT_HTTP, HttpOptions, state_matches

AUTHORITY_HOST_ENV: Final = "IB_MICROSOFT_AUTHORITY_HOST"
CLIENT_ID_ENV: Final = "IB_MICROSOFT_CLIENT_ID"
CLIENT_SECRET_ENV: Final = "IB_MICROSOFT_CLIENT_SECRET"  # noqa: S105 (a variable name)
TENANT_ENV: Final = "IB_MICROSOFT_TENANT"
DEFAULT_AUTHORITY_HOST: Final = "https://login.microsoftonline.com"
# Work and school accounts of any tenant: the service's app registration is multi-tenant.
DEFAULT_SIGN_IN_TENANT: Final = "organizations"
FAMILY: Final = "microsoft"  # the design-time callback route every Microsoft provider shares
CALLBACK_PATH: Final = callback_path(FAMILY)

# The connection fields every Microsoft provider shares (see :func:`connection_fields`).
TENANT_FIELD: Final = "tenant_id"
CLIENT_ID_FIELD: Final = "client_id"
AUTH_TYPE_FIELD: Final = "auth_type"
CLIENT_SECRET_FIELD: Final = "client_secret"  # noqa: S105 (a field name)

_TENANT = re.compile(r"[A-Za-z0-9](?:[A-Za-z0-9.-]{0,253}[A-Za-z0-9])?\Z")
_CLIENT_ID = re.compile(r"[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}\Z")
_MAX_APPLICATIONS = 64
# AADSTS codes -> (what the user should hear, the connection field at fault)
_KNOWN_CODES: dict[int, tuple[str, str | None]] = {
    7000215: ("the client secret is wrong: copy the secret's Value (not its ID)", CLIENT_SECRET_FIELD),
    7000222: ("the client secret has expired: add a new one to the app registration", CLIENT_SECRET_FIELD),
    700027: (
        "the identity server rejected the certificate: upload this connection's certificate to the app "
        "registration (Certificates & secrets > Certificates)",
        CERTIFICATE_FIELD,
    ),
    700024: (
        "the identity server rejected the certificate's signed assertion as outdated",
        CERTIFICATE_FIELD,
    ),
    700016: ("no app registration with this client id exists in the tenant", CLIENT_ID_FIELD),
    90002: ("the tenant does not exist: check the tenant id", TENANT_FIELD),
    900023: ("the tenant id is not valid: give the directory (tenant) id or domain", TENANT_FIELD),
    500011: ("the tenant has no such resource: check the URL and that the app is set up there", None),
    65001: ("an administrator has not granted consent for this app's API permissions yet", None),
    65004: ("the user declined to consent to the app's permissions", None),
    70008: ("the sign-in has expired", None),
    50173: ("the sign-in was revoked", None),
    700082: ("the sign-in has expired", None),
}
_SIGN_IN_AGAIN = frozenset({70008, 50173, 700082, 54005, 70000})

# A wizard step or `ib generate` waits this long at most for a throttling service, over this many
# tries: a storm that asks for more is reported at once, with the wait the service asked for.
THROTTLE_TRIES: Final = 3
THROTTLE_PATIENCE_S: Final = 10.0
# What a 429 without Retry-After waits (Graph and Dataverse send one, proxies may not).
_UNSAID_RETRY_AFTER_S: Final = 2.0

# MSAL adds these to every user sign-in (ID token, profile, refresh token) and refuses them as input.
_RESERVED_SCOPES: Final = frozenset({"openid", "profile", "offline_access"})

T = TypeVar("T")


class MicrosoftLoginError(ConnectionValueError):
    """The identity platform refused a request; ``error`` is its OAuth error code, ``codes`` its
    AADSTS numbers, ``field`` the connection field at fault (None when no single one is)."""

    def __init__(
        self, message: str, field: str | None = None, error: str = "", codes: Sequence[int] = ()
    ) -> None:
        super().__init__(message, field)
        self.error = error
        self.codes = tuple(codes)


class SignInError(SignInRefused):
    """The design-time sign-in cannot go on: a forged or stale ``state``, denied consent, a code
    or refresh token the identity platform did not accept. The wizard asks to sign in again."""


class SignInExpired(SignInError, SignInEnded):
    """The sign-in's refresh token expired or was revoked: only a new sign-in helps."""


# --------------------------------------------------------------------------------------------
# Authorities
# --------------------------------------------------------------------------------------------


def authority_host(environ: Mapping[str, str] | None = None) -> str:
    """``https://host[:port]`` of the identity platform (``IB_MICROSOFT_AUTHORITY_HOST``)."""
    env = os.environ if environ is None else environ
    configured = (env.get(AUTHORITY_HOST_ENV) or DEFAULT_AUTHORITY_HOST).strip().rstrip("/")
    if "://" not in configured:
        configured = "https://" + configured
    try:
        url = httpx.URL(configured)
    except httpx.InvalidURL:
        raise ProviderError(f"{AUTHORITY_HOST_ENV}={configured!r} is not a URL") from None
    # MSAL refuses anything else, with a less helpful message
    if url.scheme != "https" or not url.host or url.path not in ("", "/") or url.query:
        raise ProviderError(f"{AUTHORITY_HOST_ENV} must be https://host[:port], not {configured!r}")
    return f"https://{url.host}" + (f":{url.port}" if url.port else "")


def check_tenant(tenant: str) -> str:
    """A directory (tenant) id or domain as the authority's path segment; ConnectionValueError else."""
    value = tenant.strip()
    if not value:
        raise ConnectionValueError("give the directory (tenant) id", TENANT_FIELD)
    if not _TENANT.match(value):
        raise ConnectionValueError(
            f"{value!r} is not a tenant id: give the directory (tenant) id, a GUID, or a domain such as "
            "contoso.onmicrosoft.com",
            TENANT_FIELD,
        )
    return value


def check_client_id(client_id: str) -> str:
    value = client_id.strip()
    if not _CLIENT_ID.match(value):
        raise ConnectionValueError(
            "the application (client) id is a GUID such as 00000000-0000-0000-0000-000000000000, "
            "from the app registration's Overview page",
            CLIENT_ID_FIELD,
        )
    return value


def authority_url(tenant: str, environ: Mapping[str, str] | None = None) -> str:
    """The MSAL authority for ``tenant``: ``https://<authority host>/<tenant>``."""
    return f"{authority_host(environ)}/{check_tenant(tenant)}"


def callback_url(base_url: str) -> str:
    """The design-time callback of a service reachable at ``base_url`` (``IB_BASE_URL``)."""
    return base_url.rstrip("/") + CALLBACK_PATH


def resource_scope(resource_url: str, scope: str = ".default") -> str:
    """``https://org.crm.dynamics.com/.default`` for a resource URL (any path is dropped)."""
    url = httpx.URL(resource_url.strip())
    origin = f"{url.scheme}://{url.host}" + (f":{url.port}" if url.port else "")
    return f"{origin}/{scope}"


# --------------------------------------------------------------------------------------------
# MSAL plumbing
# --------------------------------------------------------------------------------------------

_applications: OrderedDict[tuple[Any, ...], msal.ClientApplication] = OrderedDict()
_applications_lock = threading.Lock()


def _fingerprint(*parts: str | None) -> str:
    # the cache key must not keep secrets in memory in the clear any longer than MSAL does
    return hashlib.sha256("\x00".join(p or "" for p in parts).encode()).hexdigest()


def _application(
    confidential: bool,
    authority: str,
    client_id: str,
    credential: str | dict[str, str] | None,
    http: HttpOptions,
) -> msal.ClientApplication:
    """One MSAL application per (authority, client, credential, HTTP options), built on first use.

    Construction fetches the authority's OpenID configuration, so this runs in a worker thread.
    """
    secret_parts = (
        (credential,)
        if isinstance(credential, str) or credential is None
        else tuple(credential.get(k) for k in sorted(credential))
    )
    key = (confidential, authority, client_id, _fingerprint(*secret_parts), http)
    with _applications_lock:
        found = _applications.get(key)
        if found is not None:
            _applications.move_to_end(key)
            return found
    options: dict[str, Any] = {
        "authority": authority,
        "instance_discovery": False,
        "timeout": http.timeout_s,
    }
    session = http.requests_session()
    if session is not None:
        options["http_client"] = session
    try:
        application: msal.ClientApplication
        if confidential:
            application = msal.ConfidentialClientApplication(
                client_id, client_credential=credential, **options
            )
        else:
            application = msal.PublicClientApplication(client_id, **options)
    except ValueError as error:
        raise _authority_problem(authority, error) from None
    except requests.RequestException as error:
        raise _unreachable(authority, error) from None
    with _applications_lock:
        _applications[key] = application
        while len(_applications) > _MAX_APPLICATIONS:
            _applications.popitem(last=False)
    return application


def forget_applications() -> None:
    """Drop every cached MSAL application and with it every cached token (key rotation, tests)."""
    with _applications_lock:
        _applications.clear()


def _authority_problem(authority: str, error: ValueError) -> MicrosoftLoginError:
    text = str(error)
    if "authority" in text.lower() or "tenant" in text.lower():
        tenant = authority.rsplit("/", 1)[-1]
        return MicrosoftLoginError(
            f"the Microsoft identity platform at {authority.rsplit('/', 1)[0]} does not know the tenant "
            f"{tenant!r}: check the directory (tenant) id",
            TENANT_FIELD,
        )
    # MSAL's own checks of the credential (a key it cannot load, a certificate without thumbprint)
    return MicrosoftLoginError(
        f"the certificate or private key cannot be used: {text[:200]}", PRIVATE_KEY_FIELD
    )


def _unreachable(authority: str, error: requests.RequestException) -> MicrosoftLoginError:
    host = httpx.URL(authority).host
    if isinstance(error, requests.Timeout):
        return MicrosoftLoginError(f"no answer from the Microsoft identity platform at {host}")
    return MicrosoftLoginError(
        f"could not reach the Microsoft identity platform at {host} ({type(error).__name__})"
    )


def _described(result: Mapping[str, Any]) -> str:
    description = " ".join(str(result.get("error_description") or "").split())
    # Entra appends trace and correlation ids and a timestamp: noise in a Slack message
    return description.split(" Trace ID:", 1)[0][:300]


def login_error(
    result: Mapping[str, Any], what: str = "the Microsoft identity platform refused the request"
) -> MicrosoftLoginError:
    """The :class:`MicrosoftLoginError` for an MSAL error result (``error``, ``error_codes``, ...)."""
    codes = [int(c) for c in result.get("error_codes") or () if isinstance(c, int | str) and str(c).isdigit()]
    error = str(result.get("error") or "")
    said = _described(result) or error or "no reason given"
    known = next((_KNOWN_CODES[c] for c in codes if c in _KNOWN_CODES), None)
    if known is not None:
        hint, field_name = known
        return MicrosoftLoginError(f"{what}: {hint} ({said})", field_name, error, codes)
    field_name = CLIENT_ID_FIELD if error in ("invalid_client", "unauthorized_client") else None
    return MicrosoftLoginError(f"{what} ({said})", field_name, error, codes)


async def _in_thread(call: Callable[[], T]) -> T:
    return await asyncio.to_thread(call)


# --------------------------------------------------------------------------------------------
# App-only tokens: client credentials with a certificate or a secret
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class AppCredential:
    """An app registration's credential in one tenant: a certificate (private key + certificate
    PEM) or a client secret."""

    tenant: str
    client_id: str
    client_secret: str | None = field(default=None, repr=False)
    private_key_pem: str | None = field(default=None, repr=False)
    certificate_pem: str | None = field(default=None, repr=False)

    @classmethod
    def from_connection(cls, values: Mapping[str, str], secrets: Mapping[str, str]) -> AppCredential:
        """From the fields of :func:`connection_fields`; ConnectionValueError naming the field."""
        tenant = check_tenant(values.get(TENANT_FIELD) or "")
        client_id = check_client_id(values.get(CLIENT_ID_FIELD) or "")
        auth_type = (values.get(AUTH_TYPE_FIELD) or "certificate").strip()
        if auth_type == "secret":
            secret = (secrets.get(CLIENT_SECRET_FIELD) or "").strip()
            if not secret:
                raise ConnectionValueError(
                    "client secret authentication needs the secret's value", CLIENT_SECRET_FIELD
                )
            return cls(tenant, client_id, client_secret=secret)
        if auth_type != "certificate":
            raise ConnectionValueError(
                f"unknown authentication type {auth_type!r} (certificate or secret)", AUTH_TYPE_FIELD
            )
        private_key = (secrets.get(PRIVATE_KEY_FIELD) or "").strip()
        certificate = (values.get(CERTIFICATE_FIELD) or "").strip()
        if not private_key:
            raise ConnectionValueError(
                "this connection has no private key: create it through an admin request (the service "
                "generates the certificate), or paste the key of the certificate uploaded to the app "
                "registration",
                PRIVATE_KEY_FIELD,
            )
        if "BEGIN CERTIFICATE" not in certificate:
            raise ConnectionValueError(
                "certificate authentication needs the certificate (PEM) uploaded to the app registration",
                CERTIFICATE_FIELD,
            )
        _check_key_pair(private_key, certificate)
        return cls(tenant, client_id, private_key_pem=private_key, certificate_pem=certificate)

    def msal_credential(self) -> str | dict[str, str]:
        if self.client_secret is not None:
            return self.client_secret
        # With the certificate MSAL signs with PS256 and names it by its SHA-256 thumbprint
        # (x5t#S256), what Entra ID expects today.
        return {"private_key": self.private_key_pem or "", "public_certificate": self.certificate_pem or ""}


def _check_key_pair(private_key_pem: str, certificate_pem: str) -> None:
    """A clear error for a key or certificate MSAL could not use, before any token request."""
    try:
        key = serialization.load_pem_private_key(private_key_pem.encode("ascii"), password=None)
    except (ValueError, TypeError, UnicodeEncodeError, UnsupportedAlgorithm):
        raise ConnectionValueError(
            "the private key is not an unencrypted PEM private key", PRIVATE_KEY_FIELD
        ) from None
    try:
        certificate = x509.load_pem_x509_certificate(certificate_pem.encode("ascii"))
    except (ValueError, UnicodeEncodeError):
        raise ConnectionValueError("the certificate is not a PEM certificate", CERTIFICATE_FIELD) from None
    public_key = certificate.public_key()
    if not isinstance(key, rsa.RSAPrivateKey) or not isinstance(public_key, rsa.RSAPublicKey):
        raise ConnectionValueError("Microsoft Entra ID takes RSA certificates only", CERTIFICATE_FIELD)
    if key.public_key().public_numbers() != public_key.public_numbers():
        raise ConnectionValueError("the private key does not belong to the certificate", PRIVATE_KEY_FIELD)


@dataclass(frozen=True, slots=True)
class AccessToken:
    token: str = field(repr=False)
    expires_in: int  # seconds from when it was handed out
    scopes: tuple[str, ...] = ()


async def acquire_app_token(
    credential: AppCredential, scopes: Sequence[str], http: HttpOptions = DEFAULT_HTTP
) -> AccessToken:
    """An app-only access token (client credentials flow), from MSAL's cache while it is valid.

    MicrosoftLoginError (a ConnectionValueError naming the field at fault) when the identity
    platform refuses: wrong secret, a certificate it does not know, unknown client or tenant.
    """
    authority = authority_url(credential.tenant)

    def acquire() -> dict[str, Any]:
        application = _application(True, authority, credential.client_id, credential.msal_credential(), http)
        assert isinstance(application, msal.ConfidentialClientApplication)
        try:
            result: dict[str, Any] = application.acquire_token_for_client(scopes=list(scopes))
        except requests.RequestException as error:
            raise _unreachable(authority, error) from None
        return result

    result = await _in_thread(acquire)
    if "access_token" not in result:
        raise login_error(result, "the Microsoft identity platform refused the app's sign-in")
    return AccessToken(str(result["access_token"]), int(result.get("expires_in") or 0), tuple(scopes))


# --------------------------------------------------------------------------------------------
# Throttling at design time
# --------------------------------------------------------------------------------------------


async def riding_out_throttling(
    call: Callable[[], Awaitable[T]],
    service: str,
    *,
    tries: int = THROTTLE_TRIES,
    patience_s: float = THROTTLE_PATIENCE_S,
) -> T:
    """``call()``, again after the wait a :class:`~providers.metadata_source.Throttled` asks for,
    at most ``tries`` times and ``patience_s`` seconds of waiting in all.

    When the storm outlasts that (or asks for more than is left), Throttled with one line naming
    ``service`` (e.g. "Microsoft Graph") and the wait it asked for, which the wizard shows inline
    and the CLI prints. Other errors pass through at once.
    """
    waited = 0.0
    attempt = 1
    while True:
        try:
            return await call()
        except Throttled as throttled:
            wait = _UNSAID_RETRY_AFTER_S if throttled.retry_after is None else throttled.retry_after
            if attempt >= tries or waited + wait > patience_s:
                raise Throttled(
                    f"{service} is throttling requests ({throttled.status}); "
                    f"try again in {max(1, math.ceil(wait))} s",
                    throttled.status,
                    wait,
                ) from None
        await asyncio.sleep(wait)
        waited += wait
        attempt += 1


# --------------------------------------------------------------------------------------------
# Design-time sign-in: authorization code flow with PKCE
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class SignInClient:
    """The service's own app registration, with which users sign in at design time."""

    client_id: str
    client_secret: str | None = field(default=None, repr=False)
    tenant: str = DEFAULT_SIGN_IN_TENANT

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> SignInClient | None:
        """From ``IB_MICROSOFT_CLIENT_ID`` / ``_CLIENT_SECRET`` / ``_TENANT``; None when unset."""
        env = os.environ if environ is None else environ
        client_id = (env.get(CLIENT_ID_ENV) or "").strip()
        if not client_id:
            return None
        return cls(
            client_id,
            (env.get(CLIENT_SECRET_ENV) or "").strip() or None,
            (env.get(TENANT_ENV) or "").strip() or DEFAULT_SIGN_IN_TENANT,
        )

    def application(self, http: HttpOptions, tenant: str | None = None) -> msal.ClientApplication:
        """The MSAL application (blocking: call it in a worker thread)."""
        authority = authority_url(tenant or self.tenant)
        if self.client_secret:
            return _application(True, authority, self.client_id, self.client_secret, http)
        return _application(False, authority, self.client_id, None, http)


@dataclass(frozen=True, slots=True)
class SignInRequest:
    """A started sign-in: send the user to ``url``; keep ``flow`` (JSON) server-side, with the draft,
    until the callback, which must bring back ``state``."""

    url: str = field(repr=False)  # carries the state
    state: str = field(repr=False)
    flow: dict[str, Any] = field(repr=False)
    redirect_uri: str
    scopes: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class MicrosoftTokens:
    """What the token endpoint answered for a signed-in user."""

    access_token: str = field(repr=False)
    expires_in: int
    refresh_token: str | None = field(default=None, repr=False)
    tenant_id: str = ""  # the user's directory: later refreshes go to this tenant
    username: str = ""
    scopes: tuple[str, ...] = ()


def _tokens(result: Mapping[str, Any], refresh_token: str | None = None) -> MicrosoftTokens:
    claims = result.get("id_token_claims") or {}
    return MicrosoftTokens(
        access_token=str(result["access_token"]),
        expires_in=int(result.get("expires_in") or 0),
        refresh_token=str(result.get("refresh_token") or refresh_token or "") or None,
        tenant_id=str(claims.get("tid") or ""),
        username=str(claims.get("preferred_username") or claims.get("upn") or claims.get("email") or ""),
        scopes=tuple(str(result.get("scope") or "").split()),
    )


async def start_sign_in(
    client: SignInClient, redirect_uri: str, scopes: Sequence[str], http: HttpOptions = DEFAULT_HTTP
) -> SignInRequest:
    """A fresh state, nonce and PKCE verifier (MSAL's OAuth client makes them) and the authorize
    URL carrying them, without any network request.

    The wizard calls this while Slack waits for its ack (3 s): an MSAL application would first
    fetch the authority's OpenID configuration, and a slow identity host would make the ack late.
    An Entra authority's authorize endpoint is fixed (``<authority>/oauth2/v2.0/authorize``), so
    the flow is built from it; the callback redeems it with the full MSAL application.

    ``scopes`` are the resource's delegated scopes, e.g.
    ``["https://globaldisco.crm.dynamics.com/user_impersonation"]``; openid, profile and
    offline_access (the refresh token that later gets tokens for other resources) are added.
    """
    endpoint = f"{authority_url(client.tenant)}/oauth2/v2.0/authorize"
    oauth = OidcClient({"authorization_endpoint": endpoint}, client.client_id)
    reserved = [s for s in scopes if s in _RESERVED_SCOPES]
    if reserved:
        raise SignInError(f"the sign-in asks for MSAL's reserved scopes {reserved}")
    with warnings.catch_warnings():
        # MSAL recommends form_post; the callback is a GET that PKCE and state already protect
        warnings.filterwarnings("ignore", message="response_mode='form_post'", category=UserWarning)
        flow: dict[str, Any] = oauth.initiate_auth_code_flow(
            redirect_uri=redirect_uri,
            scope=[*scopes, *sorted(_RESERVED_SCOPES)],
            response_mode="query",
            client_info=1,  # as MSAL asks: routes the code redemption to the user's home tenant
        )
    # what MSAL's own initiate_auth_code_flow adds, and acquire_token_by_auth_code_flow reads
    flow["claims_challenge"] = None
    return SignInRequest(flow["auth_uri"], str(flow["state"]), flow, redirect_uri, tuple(scopes))


def check_callback(params: Mapping[str, str], expected_state: str) -> None:
    """Refuse a forged or stale callback (checked first, so it learns nothing) and denied consent."""
    if not state_matches(params.get("state"), expected_state):
        raise SignInError(
            "this Microsoft sign-in does not belong to your current wizard (forged or stale state): "
            "press Sign in with Microsoft again"
        )
    error = params.get("error")
    if error in ("access_denied", "consent_required") or "AADSTS65004" in (
        params.get("error_description") or ""
    ):
        raise SignInError(
            "Microsoft access was not allowed (consent denied): press Sign in with Microsoft and accept"
        )
    if error:
        said = " ".join((params.get("error_description") or "").split()).split(" Trace ID:", 1)[0][:300]
        raise SignInError(f"the Microsoft sign-in failed ({error}: {said or 'no reason'})")
    if not params.get("code"):
        raise SignInError("Microsoft sent no authorization code: press Sign in with Microsoft again")


async def complete_sign_in(
    client: SignInClient,
    flow: Mapping[str, Any],
    params: Mapping[str, str],
    http: HttpOptions = DEFAULT_HTTP,
) -> MicrosoftTokens:
    """Trade the callback's code (with the PKCE verifier kept in ``flow``) for tokens."""
    check_callback(params, str(flow.get("state") or ""))

    def redeem() -> dict[str, Any]:
        application = client.application(http)
        try:
            result: dict[str, Any] = application.acquire_token_by_auth_code_flow(dict(flow), dict(params))
        except ValueError as error:  # MSAL's own state check
            raise SignInError(
                f"the Microsoft sign-in did not match its callback ({error}): sign in again"
            ) from None
        except requests.RequestException as error:
            raise _unreachable(authority_url(client.tenant), error) from None
        tenant = str((result.get("id_token_claims") or {}).get("tid") or "")
        if "access_token" in result and tenant and tenant != client.tenant:
            # Refreshes go to the user's tenant, some while Slack waits for an ack (the site
            # search): its authority's OpenID configuration is fetched now, in the callback.
            with contextlib.suppress(ProviderError):
                client.application(http, tenant)
        return result

    result = await _in_thread(redeem)
    if "access_token" not in result:
        raise SignInError(
            f"{login_error(result, 'Microsoft refused the sign-in')}: press Sign in with Microsoft again"
        )
    return _tokens(result)


async def refresh_sign_in(
    client: SignInClient,
    refresh_token: str,
    scopes: Sequence[str],
    http: HttpOptions = DEFAULT_HTTP,
    tenant: str | None = None,
) -> MicrosoftTokens:
    """An access token for ``scopes`` (any resource the user may use) from a sign-in's refresh
    token, in the user's ``tenant``. SignInExpired when the refresh token expired or was revoked,
    SignInError for other refusals."""

    def refresh() -> dict[str, Any]:
        application = client.application(http, tenant)
        try:
            result: dict[str, Any] = application.acquire_token_by_refresh_token(refresh_token, list(scopes))
        except requests.RequestException as error:
            raise _unreachable(authority_url(tenant or client.tenant), error) from None
        return result

    result = await _in_thread(refresh)
    if "access_token" not in result:
        problem = login_error(result, "Microsoft refused to renew the sign-in")
        # other refusals (consent missing for this resource, an unknown one) keep the sign-in useful
        refused = SignInExpired if _SIGN_IN_AGAIN.intersection(problem.codes) else SignInError
        raise refused(f"{problem}: press Sign in with Microsoft again")
    return _tokens(result, refresh_token)


# (value, label) choices from an access token (and a query, for a search).
Listing = Callable[[str], Awaitable[list[tuple[str, str]]]]
Search = Callable[[str, str], Awaitable[list[tuple[str, str]]]]


class MicrosoftSignIn:
    """Sign in with Microsoft for one provider (:class:`~providers.base.DesignSignIn`).

    ``scopes(url)`` are the delegated scopes for reading the resource at ``url``, and with ``""``
    what the source step needs before one is chosen (the sign-in asks for those; a token for
    another resource comes from the refresh token). ``listing`` gives the choices shown once
    signed in (a failure leaves them out: typing still works), ``searches`` the search of each
    :attr:`~providers.base.SourceField.search` field.
    """

    family = FAMILY
    title = "Microsoft"
    done_page = "Signed in with Microsoft. Go back to Slack to choose the environment."
    reads_at_once = False

    def __init__(
        self,
        scopes: Callable[[str], list[str]],
        hint: str,
        *,
        listing: Listing | None = None,
        searches: Mapping[str, Search] | None = None,
    ) -> None:
        self._scopes = scopes
        self.hint = hint
        self._listing = listing
        self._searches = dict(searches or {})

    def configured(self) -> bool:
        return SignInClient.from_env() is not None

    @staticmethod
    def _client() -> SignInClient:
        client = SignInClient.from_env()
        if client is None:
            raise SignInError("Microsoft sign-in is not configured any more")
        return client

    async def start(self, options: Mapping[str, str], callback_url: str) -> SignInStart:
        started = await start_sign_in(self._client(), callback_url, self._scopes(""))
        return SignInStart(started.url, started.state, {"flow": started.flow})

    async def complete(
        self, pending: Mapping[str, Any], state: str, params: Mapping[str, str]
    ) -> DesignSession:
        tokens = await complete_sign_in(self._client(), dict(pending["flow"]), params)
        listed = await self._listing(tokens.access_token) if self._listing is not None else []
        return DesignSession(
            {**_renewable(tokens), "tenant_id": tokens.tenant_id}, tokens.username, tuple(listed)
        )

    async def renew(self, tokens: Mapping[str, Any]) -> dict[str, Any]:
        renewed = await refresh_sign_in(
            self._client(),
            str(tokens.get("refresh_token") or ""),
            self._scopes(""),
            tenant=str(tokens.get("tenant_id") or "") or None,
        )
        return _renewable(renewed)

    async def authorize(self, tokens: Mapping[str, Any] | None, source: MetadataSource) -> MetadataSource:
        """A token for the resource ``source`` names (one per Dataverse environment)."""
        client = SignInClient.from_env()
        if tokens is None or client is None:
            raise SourceError("sign in with Microsoft first: reading the environment's tables needs it")
        renewed = await refresh_sign_in(
            client,
            str(tokens.get("refresh_token") or ""),
            self._scopes(source.location),
            tenant=str(tokens.get("tenant_id") or "") or None,
        )
        return replace(source, password=renewed.access_token)

    async def search(self, tokens: Mapping[str, Any], field_name: str, query: str) -> list[tuple[str, str]]:
        searching = self._searches.get(field_name)
        return [] if searching is None else await searching(str(tokens["access_token"]), query)


def _renewable(tokens: MicrosoftTokens) -> dict[str, Any]:
    """What is kept of a token answer to use the access token and later renew it."""
    return {
        "access_token": tokens.access_token,
        "refresh_token": tokens.refresh_token or "",
        "expires_at": time.time() + tokens.expires_in,
    }


# --------------------------------------------------------------------------------------------
# What the Microsoft providers share in their connections
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class AppRegistrationRequest:
    """What an admin request's instructions say in every Microsoft provider: who asks for what, the
    app registration to create, and how it signs in."""

    integration: str
    requester: str
    access: str  # read-only or read-write
    where: str  # " in *<environment>*", or empty
    target: str  # the environment or site URL, or ``default_target`` when the spec names a file
    app_name: str
    upload: str  # the certificate step

    @classmethod
    def of(cls, context: Mapping[str, str], default_target: str) -> AppRegistrationRequest:
        """From an admin request's context (see Provider.admin_instructions)."""
        integration = context.get("integration") or "the integration"
        environment = context.get("environment") or ""
        certificate = context.get("certificate")
        # the spec's source: an environment or site URL, or only a saved file's name
        source = context.get("service_url") or ""
        return cls(
            integration=integration,
            requester=context.get("requester") or "A developer",
            access=context.get("access", "read-write"),
            where=f" in *{environment}*" if environment else "",
            target=source if source.startswith(("https://", "http://")) else default_target,
            app_name=f"Integration Builder - {integration}",
            upload=f"upload the attached certificate `{certificate}`"
            if certificate
            else "upload the certificate whose private key you will enter, or add a client secret",
        )

    def opening(self, title: str, what: str) -> str:
        """The instructions up to their step 2: the connection asked for (``title``), access to
        ``what``, creating the app registration and giving it its certificate."""
        return (
            # the environment is bold already: a bold header around it would break the mrkdwn
            f"*{title} connection for {self.integration}*{self.where}\n"
            f"{self.requester} needs {self.access} access to {what} through an app registration that "
            "signs in with a certificate. As an administrator:\n"
            f"1. Microsoft Entra admin center > *App registrations* > *New registration*: name it "
            f"`{self.app_name}`, accounts in this organizational directory only.\n"
            f"2. *Certificates & secrets* > *Certificates*: {self.upload}.\n"
        )


def connection_fields() -> tuple[ConnectionField, ...]:
    """Tenant, client id, certificate (default) or secret: the fields every Microsoft connection has."""
    return (
        ConnectionField(
            TENANT_FIELD,
            "Directory (tenant) id",
            hint="From the app registration's Overview page: a GUID, or a domain such as "
            "contoso.onmicrosoft.com.",
        ),
        ConnectionField(
            CLIENT_ID_FIELD,
            "Application (client) id",
            hint="From the app registration's Overview page.",
        ),
        ConnectionField(
            AUTH_TYPE_FIELD,
            "Authentication",
            kind="choice",
            choices=(
                ("certificate", "Certificate (generated by Integration Builder)"),
                ("secret", "Client secret"),
            ),
            default="certificate",
        ),
        ConnectionField(
            CERTIFICATE_FIELD,
            "Certificate (PEM)",
            required=False,
            kind="multiline",
            hint="Filled in by admin requests, which generate it. Only for a certificate of your own.",
        ),
        ConnectionField(
            PRIVATE_KEY_FIELD,
            "Private key (PEM)",
            secret=True,
            required=False,
            kind="multiline",
            hint="Leave empty when the service generated the certificate.",
        ),
        ConnectionField(
            CLIENT_SECRET_FIELD,
            "Client secret",
            secret=True,
            required=False,
            hint="For client secret authentication: the secret's Value from Certificates & secrets.",
        ),
    )
