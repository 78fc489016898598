"""The ``sap-odata`` provider: SAP (and other) OData V2/V4 services described by ``$metadata``.

Design time only: where the metadata comes from (URL with basic auth, uploaded file, pasted text),
reading it into the neutral :class:`~providers.model.Catalog` (V2 through pyodata, V4 through our
CSDL reader), what a connection needs, what an SAP Basis administrator must set up, and a
connection test. Generated packages talk to the service through ``providers/runtime/odata.py``.
"""

from __future__ import annotations

import asyncio
import re
from collections.abc import Mapping, Sequence
from typing import Any

import httpx

from providers.base import (
    AdminInstructions,
    ConnectionField,
    ConnectionTestResult,
    ConnectionValueError,
    MetadataError,
    MetadataSource,
    ProviderError,
    RuntimeSupport,
    SourceField,
    register,
)
from providers.metadata_source import (
    FetchLimits,
    display_url,
    fetch_metadata,
    metadata_url,
    parse_edmx,
    read_metadata_source,
)
from providers.model import Catalog
from providers.odata_v2 import catalog_from_v2
from providers.odata_v4 import catalog_from_v4

API_KEY_HEADER = "APIKey"  # SAP API Business Hub / API Management convention
_HEADER_NAME = re.compile(r"^[!#$%&'*+.^_`|~0-9A-Za-z-]+$")
_SAP_CLIENT = re.compile(r"^\d{3}$")


class SapODataProvider:
    """Reads OData ``$metadata`` from a URL, file or pasted text; see the module docstring."""

    key = "sap-odata"
    title = "SAP OData"
    implemented = True
    needs_certificate = False
    runtime = RuntimeSupport(
        module="odata", modules=("errors", "query", "records", "connection", "client", "odata")
    )

    def __init__(self, *, allow_private: bool | None = None, limits: FetchLimits | None = None) -> None:
        """``allow_private=None`` follows ``IB_ALLOW_PRIVATE_URLS``; ``limits`` bound every fetch."""
        self._allow_private = allow_private
        self._limits = limits or FetchLimits()

    def source_fields(self) -> Sequence[SourceField]:
        return (
            SourceField(
                "metadata_url",
                "Metadata URL",
                "url",
                hint="The service root or its $metadata URL, "
                "e.g. https://host:44300/sap/opu/odata/sap/GWSAMPLE_BASIC/",
            ),
            SourceField("user", "User", "text", hint="Only if the URL needs a user and password."),
            SourceField("password", "Password", "password"),
            SourceField(
                "metadata_file", "Metadata file", "file", hint="A saved $metadata document (.edmx, .xml)."
            ),
            SourceField("metadata_text", "Metadata (pasted)", "multiline", hint="The $metadata XML itself."),
            SourceField(
                "odata_version",
                "OData version",
                "choice",
                hint="Only needed when the document does not say which version it is.",
                choices=(("auto", "Detect from the document"), ("2.0", "OData V2"), ("4.0", "OData V4")),
            ),
        )

    async def discover(self, source: MetadataSource) -> Catalog:
        data = await read_metadata_source(source, allow_private=self._allow_private, limits=self._limits)
        # Parsing a large document takes a noticeable fraction of a second: keep the event loop free.
        return await asyncio.to_thread(self.parse_metadata, data, source.options)

    def parse_metadata(self, data: bytes, options: Mapping[str, str] | None = None) -> Catalog:
        """Read a ``$metadata`` document offline; ``options["odata_version"]`` forces "2.0"/"4.0"."""
        document = parse_edmx(data, max_bytes=self._limits.max_bytes)
        version = document.odata_version((options or {}).get("odata_version"))
        read = catalog_from_v2 if version == "2.0" else catalog_from_v4
        catalog = read(document, provider=self.key)
        if not catalog.objects:
            raise MetadataError(
                "the $metadata document describes no entity sets: there is nothing to integrate"
            )
        return catalog

    def connection_schema(self) -> Sequence[ConnectionField]:
        return (
            ConnectionField(
                "url",
                "Service root URL",
                kind="url",
                hint="e.g. https://host:44300/sap/opu/odata/sap/GWSAMPLE_BASIC/",
            ),
            ConnectionField(
                "auth_type",
                "Authentication",
                kind="choice",
                choices=(("basic", "User and password"), ("api_key", "API key")),
                default="basic",
            ),
            ConnectionField("user", "User", required=False, hint="For user-and-password authentication."),
            ConnectionField("password", "Password", secret=True, required=False),
            ConnectionField(
                "api_key",
                "API key",
                secret=True,
                required=False,
                hint=f"Sent in the {API_KEY_HEADER} header.",
            ),
            ConnectionField(
                "sap_client", "SAP client", required=False, hint="Three digits, e.g. 100; sent as sap-client."
            ),
            ConnectionField(
                "additional_headers",
                "Additional headers",
                kind="multiline",
                required=False,
                hint="One per line, as Name: value",
            ),
        )

    def admin_instructions(self, context: Mapping[str, str]) -> AdminInstructions:
        service = context.get("service_name") or "the OData service"
        url = context.get("service_url")
        access = context.get("access", "read-write")
        requester = context.get("requester") or "the developer"
        where = f" (`{url}`)" if url else ""
        return AdminInstructions(
            text=(
                f"*Connection to the SAP OData service {service}{where}*\n"
                f"{requester} needs a technical user for {access} access to this service. In the SAP "
                "Gateway / S/4HANA system:\n"
                "1. Check that the service is activated: transaction `/IWFND/MAINT_SERVICE` (OData V2) "
                "or `/IWFND/V4_ADMIN` (OData V4).\n"
                "2. Create a user of type *System* in `SU01` (no dialog logon, password does not expire).\n"
                "3. In `PFCG`, create a role with authorization object `S_SERVICE` for this service "
                "(add it from the service's menu entry) plus the business authorizations the service "
                f"checks ({'display only' if access == 'read-only' else 'display and change'}), "
                "and assign the role to the user.\n"
                "4. For SAP BTP, API Management or S/4HANA Cloud, use a communication arrangement or an "
                "API key instead of steps 2 and 3.\n"
                "5. Press *Provide connection details* and enter the service root URL, the SAP client "
                "(if not the default), and the user and password or the API key. They are stored "
                "encrypted and never shown again."
            )
        )

    async def test_connection(
        self, values: Mapping[str, str], secrets: Mapping[str, str]
    ) -> ConnectionTestResult:
        try:
            answer = connection_answer(values, secrets)
            auth = answer["auth"]
            headers = dict(answer["headers"])
            basic = None
            if auth["type"] == "basic":
                basic = httpx.BasicAuth(auth["user"], auth["password"])
            else:
                headers[auth["header"]] = auth["key"]
            url = metadata_url(answer["url"])
            data = await fetch_metadata(
                url,
                auth=basic,
                headers=headers,
                params=answer["params"],
                allow_private=self._allow_private,
                limits=self._limits,
                unauthorized_hint="check user and password" if basic else "check the API key",
            )
            parse_edmx(data, max_bytes=self._limits.max_bytes)
        except ProviderError as exc:
            return ConnectionTestResult(ok=False, message=str(exc))
        return ConnectionTestResult(
            ok=True, message=f"connected: {display_url(url)} answered with its $metadata"
        )

    async def connection_answer(
        self, values: Mapping[str, str], secrets: Mapping[str, str]
    ) -> dict[str, Any]:
        return connection_answer(values, secrets)


