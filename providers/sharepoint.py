"""The ``sharepoint`` provider: lists of a SharePoint Online site, through Microsoft Graph.

Design time:

- sites: :func:`search_sites` (``GET /sites?search=``) and :func:`resolve_site` (a site URL or
  ``host:/sites/path``) with a signed-in user's Graph token (:func:`design_scopes`, through
  providers/microsoft.py's sign-in); Graph's base URL comes from ``IB_GRAPH_URL`` (default
  https://graph.microsoft.com/v1.0);
- the catalog: the site's lists with their columns (``GET /sites/{id}/lists?$expand=columns``),
  live (``MetadataSource(kind="url", location=<site>, password=<token>, options={"lists": "A,B"})``)
  or offline from saved Graph JSON (a list with ``columns``, an array of them, or Graph's
  ``{"value": [...]}`` collection): ``ib generate --provider sharepoint --metadata FILE``. Items
  have no count (as in the reference product), and ``FileDirRef`` is the folder filter;
- connections: tenant, client id, certificate (default) or secret, and the site (one per
  environment); the Integration Manager hands packages a short-lived Graph token and the site's
  Graph root.

Design-time reads (site search, the lists and columns, the connection test) ride out Graph's
throttling briefly (providers/microsoft.py's ``riding_out_throttling``), then say how long to wait.

Generated packages talk to Graph through ``providers/runtime/graph.py``.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Final
from urllib.parse import quote

import httpx

from providers.base import (
    AdminInstructions,
    ConnectionField,
    ConnectionTestResult,
    ConnectionValueError,
    DesignSignIn,
    MetadataError,
    MetadataSource,
    ProviderError,
    RuntimeSupport,
    SourceError,
    SourceField,
    register,
)
from providers.metadata_source import (
    Throttled,
    check_public_url,
    max_metadata_bytes,
    read_metadata_source,
    refusal,
)
from providers.microsoft import (
    AppCredential,
    AppRegistrationRequest,
    MicrosoftSignIn,
    acquire_app_token,
    connection_fields,
    resource_scope,
    riding_out_throttling,
)
from providers.model import Attribute, Capabilities, Catalog, EnumMember, EnumType, ObjectDef, ValueType
from providers.oauth import DEFAULT_HTTP, HttpOptions

GRAPH_URL_ENV: Final = "IB_GRAPH_URL"
GRAPH: Final = "Microsoft Graph"  # what throttling messages call it
DEFAULT_GRAPH_URL: Final = "https://graph.microsoft.com/v1.0"
SITE_FIELD: Final = "site"
FOLDER_ATTRIBUTE: Final = "FileDirRef"
_TOKEN_MARGIN_S: Final = 60
# The site search answers Slack's options request, which Slack waits 3 s for: one short wait at most.
_SEARCH_PATIENCE_S: Final = 1.0
# Columns Graph lists that are the item's own id or SharePoint's bookkeeping.
_SKIPPED_COLUMNS: Final = frozenset({"ID", "id", FOLDER_ATTRIBUTE})
_SCALAR_TYPES: Final = {
    "text": ValueType.STRING,
    "number": ValueType.FLOAT,
    "currency": ValueType.DECIMAL,
    "boolean": ValueType.BOOLEAN,
    "dateTime": ValueType.DATETIME,
    "choice": ValueType.ENUM,
    "calculated": ValueType.STRING,
}
# Column facets Graph describes; the first one a column carries is its type.
_FACETS: Final = (
    *_SCALAR_TYPES,
    "lookup",
    "personOrGroup",
    "hyperlinkOrPicture",
    "geolocation",
    "term",
    "thumbnail",
    "contentApprovalStatus",
)


def graph_url(environ: Mapping[str, str] | None = None) -> str:
    env = os.environ if environ is None else environ
    return (env.get(GRAPH_URL_ENV) or DEFAULT_GRAPH_URL).strip().rstrip("/")


def design_scopes(environ: Mapping[str, str] | None = None) -> list[str]:
    """What the design-time sign-in asks for: reading the user's sites and lists."""
    return [resource_scope(graph_url(environ), "Sites.Read.All")]


