"""Reading OData ``$metadata`` documents safely: from a URL, an uploaded file or pasted text.

Two halves, both hostile-input aware:

* fetching (:func:`fetch_metadata`, :func:`read_metadata_source`): http/https only, a guard against
  server-side request forgery (no private, loopback or link-local targets unless allowed),
  redirects followed only within the same origin, connect and total timeouts, a size cap enforced
  while the body streams in;
* parsing (:func:`parse_edmx`): no DTDs, no entity expansion, no network access, a size cap, and
  a check that the document really is EDMX, giving an :class:`EdmxDocument` whose OData version
  :meth:`EdmxDocument.odata_version` tells.

Every failure is a :class:`~providers.base.SourceError` (the source could not be read) or a
:class:`~providers.base.MetadataError` (the document is unusable) with one line that never
contains a password.
"""

from __future__ import annotations

import asyncio
import hashlib
import ipaddress
import os
import socket
from dataclasses import dataclass
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime
from typing import Literal

import httpx
from lxml import etree  # type: ignore[import-untyped]

from providers.base import MetadataError, MetadataSource, SourceError

MAX_BYTES_ENV = "IB_METADATA_MAX_BYTES"
ALLOW_PRIVATE_ENV = "IB_ALLOW_PRIVATE_URLS"
DEFAULT_MAX_BYTES = 50 * 1024 * 1024

ODataVersion = Literal["2.0", "4.0"]

EDMX_V4_NAMESPACE = "http://docs.oasis-open.org/odata/ns/edmx"
_METADATA_NAMESPACE = "http://schemas.microsoft.com/ado/2007/08/dataservices/metadata"
_REDIRECT_STATUSES = frozenset({301, 302, 303, 307, 308})
_STATUS_HINTS = {
    403: "the user is not authorized for this service",
    404: "check the service URL",
}


class Throttled(SourceError):
    """The server asked to be called again later: 429, or 503 with ``Retry-After``.

    ``retry_after`` is the wait it asked for in seconds (None when it did not say), so a caller can
    decide whether waiting is worth it (providers/microsoft.py's ``riding_out_throttling``).
    """

    def __init__(self, message: str, status: int, retry_after: float | None) -> None:
        super().__init__(message)
        self.status = status
        self.retry_after = retry_after


def retry_after(response: httpx.Response) -> float | None:
    """The seconds ``Retry-After`` asks for (delta-seconds or an HTTP date), None when unsaid."""
    value = response.headers.get("retry-after", "").strip()
    if not value:
        return None
    if value.isdigit():
        return float(value)
    try:
        when = parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    return max(0.0, (when - datetime.now(UTC)).total_seconds())


def refusal(response: httpx.Response, message: str) -> SourceError:
    """The error for a non-success answer: :class:`Throttled` when the server asked to wait."""
    wait = retry_after(response)
    if response.status_code == 429 or (response.status_code == 503 and wait is not None):
        return Throttled(message, response.status_code, wait)
    return SourceError(message)


@dataclass(frozen=True, slots=True)
class FetchLimits:
    """How long and how much a metadata fetch may take; ``max_bytes=None`` reads the env default."""

    connect_timeout: float = 10.0
    total_timeout: float = 30.0
    max_bytes: int | None = None
    max_redirects: int = 5


def max_metadata_bytes() -> int:
    """The size cap for metadata documents: ``IB_METADATA_MAX_BYTES`` or 50 MB."""
    configured = os.environ.get(MAX_BYTES_ENV, "").strip()
    if not configured:
        return DEFAULT_MAX_BYTES
    try:
        limit = int(configured)
    except ValueError:
        raise MetadataError(f"{MAX_BYTES_ENV}={configured!r} is not a whole number of bytes") from None
    if limit <= 0:
        raise MetadataError(f"{MAX_BYTES_ENV} must be positive, not {limit}")
    return limit


def private_urls_allowed() -> bool:
    """Whether ``IB_ALLOW_PRIVATE_URLS`` lets URLs reach private, loopback or link-local hosts."""
    return os.environ.get(ALLOW_PRIVATE_ENV, "").strip().lower() in {"1", "true", "yes", "on"}


