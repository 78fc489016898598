"""The provider interface (DESIGN.md section 3) and the registry of providers.

Handlers and the generator only ever talk to providers through this module: they iterate
:func:`all_providers`, look one up with :func:`get_provider` and call the protocol's methods.
Nothing outside ``providers/`` branches on a provider's key.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal, Protocol, runtime_checkable

from providers.model import Catalog


class ProviderError(Exception):
    """A problem the user can act on; ``str(error)`` is one clear line, safe to show."""


class MetadataError(ProviderError):
    """The metadata document is unusable (malformed, unsafe, too large, wrong kind)."""


class SourceError(ProviderError):
    """The metadata source could not be read (unreachable, timeout, 401/403, bad redirect)."""


class SessionExpired(SourceError):
    """The design-time access token given as ``MetadataSource.password`` is no longer accepted:
    a renewed token (from the sign-in's refresh token) may work."""


class SignInExpired(SourceError):
    """The design-time sign-in ended (its refresh token expired or was revoked): only signing in
    again helps. The wizard shows the source step with a new sign-in button, keeping the draft."""


class SignInRefused(ProviderError):
    """The design-time sign-in cannot go on as it is: a forged or stale ``state``, denied consent, a
    code or refresh token the identity server did not accept. The wizard shows the source step with
    why (and, when the sign-in :class:`SignInExpired` too, a new sign-in button)."""


class ConnectionValueError(ProviderError):
    """A connection value the provider cannot use; ``field`` names the :class:`ConnectionField`
    to show the message under (None when no single field is at fault)."""

    def __init__(self, message: str, field: str | None = None) -> None:
        super().__init__(message)
        self.field = field


@dataclass(frozen=True, slots=True)
class MetadataSource:
    """Where the wizard or the CLI takes metadata from.

    ``kind`` is ``url`` (fetched with optional basic auth), ``file`` (bytes of an uploaded or
    local file, ``location`` is its name) or ``text`` (pasted).
    """

    kind: Literal["url", "file", "text"]
    location: str = ""
    data: bytes = b""
    user: str | None = None
    password: str | None = field(default=None, repr=False)
    options: Mapping[str, str] = field(default_factory=dict)  # e.g. {"odata_version": "4.0"}


@dataclass(frozen=True, slots=True)
class SourceField:
    """One input of the wizard's source step."""

    name: str
    label: str
    kind: Literal["url", "text", "multiline", "password", "file", "choice", "authorize"]
    required: bool = False
    hint: str = ""
    choices: tuple[tuple[str, str], ...] = ()  # (value, label)
    # Says where the "authorize" field signs in (an org kind, a login host): kept in the source
    # options, never read as metadata, and a change makes the wizard renew the sign-in button.
    sign_in: bool = False
    # A "choice" whose options are found as the user types, once signed in (a SharePoint site):
    # see DesignSignIn.search.
    search: bool = False


def callback_path(family: str) -> str:
    """Where the identity server sends the browser back after a design-time sign-in of ``family``
    (:attr:`DesignSignIn.family`), below the service's public URL."""
    return f"/oauth/{family}/callback"


@dataclass(frozen=True, slots=True)
class SignInStart:
    """A started design-time sign-in: send the user to ``url``; the service keeps ``pending``
    (JSON, encrypted) until the callback, which must bring back ``state``."""

    url: str = field(repr=False)  # carries the state
    state: str = field(repr=False)
    pending: dict[str, Any] = field(repr=False)


@dataclass(frozen=True, slots=True)
class DesignSession:
    """A finished design-time sign-in.

    ``tokens`` is the provider's own JSON: ``access_token``, what renewing it needs, and optionally
    ``expires_at`` (epoch seconds: the service renews the session shortly before). The service
    keeps it encrypted, beside its own keys (``provider``, ``pending``, ``username``,
    ``choices``, ``user_id``, ``view_id``, ``modal``, which it must not use), and hands it back to
    :class:`DesignSignIn`'s methods.
    ``username`` and ``choices`` (value, label: the user's environments, say) are shown on the
    source step; ``read_now`` is a source the wizard reads at once (the signed-in org itself).
    """

    tokens: dict[str, Any] = field(repr=False)
    username: str = ""
    choices: tuple[tuple[str, str], ...] = ()
    read_now: MetadataSource | None = field(default=None, repr=False)


class DesignSignIn(Protocol):
    """How the wizard signs a user in to a provider's system at design time (OAuth code flow).

    Every method gets the provider's own JSON back (``pending`` from :meth:`start`, ``tokens``
    from :attr:`DesignSession.tokens`); none keeps state between calls. Refusals are
    :class:`SignInRefused`, an ended sign-in :class:`SignInExpired`, both one line to show.
    """

    # The callback route's name (see callback_path): providers of one identity platform share it.
    family: str
    title: str  # "Salesforce": "Salesforce sign-in failed: ..."
    done_page: str  # what the browser shows after the callback, sending the user back to Slack
    hint: str  # the source step's next step once signed in, e.g. "Search for the site."
    # The callback reads the metadata (DesignSession.read_now): the source step shown again offers
    # a new sign-in, which serves a fresh token, rather than going on from this one.
    reads_at_once: bool

    def configured(self) -> bool:
        """Whether the service's own client app for this sign-in is configured."""
        ...

    async def start(self, options: Mapping[str, str], callback_url: str) -> SignInStart:
        """A fresh authorize URL; ``options`` are the source step's (its ``sign_in`` fields among
        them). ProviderError when they are not usable (a mistyped login host), before any URL."""
        ...

    async def complete(
        self, pending: Mapping[str, Any], state: str, params: Mapping[str, str]
    ) -> DesignSession:
        """Trade the callback's ``params`` (already known to belong to ``state``) for tokens."""
        ...

    async def renew(self, tokens: Mapping[str, Any]) -> dict[str, Any]:
        """What changed in ``tokens`` after renewing the access token; SignInExpired when only a
        new sign-in helps."""
        ...

    async def authorize(self, tokens: Mapping[str, Any] | None, source: MetadataSource) -> MetadataSource:
        """``source`` with the signed-in user's token for reading it (``tokens`` None: not signed
        in); a ``url`` source without a location is the signed-in system itself."""
        ...

    async def search(self, tokens: Mapping[str, Any], field_name: str, query: str) -> list[tuple[str, str]]:
        """(value, label) of what the :attr:`SourceField.search` field ``field_name`` finds for
        ``query``; ProviderError with the reason when the search could not run."""
        ...


@runtime_checkable
class SignsIn(Protocol):
    """Optional for a :class:`Provider` whose source step signs the user in (see design_sign_in)."""

    @property
    def sign_in(self) -> DesignSignIn: ...


def design_sign_in(provider: Provider) -> DesignSignIn | None:
    """The provider's design-time sign-in; None when its source step does not sign in."""
    return provider.sign_in if isinstance(provider, SignsIn) else None


@dataclass(frozen=True, slots=True)
class ConnectionField:
    """One field of a connection; secret fields are encrypted at rest and never echoed."""

    name: str
    label: str
    secret: bool = False
    required: bool = True
    kind: Literal["text", "url", "multiline", "choice"] = "text"
    hint: str = ""
    choices: tuple[tuple[str, str], ...] = ()
    default: str = ""


@dataclass(frozen=True, slots=True)
class AdminInstructions:
    """What an administrator of the external system must configure for a connection."""

    text: str  # mrkdwn, shown in the admin's DM
    files: tuple[tuple[str, bytes], ...] = ()  # (filename, content) attached to the DM


@dataclass(frozen=True, slots=True)
class ConnectionTestResult:
    ok: bool
    message: str


@dataclass(frozen=True, slots=True)
class RuntimeSupport:
    """How generated packages talk to this provider's system at run time.

    ``module`` names a module under ``providers/runtime/`` exposing ``Client`` and
    ``AsyncClient`` (see ``providers/runtime/client.py``); ``modules`` lists every runtime
    module the generated package must carry; ``dependencies`` are extra PyPI requirements.
    """

    module: str
    modules: tuple[str, ...]
    dependencies: tuple[str, ...] = ()
    supports_count: bool = True


@runtime_checkable
class Provider(Protocol):
    key: str
    title: str
    implemented: bool
    runtime: RuntimeSupport
    # An admin request for this provider carries a certificate the service generates (its private
    # key stays in the service, encrypted); the completed connection gets both, see
    # providers/certificates.py.
    needs_certificate: bool

    def source_fields(self) -> Sequence[SourceField]: ...

    async def discover(self, source: MetadataSource) -> Catalog: ...

    def connection_schema(self) -> Sequence[ConnectionField]: ...

    def admin_instructions(self, context: Mapping[str, str]) -> AdminInstructions: ...

    async def test_connection(
        self, values: Mapping[str, str], secrets: Mapping[str, str]
    ) -> ConnectionTestResult: ...

    async def connection_answer(
        self, values: Mapping[str, str], secrets: Mapping[str, str]
    ) -> dict[str, Any]:
        """What the Integration Manager hands a generated package for this connection: the JSON
        that ``providers/runtime/connection.py: connection_from_manager_answer`` reads, optionally
        with ``expires_in`` (seconds). Providers with OAuth or certificate credentials answer a
        short-lived ``bearer`` token here, never a client secret or private key. Raises
        :class:`ConnectionValueError` for a value it cannot use."""
        ...


@runtime_checkable
class CompletesCatalog(Protocol):
    """Optional for a :class:`Provider` whose ``discover`` may return outlined objects
    (:attr:`ObjectDef.outline`): systems with many objects (Salesforce orgs list hundreds) are
    listed cheaply, and only the objects a user picks are described. Providers that read one
    document (OData ``$metadata``) return full catalogs and need not implement it."""

    async def complete(self, catalog: Catalog, source: MetadataSource, names: Sequence[str]) -> Catalog:
        """``catalog`` with the outlined objects ``names`` described, read from ``source`` (the
        same kind of source ``discover`` read). SessionExpired when its token is no longer accepted."""
        ...


async def complete_catalog(
    provider: Provider, catalog: Catalog, source: MetadataSource, names: Sequence[str]
) -> Catalog:
    """``catalog`` with every outlined object among ``names`` described (the same catalog when
    none is outlined, without asking the provider)."""
    outlined = catalog.outlined(names)
    if not outlined:
        return catalog
    if not isinstance(provider, CompletesCatalog):
        raise MetadataError(f"{provider.title} listed objects it cannot describe: {', '.join(outlined[:5])}")
    return await provider.complete(catalog, source, outlined)


_REGISTRY: dict[str, Provider] = {}


def register(provider: Provider) -> Provider:
    _REGISTRY[provider.key] = provider
    return provider


def all_registered_keys() -> set[str]:
    return set(_REGISTRY)


def all_providers() -> list[Provider]:
    _load_builtin()
    return list(_REGISTRY.values())


def get_provider(key: str) -> Provider:
    _load_builtin()
    try:
        return _REGISTRY[key]
    except KeyError:
        known = ", ".join(sorted(_REGISTRY))
        raise ProviderError(f"unknown provider {key!r} (known: {known})") from None


def _load_builtin() -> None:
    if _REGISTRY:
        return
    import providers  # noqa: F401  (importing the package registers the built-in providers)