def site_reference(text: str) -> str:
    """Graph's address of a site: ``host:/sites/path`` from its URL or that form itself, or a site id
    (``host,guid,guid``) as it is. ConnectionValueError for anything else."""
    value = text.strip().rstrip("/")
    if not value:
        raise ConnectionValueError(
            "give the site, e.g. https://contoso.sharepoint.com/sites/sales", SITE_FIELD
        )
    if value.count(",") == 2 and "/" not in value:
        return value
    if ":/" in value and "://" not in value:
        host, _, path = value.partition(":/")
    else:
        url = httpx.URL(value if "://" in value else "https://" + value)
        if url.scheme != "https" or not url.host:
            raise ConnectionValueError(f"{text.strip()!r} is not a SharePoint site URL", SITE_FIELD)
        host, path = url.host, url.path.strip("/")
    if not host or not path or " " in host:
        raise ConnectionValueError(
            "give the site's URL with its path, e.g. https://contoso.sharepoint.com/sites/sales", SITE_FIELD
        )
    return f"{host}:/{path.strip('/')}"


@dataclass(frozen=True, slots=True)
class SharePointSite:
    id: str  # Graph's site id: host,site collection id,web id
    name: str
    web_url: str


async def _graph_get(
    token: str, path: str, http: HttpOptions, params: Mapping[str, str] | None = None
) -> Any:
    """One Graph GET; SourceError (one line) for every failure, Throttled when Graph asks to wait."""
    url = f"{graph_url()}/{path.lstrip('/')}"
    await check_public_url(url, allow_private=http.allow_private)
    try:
        async with httpx.AsyncClient(
            verify=http.tls(), timeout=http.timeout_s, follow_redirects=False
        ) as client:
            response = await client.get(
                url, params=params, headers={"Authorization": f"Bearer {token}", "Accept": "application/json"}
            )
    except httpx.TimeoutException:
        raise SourceError(f"no answer from Microsoft Graph within {http.timeout_s:g} s") from None
    except httpx.HTTPError as error:
        raise SourceError(f"could not reach Microsoft Graph ({type(error).__name__})") from None
    if response.status_code == 200:
        try:
            return response.json()
        except ValueError:
            raise SourceError("Microsoft Graph answered something that is not JSON") from None
    raise refusal(response, _graph_problem(response))


def _graph_problem(response: httpx.Response) -> str:
    try:
        error = response.json().get("error") or {}
        said = " ".join(str(error.get("message") or "").split())[:300]
    except (ValueError, AttributeError):
        said = ""
    status = response.status_code
    if status == 401:
        return "the Microsoft sign-in is not valid (expired?): press Sign in with Microsoft again"
    if status == 403:
        return f"Microsoft Graph refused access ({said or 'forbidden'}): the app needs Sites permissions"
    if status == 404:
        return f"Microsoft Graph has no such site or list ({said or 'not found'})"
    if status == 429:
        wait = response.headers.get("retry-after")
        return "Microsoft Graph is throttling requests" + (f": try again in {wait} s" if wait else "")
    return f"Microsoft Graph answered {status} ({said or response.reason_phrase})"


def _site(raw: Mapping[str, Any]) -> SharePointSite:
    return SharePointSite(
        id=str(raw["id"]),
        name=str(raw.get("displayName") or raw.get("name") or raw["id"]),
        web_url=str(raw.get("webUrl") or ""),
    )


async def search_sites(token: str, query: str, http: HttpOptions = DEFAULT_HTTP) -> list[SharePointSite]:
    """Sites whose name matches ``query`` (``GET /sites?search=``), for the wizard's site picker."""
    answer = await riding_out_throttling(
        lambda: _graph_get(token, "sites", http, {"search": query.strip() or "*"}),
        GRAPH,
        patience_s=_SEARCH_PATIENCE_S,
    )
    try:
        return [_site(raw) for raw in answer["value"]]
    except (KeyError, TypeError):
        raise SourceError("Microsoft Graph answered something else than a list of sites") from None


async def _found_sites(token: str, query: str) -> list[tuple[str, str]]:
    return [(site.web_url, site.name) for site in await search_sites(token, query)]