def metadata_url(url: str) -> str:
    """The ``$metadata`` URL for a service root URL; a ``$metadata`` URL is returned unchanged."""
    parsed = _parse_url(url)
    path = parsed.path
    if path.rstrip("/").endswith("/$metadata"):
        return str(parsed)
    return str(parsed.copy_with(path=path.rstrip("/") + "/$metadata"))


def display_url(url: httpx.URL | str) -> str:
    """A URL as it may appear in messages: no user info, no query (either may carry secrets)."""
    parsed = url if isinstance(url, httpx.URL) else httpx.URL(url)
    return str(parsed.copy_with(userinfo=b"", query=None, fragment=None))


async def check_public_url(url: str, *, allow_private: bool | None = None) -> None:
    """Refuse non-http(s) URLs and, unless allowed, hosts resolving to non-public addresses.

    ``allow_private=None`` means "as ``IB_ALLOW_PRIVATE_URLS`` says".
    """
    await _check_target(_parse_url(url), allow_private)


async def fetch_metadata(
    url: str,
    *,
    auth: httpx.Auth | None = None,
    headers: dict[str, str] | None = None,
    params: dict[str, str] | None = None,
    allow_private: bool | None = None,
    limits: FetchLimits | None = None,
    unauthorized_hint: str | None = None,
) -> bytes:
    """GET ``url`` under the rules in this module's docstring and return the body bytes.

    ``unauthorized_hint`` is what a 401 answer tells the user to check (default: user and password).
    """
    limits = limits or FetchLimits()
    max_bytes = limits.max_bytes if limits.max_bytes is not None else max_metadata_bytes()
    target = _parse_url(url)
    if params:
        target = target.copy_merge_params(params)
    timeout = httpx.Timeout(limits.total_timeout, connect=limits.connect_timeout)
    hint = unauthorized_hint or (
        "check user and password" if auth else "the service needs a user and password"
    )
    try:
        async with asyncio.timeout(limits.total_timeout):
            async with httpx.AsyncClient(timeout=timeout, follow_redirects=False) as client:
                return await _fetch(
                    client, target, auth, headers or {}, allow_private, limits, max_bytes, hint
                )
    except (TimeoutError, httpx.ReadTimeout, httpx.WriteTimeout, httpx.PoolTimeout):
        raise SourceError(
            f"timed out after {limits.total_timeout:g} s fetching {display_url(target)}"
        ) from None
    except httpx.ConnectTimeout:
        raise SourceError(
            f"timed out after {limits.connect_timeout:g} s connecting to {display_url(target)}"
        ) from None
    except httpx.ConnectError as exc:
        raise SourceError(f"could not connect to {display_url(target)}: {_first_line(exc)}") from None
    except httpx.HTTPError as exc:
        raise SourceError(f"fetching {display_url(target)} failed: {_first_line(exc)}") from None


async def read_metadata_source(
    source: MetadataSource, *, allow_private: bool | None = None, limits: FetchLimits | None = None
) -> bytes:
    """The raw bytes of a wizard/CLI metadata source (URL fetched with its basic auth, if any)."""
    if source.kind == "url":
        if not source.location.strip():
            raise SourceError("no metadata URL given")
        auth = httpx.BasicAuth(source.user, source.password or "") if source.user else None
        return await fetch_metadata(
            metadata_url(source.location.strip()), auth=auth, allow_private=allow_private, limits=limits
        )
    if not source.data.strip():
        what = f"the file {source.location}" if source.kind == "file" and source.location else "the metadata"
        raise MetadataError(f"{what} is empty")
    return source.data