def connection_answer(values: Mapping[str, str], secrets: Mapping[str, str]) -> dict[str, Any]:
    """A connection's fields in the shape generated packages resolve from the Integration Manager.

    (``providers/runtime/connection.py: connection_from_manager_answer``); raises ProviderError with
    one line (a ConnectionValueError naming the field) for a value that is missing or malformed.
    """
    url = (values.get("url") or "").strip()
    if not url:
        raise ConnectionValueError("the connection has no service root URL", "url")
    auth_type = values.get("auth_type") or "basic"
    auth: dict[str, str]
    if auth_type == "basic":
        user = (values.get("user") or "").strip()
        if not user:
            raise ConnectionValueError("user-and-password authentication needs a user", "user")
        auth = {"type": "basic", "user": user, "password": secrets.get("password") or ""}
    elif auth_type == "api_key":
        key = secrets.get("api_key") or ""
        if not key:
            raise ConnectionValueError("API key authentication needs an API key", "api_key")
        auth = {"type": "api_key", "key": key, "header": API_KEY_HEADER}
    else:
        raise ConnectionValueError(
            f"unknown authentication type {auth_type!r} (basic or api_key)", "auth_type"
        )
    params: dict[str, str] = {}
    sap_client = (values.get("sap_client") or "").strip()
    if sap_client:
        if not _SAP_CLIENT.match(sap_client):
            raise ConnectionValueError(
                f"the SAP client must be three digits, not {sap_client!r}", "sap_client"
            )
        params["sap-client"] = sap_client
    headers = _parse_headers(values.get("additional_headers") or "")
    return {"url": url, "auth": auth, "headers": headers, "params": params}


def _parse_headers(text: str) -> dict[str, str]:
    headers: dict[str, str] = {}
    for number, line in enumerate(text.splitlines(), start=1):
        if not line.strip():
            continue
        name, colon, value = line.partition(":")
        name = name.strip()
        if not colon or not _HEADER_NAME.match(name):
            raise ConnectionValueError(
                f"additional headers, line {number}: expected 'Name: value'", "additional_headers"
            )
        headers[name] = value.strip()
    return headers


SAP_ODATA_PROVIDER = SapODataProvider()
register(SAP_ODATA_PROVIDER)