async def resolve_site(token: str, site: str, http: HttpOptions = DEFAULT_HTTP) -> SharePointSite:
    """The site a URL, ``host:/sites/path`` or id names (``GET /sites/{reference}``)."""
    reference = site_reference(site)
    answer = await _graph_get(token, f"sites/{quote(reference, safe=':/,')}", http)
    try:
        return _site(answer)
    except (KeyError, TypeError):
        raise SourceError("Microsoft Graph answered something else than a site") from None


# --------------------------------------------------------------------------------------------
# Lists and columns -> catalog
# --------------------------------------------------------------------------------------------


def _facet(column: Mapping[str, Any]) -> str:
    return next((facet for facet in _FACETS if facet in column), "")


def _attribute(list_name: str, column: Mapping[str, Any]) -> Attribute:
    name = str(column.get("name") or "")
    if not name:
        raise MetadataError(f"list {list_name!r}: a column has no name")
    facet = _facet(column)
    details = column.get(facet) or {}
    value_type = _SCALAR_TYPES.get(facet, ValueType.JSON)
    scalar = facet in _SCALAR_TYPES
    # lookups and people are written through <Name>LookupId fields: read them only
    writable = scalar and facet != "calculated" and not column.get("readOnly")
    enum = None
    collection = False
    if facet == "choice":
        choices = [str(c) for c in details.get("choices") or () if str(c)]
        collection = details.get("displayAs") == "checkBoxes"
        if choices:
            enum = EnumType(f"{list_name}_{name}", tuple(EnumMember(c, c) for c in choices))
        else:
            value_type = ValueType.STRING
    max_length = details.get("maxLength") if facet == "text" else None
    return Attribute(
        name=name,
        type=value_type,
        wire_type=facet or "json",
        label=" ".join(str(column.get("displayName") or "").split()),
        nullable=not column.get("required", False),
        creatable=writable,
        updatable=writable,
        filterable=scalar,
        sortable=scalar and not collection,
        max_length=int(max_length) if isinstance(max_length, int) and max_length > 0 else None,
        enum=enum,
        collection=collection,
    )


def object_from_list(raw: Mapping[str, Any]) -> ObjectDef:
    """One Graph list resource with its ``columns`` as a neutral object."""
    name = str(raw.get("displayName") or raw.get("name") or "")
    if not name:
        raise MetadataError("a list has no displayName")
    columns = raw.get("columns")
    if not isinstance(columns, list):
        raise MetadataError(
            f"list {name!r} has no columns: save GET /sites/{{site-id}}/lists/{{list-id}}?$expand=columns"
        )
    attributes = [
        Attribute(
            "id",
            ValueType.STRING,
            "id",
            label="Item id",
            key=True,
            nullable=False,
            creatable=False,
            updatable=False,
        ),
        Attribute(
            FOLDER_ATTRIBUTE,
            ValueType.STRING,
            "folder",
            label="Folder (server-relative URL): equal for one folder, starts with for its subfolders",
            creatable=False,
            updatable=False,
        ),
    ]
    attributes += [
        _attribute(name, c)
        for c in columns
        if isinstance(c, Mapping) and not c.get("hidden") and c.get("name") not in _SKIPPED_COLUMNS
    ]
    template = str((raw.get("list") or {}).get("template") or "genericList")
    return ObjectDef(
        name=name,
        entity_name=name,
        label=name,
        attributes=tuple(attributes),
        capabilities=Capabilities(countable=False),
        description=" ".join(str(raw.get("description") or "").split()),
        group="Document libraries" if template == "documentLibrary" else "Lists",
        runtime={"list_id": str(raw.get("id") or "")},
    )


def catalog_from_lists(
    lists: Sequence[Mapping[str, Any]], *, service_name: str = "SharePoint", source_sha256: str = ""
) -> Catalog:
    """The visible lists as a catalog, lists before document libraries, by name."""
    objects: dict[str, ObjectDef] = {}
    for raw in lists:
        if (raw.get("list") or {}).get("hidden"):
            continue
        obj = object_from_list(raw)
        if obj.name in objects:
            raise MetadataError(f"two lists are named {obj.name!r}")
        objects[obj.name] = obj
    if not objects:
        raise MetadataError("no visible list found: nothing to integrate")
    ordered = sorted(objects.values(), key=lambda o: (o.group != "Lists", o.name.lower()))
    return Catalog(
        provider="sharepoint",
        service_name=service_name,
        title=service_name,
        objects=tuple(ordered),
        source_sha256=source_sha256,
    )