@dataclass(frozen=True, slots=True)
class EdmxDocument:
    """A metadata document that parsed safely and has the EDMX shape."""

    root: etree._Element
    sha256: str
    edmx_version: str | None  # edmx:Edmx/@Version
    data_service_version: str | None  # edmx:DataServices/@m:DataServiceVersion (V2 only)

    def schemas(self) -> list[etree._Element]:
        return [
            schema
            for services in self.root
            if _localname(services) == "DataServices"
            for schema in services
            if _localname(schema) == "Schema"
        ]

    def odata_version(self, requested: str | None = None) -> ODataVersion:
        """The OData version: ``requested`` when given ("2.0"/"4.0"), else detected.

        Detection trusts ``Version="4.0"`` (SAP serves V4 documents in V2 namespaces), and
        ``Version="1.0"`` only together with a V2/V1 DataServiceVersion; anything else is unclear
        and needs the caller to say which version to read it as.
        """
        choice = (requested or "").strip().lower().removeprefix("v")
        if choice in {"2", "2.0"}:
            return "2.0"
        if choice in {"4", "4.0"}:
            return "4.0"
        if choice not in {"", "auto"}:
            raise MetadataError(f"unknown OData version {requested!r}: choose 2.0 or 4.0")
        version, service_version = self.edmx_version, self.data_service_version
        if version in {"4.0", "4.01"}:
            return "4.0"
        unclear = "cannot tell the OData version: "
        ask = "; choose OData 2.0 or 4.0"
        if version is None:
            raise MetadataError(unclear + "edmx:Edmx has no Version attribute" + ask)
        if version != "1.0":
            raise MetadataError(unclear + f"edmx:Edmx Version={version!r} is neither 1.0 (V2) nor 4.0" + ask)
        if etree.QName(self.root).namespace == EDMX_V4_NAMESPACE:
            raise MetadataError(unclear + "Version 1.0 (V2) but the OData V4 EDMX namespace" + ask)
        if service_version is None:
            raise MetadataError(unclear + "Version 1.0 without a DataServiceVersion" + ask)
        if service_version not in {"1.0", "2.0"}:
            raise MetadataError(unclear + f"DataServiceVersion {service_version} is not OData V2" + ask)
        return "2.0"


def parse_edmx(data: bytes, *, max_bytes: int | None = None) -> EdmxDocument:
    """Parse ``data`` with DTDs, entities and network access refused and check it is EDMX."""
    limit = max_bytes if max_bytes is not None else max_metadata_bytes()
    if len(data) > limit:
        raise _too_large(limit)
    # Some servers put whitespace before the XML declaration, which strict parsers reject.
    text = data.lstrip(b" \t\r\n")
    if not text:
        raise MetadataError("the metadata document is empty")
    # Refused before parsing so the user hears "DTD" rather than a parse error about entities.
    # Wide encodings (UTF-16/32) put NUL bytes between ASCII characters: drop them to look.
    probe = text.replace(b"\x00", b"") if b"\x00" in text[:4] else text
    if b"<!DOCTYPE" in probe:
        raise _dtd_refused()
    parser = etree.XMLParser(
        resolve_entities=False, no_network=True, load_dtd=False, dtd_validation=False, huge_tree=False
    )
    try:
        root = etree.fromstring(text, parser)
    except etree.XMLSyntaxError as exc:
        raise MetadataError(f"the metadata document is not well-formed XML: {_first_line(exc)}") from None
    docinfo = root.getroottree().docinfo
    # The byte check above cannot see a DTD in an encoding such as EBCDIC; the parser can.
    if docinfo.doctype or docinfo.internalDTD is not None:
        raise _dtd_refused()
    if etree.QName(root).localname != "Edmx":
        raise MetadataError(
            "the document is XML but not an OData $metadata (EDMX) document: "
            f"its root element is <{etree.QName(root).localname}>, not <edmx:Edmx>"
        )
    services = next((child for child in root if _localname(child) == "DataServices"), None)
    document = EdmxDocument(
        root=root,
        sha256=hashlib.sha256(data).hexdigest(),
        edmx_version=root.get("Version"),
        data_service_version=None
        if services is None
        else services.get(f"{{{_METADATA_NAMESPACE}}}DataServiceVersion"),
    )
    if not document.schemas():
        raise MetadataError("the $metadata document has no edmx:DataServices/Schema element: nothing to read")
    return document