def parse_lists(data: bytes, location: str = "the metadata") -> list[Mapping[str, Any]]:
    """The list resources in saved Graph JSON: one list, an array, or ``{"value": [...]}``."""
    limit = max_metadata_bytes()
    if len(data) > limit:
        raise MetadataError(f"{location} is larger than the metadata limit of {limit:,} bytes")
    try:
        document = json.loads(data.decode("utf-8-sig"))
    except UnicodeDecodeError:
        raise MetadataError(f"{location} is not UTF-8 text") from None
    except json.JSONDecodeError as error:
        raise MetadataError(f"{location} is not valid JSON: {error.msg} (line {error.lineno})") from None
    if isinstance(document, Mapping) and isinstance(document.get("value"), list):
        document = document["value"]
    lists = document if isinstance(document, list) else [document]
    if not all(isinstance(raw, Mapping) and "columns" in raw for raw in lists):
        raise MetadataError(
            f"{location} is not Graph list JSON with columns "
            "(save GET /sites/{site-id}/lists?$expand=columns)"
        )
    return lists


# --------------------------------------------------------------------------------------------
# The provider
# --------------------------------------------------------------------------------------------


class SharePointProvider:
    """SharePoint Online lists; see the module docstring."""

    key = "sharepoint"
    title = "SharePoint Online"
    implemented = True
    needs_certificate = True
    runtime = RuntimeSupport(
        module="graph",
        modules=("errors", "query", "records", "connection", "client", "graph"),
        supports_count=False,
    )
    # Graph's scopes whatever the site: one token reads every site the user may.
    sign_in: DesignSignIn = MicrosoftSignIn(
        lambda url: design_scopes(), "Search for the site.", searches={SITE_FIELD: _found_sites}
    )

    def __init__(self, http: HttpOptions = DEFAULT_HTTP) -> None:
        self._http = http

    def source_fields(self) -> Sequence[SourceField]:
        return (
            SourceField(
                "sign_in",
                "Sign in with Microsoft",
                "authorize",
                hint="Sign in with your work account to search your sites and read their lists.",
            ),
            SourceField(
                SITE_FIELD, "Site", "choice", hint="Search by name, or paste the site's URL.", search=True
            ),
            SourceField(
                "lists_file",
                "Saved lists JSON",
                "file",
                hint="Instead of signing in: GET /sites/{site-id}/lists?$expand=columns saved as a file.",
            ),
        )

    async def discover(self, source: MetadataSource) -> Catalog:
        """Offline from saved Graph JSON (``file``/``text``), or live (``url``: the site, with the
        signed-in user's Graph token as ``password``; ``options["lists"]`` names the lists)."""
        if source.kind != "url":
            data = await read_metadata_source(source)
            saved = await asyncio.to_thread(parse_lists, data, source.location or "the metadata")
            return catalog_from_lists(saved, source_sha256=hashlib.sha256(data).hexdigest())
        if not source.password:
            raise SourceError("sign in with Microsoft first: reading the site's lists needs a token")
        try:
            site_reference(source.location)
        except ConnectionValueError as error:
            raise SourceError(str(error)) from None
        token = source.password
        site, answer = await riding_out_throttling(lambda: self._site_lists(token, source.location), GRAPH)
        found = answer.get("value") if isinstance(answer, Mapping) else None
        if not isinstance(found, list):
            raise SourceError("Microsoft Graph answered something else than the site's lists")
        lists: list[Mapping[str, Any]] = found
        wanted = [n.strip() for n in source.options.get("lists", "").split(",") if n.strip()]
        if wanted:
            names = {str(raw.get("displayName")) for raw in lists}
            missing = [n for n in wanted if n not in names]
            if missing:
                raise SourceError(f"the site {site.name} has no list {missing[0]!r}")
            lists = [raw for raw in lists if raw.get("displayName") in wanted]
        canonical = json.dumps(lists, sort_keys=True, separators=(",", ":"))
        return catalog_from_lists(
            lists, service_name=site.name, source_sha256=hashlib.sha256(canonical.encode()).hexdigest()
        )

    async def _site_lists(self, token: str, site_text: str) -> tuple[SharePointSite, Any]:
        """The site and Graph's answer for its lists with their columns."""
        site = await resolve_site(token, site_text, self._http)
        answer = await _graph_get(
            token, f"sites/{quote(site.id, safe=',')}/lists", self._http, {"$expand": "columns"}
        )
        return site, answer

    def connection_schema(self) -> Sequence[ConnectionField]:
        return (
            ConnectionField(
                SITE_FIELD,
                "Site",
                kind="url",
                hint="The site's URL, e.g. https://contoso.sharepoint.com/sites/sales "
                "(one site per environment).",
            ),
            *connection_fields(),
        )

    def admin_instructions(self, context: Mapping[str, str]) -> AdminInstructions:
        """What a Microsoft Entra administrator sets up. The service attaches the generated
        certificate itself (``context["certificate"]`` names it), so ``files`` stays empty."""
        asked = AppRegistrationRequest.of(context, "the site")
        role = "read" if asked.access == "read-only" else "write"
        return AdminInstructions(
            text=asked.opening("SharePoint Online", f"the lists of {asked.target}")
            + "3. *API permissions* > *Add a permission* > *Microsoft Graph* > *Application permissions*: "
            "`Sites.Selected` (only the sites you grant) or `Sites.ReadWrite.All` (every site), then "
            "*Grant admin consent*.\n"
            f"4. With `Sites.Selected`, grant the app the `{role}` role on {asked.target} "
            "(`POST /sites/{site-id}/permissions`, or PnP PowerShell "
            "`Grant-PnPAzureADAppSitePermission`).\n"
            "5. Press *Provide connection details* and enter the site URL, the *Directory (tenant) ID* "
            "and the *Application (client) ID*. No secret is needed: the certificate's private key stays "
            "in Integration Builder, encrypted."
        )

    async def _token(self, values: Mapping[str, str], secrets: Mapping[str, str]) -> tuple[str, int]:
        credential = AppCredential.from_connection(values, secrets)
        token = await acquire_app_token(credential, [resource_scope(graph_url())], self._http)
        return token.token, token.expires_in

    async def _site_for(self, values: Mapping[str, str], token: str) -> SharePointSite:
        try:
            return await resolve_site(token, values.get(SITE_FIELD) or "", self._http)
        except Throttled:
            raise  # not the site's fault: the connection test waits it out
        except SourceError as error:
            raise ConnectionValueError(str(error), SITE_FIELD) from None

    async def connection_answer(
        self, values: Mapping[str, str], secrets: Mapping[str, str]
    ) -> dict[str, Any]:
        """A fresh app-only Graph token and the site's Graph root, never the key or secret."""
        site_reference(values.get(SITE_FIELD) or "")
        token, expires_in = await self._token(values, secrets)
        site = await self._site_for(values, token)
        return {
            "url": f"{graph_url()}/sites/{site.id}/",
            "auth": {"type": "bearer", "token": token},
            "expires_in": max(1, expires_in - _TOKEN_MARGIN_S),
        }

    async def test_connection(
        self, values: Mapping[str, str], secrets: Mapping[str, str]
    ) -> ConnectionTestResult:
        """Sign in as the app, find the site and read one entry of its lists (a connection names no
        list)."""

        async def first_list() -> Any:
            answer = await self.connection_answer(values, secrets)
            site_path = answer["url"].removeprefix(graph_url() + "/")
            return await _graph_get(answer["auth"]["token"], f"{site_path}lists", self._http, {"$top": "1"})

        try:
            lists = await riding_out_throttling(first_list, GRAPH)
        except ProviderError as error:
            return ConnectionTestResult(ok=False, message=str(error))
        seen = len(lists.get("value") or ()) if isinstance(lists, Mapping) else 0
        return ConnectionTestResult(
            ok=True,
            message=f"connected to {site_reference(values.get(SITE_FIELD) or '')}: "
            f"{'its lists are readable' if seen else 'no list visible yet'}",
        )


SHAREPOINT_PROVIDER = SharePointProvider()
register(SHAREPOINT_PROVIDER)