async def _fetch(
    client: httpx.AsyncClient,
    url: httpx.URL,
    auth: httpx.Auth | None,
    headers: dict[str, str],
    allow_private: bool | None,
    limits: FetchLimits,
    max_bytes: int,
    unauthorized_hint: str,
) -> bytes:
    origin = _origin(url)
    for _ in range(limits.max_redirects + 1):
        await _check_target(url, allow_private)
        request_headers = {"Accept": "application/xml", **headers}
        async with client.stream("GET", url, auth=auth, headers=request_headers) as response:
            if response.status_code in _REDIRECT_STATUSES and "location" in response.headers:
                url = url.join(response.headers["location"])
                if _origin(url) != origin:
                    raise SourceError(f"redirect to another host ({_format_origin(url)}) refused")
                continue
            if response.status_code != 200:
                raise refusal(response, _status_message(response, unauthorized_hint))
            if response.headers.get("content-type", "").startswith("text/html"):
                raise SourceError(
                    f"{display_url(url)} answered with an HTML page, not a $metadata document "
                    "(a login page? check the URL and the credentials)"
                )
            return await _read_capped(response, max_bytes)
    raise SourceError(f"more than {limits.max_redirects} redirects fetching {display_url(url)}")


async def _read_capped(response: httpx.Response, max_bytes: int) -> bytes:
    declared = response.headers.get("content-length", "")
    if declared.isdigit() and int(declared) > max_bytes:
        raise _too_large(max_bytes)
    body = bytearray()
    async for chunk in response.aiter_bytes():
        body += chunk
        if len(body) > max_bytes:
            raise _too_large(max_bytes)
    return bytes(body)


async def _check_target(url: httpx.URL, allow_private: bool | None) -> None:
    if allow_private is None:
        allow_private = private_urls_allowed()
    if allow_private:
        return
    host = url.host
    try:
        addresses = {ipaddress.ip_address(host)}
    except ValueError:
        try:
            infos = await asyncio.get_running_loop().getaddrinfo(host, _port(url), type=socket.SOCK_STREAM)
        except (socket.gaierror, UnicodeError):
            raise SourceError(f"could not resolve the host {host!r}") from None
        addresses = {ipaddress.ip_address(info[4][0]) for info in infos}
    for address in sorted(addresses, key=str):
        if not address.is_global or address.is_multicast:
            raise SourceError(
                f"{host} resolves to the non-public address {address}: refused to prevent server-side "
                f"request forgery (an administrator can allow it with {ALLOW_PRIVATE_ENV}=1)"
            )


def _parse_url(url: str) -> httpx.URL:
    try:
        parsed = httpx.URL(url.strip())
    except httpx.InvalidURL as exc:
        raise SourceError(f"not a valid URL: {_first_line(exc)}") from None
    if parsed.scheme not in {"http", "https"}:
        raise SourceError(f"only http and https URLs are supported, not {parsed.scheme or 'no scheme'!r}")
    if not parsed.host:
        raise SourceError("the URL has no host")
    return parsed


def _port(url: httpx.URL) -> int:
    return url.port or (443 if url.scheme == "https" else 80)


def _origin(url: httpx.URL) -> tuple[str, str, int]:
    return url.scheme, url.host, _port(url)


def _format_origin(url: httpx.URL) -> str:
    scheme, host, port = _origin(url)
    return f"{scheme}://{host}:{port}"


def _status_message(response: httpx.Response, unauthorized_hint: str) -> str:
    status = response.status_code
    hint = unauthorized_hint if status == 401 else _STATUS_HINTS.get(status)
    if hint is None and status >= 500:
        hint = "the service is failing, try again later"
    reason = response.reason_phrase or "error"
    return f"metadata URL answered {status} {reason}" + (f": {hint}" if hint else "")


def _too_large(limit: int) -> MetadataError:
    return MetadataError(
        f"the metadata document is larger than the limit of {_format_size(limit)} ({MAX_BYTES_ENV})"
    )


def _dtd_refused() -> MetadataError:
    return MetadataError("the metadata document contains a DTD (<!DOCTYPE ...>), which is refused for safety")


def _format_size(size: int) -> str:
    for unit, factor in (("MB", 1024 * 1024), ("kB", 1024)):
        if size % factor == 0:
            return f"{size // factor} {unit}"
    return f"{size} bytes"


def _localname(element: etree._Element) -> str:
    return etree.QName(element).localname if isinstance(element.tag, str) else ""


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip() or type(exc).__name__
    return text.splitlines()[0]
