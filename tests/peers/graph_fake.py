"""A local HTTPS fake of Microsoft Graph's SharePoint sites, lists, columns and list items.

What it serves under ``/v1.0``, in Graph's documented shapes, as strictly as Graph:

- ``GET /sites?search=``, ``GET /sites/{hostname}:/{server-relative path}``, ``GET /sites/{site-id}``;
- ``GET /sites/{site-id}/lists`` (``$expand=columns`` too), ``GET .../lists/{list-id or title}``,
  ``GET .../lists/{list}/columns``;
- list items: ``GET .../items?expand=fields(select=...)`` with ``$filter`` (``fields/X eq|ne|lt|le|gt|ge
  literal``, ``startswith(fields/X,'...')``, joined by ``and``), ``$orderby``, ``$top`` and
  ``@odata.nextLink`` (``$skiptoken``); filtering or ordering on a column that is not indexed
  needs ``Prefer: HonorNonIndexedQueriesWarningMayFailRandomly``; ``$skip`` and ``$count`` are
  refused. ``GET/DELETE .../items/{id}``, ``POST .../items`` (``{"fields": {...}}``),
  ``PATCH .../items/{id}/fields``, with ``If-Match`` against the item's ``eTag`` (412 when stale);
- errors as ``{"error": {"code", "message", "innerError": {"request-id", "date"}}}``.

Every request needs an access token of the identity peer for this origin (``aud``), checked
against its signing keys. :meth:`GraphFake.throttle` answers the next requests with 429 (or 503)
and ``Retry-After``, as Graph does when throttling. TLS uses a certificate authority made for this
run (``ca_path``).
"""

from __future__ import annotations

import copy
import itertools
import json
import re
import ssl
import tempfile
import threading
import uuid
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from types import TracebackType
from typing import Any
from urllib.parse import parse_qs, quote, unquote, urlsplit

import jwt

from tests.peers.tls import certificate_authority

Json = Any
HONOR_NON_INDEXED = "HonorNonIndexedQueriesWarningMayFailRandomly"
_COMPARISON = re.compile(r"fields/(\w+) (eq|ne|lt|le|gt|ge) (.+)")
_STARTS_WITH = re.compile(r"startswith\(fields/(\w+),\s*'((?:[^']|'')*)'\)")
_SELECT = re.compile(r"fields(?:\(select=([\w,]+)\))?")
_LINK_SAFE = "$,()'*:/"  # what Graph leaves unencoded in the query of its next links
# Graph's error codes and messages when it throttles.
_THROTTLED = {
    429: ("TooManyRequests", "Too many requests"),
    503: ("serviceNotAvailable", "The service is temporarily unavailable. Please retry after some time."),
}


class _Refusal(Exception):
    def __init__(
        self, status: int, code: str, message: str, headers: Mapping[str, str] | None = None
    ) -> None:
        super().__init__(message)
        self.status, self.code, self.message = status, code, message
        self.headers = dict(headers or {})


def column(name: str, kind: str, *, indexed: bool = False, read_only: bool = False, **facet: Any) -> Json:
    """A columnDefinition as Graph writes it; ``kind`` is its facet (text, number, choice, ...)."""
    return {
        "id": str(uuid.uuid4()),
        "name": name,
        "displayName": name.replace("_x0020_", " "),
        "description": "",
        "columnGroup": "Custom Columns",
        "enforceUniqueValues": False,
        "hidden": False,
        "indexed": indexed,
        "readOnly": read_only,
        "required": False,
        kind: facet,
    }


@dataclass
class FakeList:
    id: str
    display_name: str
    name: str
    columns: list[Json]
    template: str = "genericList"
    items: dict[str, Json] = field(default_factory=dict)

    def resource(self, site: FakeSite) -> Json:
        return {
            "@odata.etag": f'"{self.id},1"',
            "id": self.id,
            "name": self.name,
            "displayName": self.display_name,
            "description": "",
            "createdDateTime": "2024-03-01T09:00:00Z",
            "lastModifiedDateTime": "2024-03-02T09:00:00Z",
            "webUrl": f"{site.web_url}/Lists/{self.name}",
            "list": {"contentTypesEnabled": False, "hidden": False, "template": self.template},
        }


@dataclass
class FakeSite:
    hostname: str
    path: str  # server-relative, e.g. /sites/sales
    display_name: str
    lists: list[FakeList] = field(default_factory=list)
    id: str = ""

    def __post_init__(self) -> None:
        self.id = self.id or f"{self.hostname},{uuid.uuid4()},{uuid.uuid4()}"

    @property
    def web_url(self) -> str:
        return f"https://{self.hostname}{self.path}"

    def resource(self) -> Json:
        return {
            "id": self.id,
            "name": self.path.rsplit("/", 1)[-1],
            "displayName": self.display_name,
            "webUrl": self.web_url,
            "createdDateTime": "2024-01-01T00:00:00Z",
            "siteCollection": {"hostname": self.hostname},
        }


class GraphFake:
    """The fake; use as a context manager. ``base_url`` ends with ``/v1.0``."""

    def __init__(self, sites: list[FakeSite], signing_keys: Json) -> None:
        self.sites = sites
        self._keys = {k["kid"]: jwt.PyJWK.from_dict(k) for k in signing_keys["keys"]}
        self._lock = threading.Lock()
        self._ids = itertools.count(1)
        self._throttled: list[tuple[int, int]] = []  # (status, Retry-After seconds) of the next answers
        self.requests: list[tuple[str, str, dict[str, str]]] = []
        self._directory = tempfile.TemporaryDirectory(prefix="graph-fake-")
        self.ca_path, cert, key = certificate_authority(Path(self._directory.name), "Graph fake")
        context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        context.load_cert_chain(cert, key)
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), _handler(self))
        self._server.socket = context.wrap_socket(self._server.socket, server_side=True)
        self.origin = f"https://127.0.0.1:{self._server.server_address[1]}"
        self.base_url = self.origin + "/v1.0"
        self._thread = threading.Thread(target=self._server.serve_forever, name="graph-fake", daemon=True)

    def __enter__(self) -> GraphFake:
        self._thread.start()
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self._server.shutdown()
        self._server.server_close()
        self._directory.cleanup()

    # --- steering -----------------------------------------------------------------------------

    def throttle(self, times: int, retry_after: int = 3, status: int = 429) -> None:
        """Answer the next ``times`` requests ``status`` (429, or 503 as Graph does under load) with
        ``Retry-After: retry_after``; ``times=0`` ends a storm."""
        with self._lock:
            self._throttled = [(status, retry_after)] * times

    def add_item(self, site: FakeSite, fake_list: FakeList, fields: Json, folder: str = "") -> Json:
        with self._lock:
            return self._insert(site, fake_list, dict(fields), folder)

    def clear(self, fake_list: FakeList) -> None:
        with self._lock:
            fake_list.items.clear()

    # --- handling -----------------------------------------------------------------------------

    def _insert(self, site: FakeSite, fake_list: FakeList, fields: Json, folder: str = "") -> Json:
        item_id = str(next(self._ids))
        now = datetime.now(UTC).isoformat(timespec="seconds").replace("+00:00", "Z")
        tag = str(uuid.uuid4())
        stored = {
            "id": item_id,
            "tag": tag,
            "version": 1,
            "created": now,
            "modified": now,
            "fields": {
                "id": item_id,
                "ContentType": "Item",
                "Created": now,
                "Modified": now,
                "FileDirRef": folder or f"{site.path}/Lists/{fake_list.name}",
                **fields,
            },
        }
        fake_list.items[item_id] = stored
        return self._item(site, fake_list, stored, None)

    @staticmethod
    def _etag(stored: Json) -> str:
        return f'"{stored["tag"]},{stored["version"]}"'

    def _item(self, site: FakeSite, fake_list: FakeList, stored: Json, select: list[str] | None) -> Json:
        fields = {"@odata.etag": self._etag(stored)}
        fields.update(
            (k, v) for k, v in stored["fields"].items() if select is None or k in select or k == "id"
        )
        return {
            "@odata.etag": self._etag(stored),
            "id": stored["id"],
            "eTag": self._etag(stored),
            "createdDateTime": stored["created"],
            "lastModifiedDateTime": stored["modified"],
            "webUrl": f"{site.web_url}/Lists/{fake_list.name}/DispForm.aspx?ID={stored['id']}",
            "contentType": {"id": "0x0100", "name": "Item"},
            "fields": fields,
        }

    def authorize(self, headers: Mapping[str, str]) -> None:
        token = headers.get("authorization", "").removeprefix("Bearer ")
        try:
            kid = jwt.get_unverified_header(token)["kid"]
            jwt.decode(token, self._keys[kid].key, algorithms=["RS256"], audience=self.origin)
        except (jwt.PyJWTError, KeyError) as error:
            raise _Refusal(
                401, "InvalidAuthenticationToken", f"Access token validation failure. {error}"
            ) from None

    def handle(
        self, method: str, url: str, headers: Mapping[str, str], body: Json
    ) -> tuple[int, Json, dict[str, str]]:
        with self._lock:
            self.requests.append((method, url, dict(headers)))
            if self._throttled:
                status, retry_after = self._throttled.pop(0)
                code, message = _THROTTLED[status]
                raise _Refusal(status, code, message, {"Retry-After": str(retry_after)})
            self.authorize(headers)
            parts = urlsplit(url)
            path = parts.path.removeprefix("/v1.0")
            query = {k: v[0] for k, v in parse_qs(parts.query, keep_blank_values=True).items()}
            return self._route(method, path, query, headers, body)

    def _site(self, reference: str) -> FakeSite:
        reference = unquote(reference)
        for site in self.sites:
            if reference == site.id:
                return site
            host, colon, path = reference.partition(":")
            if colon and host == site.hostname and path.rstrip("/") == site.path:
                return site
        raise _Refusal(404, "itemNotFound", "Requested site could not be found")

    def _list(self, site: FakeSite, reference: str) -> FakeList:
        reference = unquote(reference)
        for fake_list in site.lists:
            if reference in (fake_list.id, fake_list.display_name):
                return fake_list
        raise _Refusal(404, "itemNotFound", "The requested resource does not exist.")

    def _route(
        self, method: str, path: str, query: dict[str, str], headers: Mapping[str, str], body: Json
    ) -> tuple[int, Json, dict[str, str]]:
        if path == "/sites" and method == "GET":
            words = query.get("search", "").lower()
            found = [s.resource() for s in self.sites if words in s.display_name.lower() or words in s.path]
            return 200, {"value": found}, {}
        if not path.startswith("/sites/"):
            raise _Refusal(400, "BadRequest", f"Resource not found for the segment '{path}'.")
        tail = path.removeprefix("/sites/")
        if ":" in tail.split("/", 1)[0]:
            # /sites/{hostname}:/{server-relative path}[:/more]
            host, _, after = tail.partition(":")
            server_path, _, rest = after.partition(":")
            site = self._site(f"{host}:{server_path}")
        else:
            reference, slash, rest = tail.partition("/")
            site = self._site(reference)
            rest = slash + rest
        rest = rest.rstrip("/")
        if rest == "" and method == "GET":
            return 200, site.resource(), {}
        if rest == "/lists" and method == "GET":
            lists = []
            for fake_list in site.lists:
                resource = fake_list.resource(site)
                if query.get("$expand") == "columns":
                    resource["columns"] = copy.deepcopy(fake_list.columns)
                lists.append(resource)
            return 200, {"value": lists}, {}
        match = re.fullmatch(r"/lists/([^/]+)(/.*)?", rest)
        if not match:
            raise _Refusal(400, "BadRequest", f"Resource not found for the segment '{rest}'.")
        fake_list = self._list(site, match.group(1))
        rest = match.group(2) or ""
        if rest == "" and method == "GET":
            return 200, fake_list.resource(site), {}
        if rest == "/columns" and method == "GET":
            return 200, {"value": copy.deepcopy(fake_list.columns)}, {}
        if rest == "/items" and method == "GET":
            return self._items(site, fake_list, query, headers)
        if rest == "/items" and method == "POST":
            fields = (body or {}).get("fields")
            if not isinstance(fields, dict):
                raise _Refusal(400, "invalidRequest", "Invalid request: the item needs fields")
            self._check_writable(fake_list, fields)
            return 201, self._insert(site, fake_list, fields), {}
        match = re.fullmatch(r"/items/(\w+)(/fields)?", rest)
        if not match:
            raise _Refusal(400, "BadRequest", f"Resource not found for the segment '{rest}'.")
        stored = fake_list.items.get(match.group(1))
        if stored is None:
            raise _Refusal(404, "itemNotFound", "The requested resource does not exist.")
        if method == "GET" and not match.group(2):
            return 200, self._item(site, fake_list, stored, _selected(query)), {}
        if method in ("PATCH", "DELETE"):
            wanted = headers.get("if-match")
            if wanted and wanted != "*" and wanted != self._etag(stored):
                raise _Refusal(412, "resourceModified", "The resource has been modified.")
        if method == "PATCH" and match.group(2):
            self._check_writable(fake_list, body or {})
            stored["fields"].update(body or {})
            stored["version"] += 1
            stored["modified"] = stored["fields"]["Modified"] = (
                datetime.now(UTC).isoformat(timespec="seconds").replace("+00:00", "Z")
            )
            return 200, {"@odata.etag": self._etag(stored), **stored["fields"]}, {}
        if method == "DELETE" and not match.group(2):
            del fake_list.items[stored["id"]]
            return 204, None, {}
        raise _Refusal(405, "methodNotAllowed", "The method is not allowed.")

    @staticmethod
    def _check_writable(fake_list: FakeList, fields: Mapping[str, Any]) -> None:
        columns = {c["name"]: c for c in fake_list.columns}
        for name in fields:
            if name not in columns:
                raise _Refusal(400, "invalidRequest", f"Field '{name}' is not recognized")
            if columns[name]["readOnly"]:
                raise _Refusal(400, "invalidRequest", f"Field '{name}' is read-only")

    def _items(
        self, site: FakeSite, fake_list: FakeList, query: dict[str, str], headers: Mapping[str, str]
    ) -> tuple[int, Json, dict[str, str]]:
        if "$skip" in query:
            raise _Refusal(
                400,
                "invalidRequest",
                "$skip is not supported on this API. Only URLs returned by the API can be used to page.",
            )
        if "$count" in query:
            raise _Refusal(400, "invalidRequest", "$count is not supported on this API.")
        columns = {c["name"]: c for c in fake_list.columns}
        honor = HONOR_NON_INDEXED in headers.get("prefer", "")
        rows = list(fake_list.items.values())
        referenced: list[str] = []
        for condition in filter(None, query.get("$filter", "").split(" and ")):
            name, test = _condition(condition.strip())
            referenced.append(name)
            rows = [r for r in rows if test(r["fields"].get(name))]
        order = query.get("$orderby", "")
        for clause in reversed([c.strip() for c in order.split(",") if c.strip()]):
            target, _, direction = clause.partition(" ")
            name = target.removeprefix("fields/")
            referenced.append(name)
            rows.sort(
                key=lambda r, n=name: (r["fields"].get(n) is None, r["fields"].get(n) or ""),
                reverse=direction == "desc",
            )
        for name in referenced:
            if name not in columns and name not in ("id", "FileDirRef", "Created", "Modified"):
                raise _Refusal(400, "invalidRequest", f"Field '{name}' is not recognized")
            indexed = name in ("id", "FileDirRef") or columns.get(name, {}).get("indexed", False)
            if not indexed and not honor:
                raise _Refusal(
                    400,
                    "invalidRequest",
                    f"Field '{name}' cannot be referenced in filter or orderby as it is not indexed. Provide "
                    f"the 'Prefer: {HONOR_NON_INDEXED}' header to allow this, but be warned that such "
                    "queries may fail on large lists.",
                )
        top = int(query.get("$top") or 200)
        start = int(query.get("$skiptoken", "0").removeprefix("Paged=TRUE&p_ID="))
        page = rows[start : start + top]
        select = _selected(query)
        answer: Json = {
            "@odata.context": f"{self.base_url}/$metadata#sites('{site.id}')/lists('{fake_list.id}')/items",
            "value": [self._item(site, fake_list, r, select) for r in page],
        }
        if start + top < len(rows):
            kept = {k: v for k, v in query.items() if k != "$skiptoken"}
            kept["$skiptoken"] = f"Paged=TRUE&p_ID={start + top}"
            link = "&".join(f"{k}={quote(v, safe=_LINK_SAFE)}" for k, v in kept.items())
            answer["@odata.nextLink"] = f"{self.base_url}/sites/{site.id}/lists/{fake_list.id}/items?{link}"
        return 200, answer, {}


def _literal(text: str) -> Any:
    text = text.strip()
    if text.startswith("'") and text.endswith("'"):
        return text[1:-1].replace("''", "'")
    if text in ("true", "false"):
        return text == "true"
    if text == "null":
        return None
    try:
        return float(text) if "." in text else int(text)
    except ValueError:
        raise _Refusal(400, "invalidRequest", f"Invalid filter clause: '{text}'") from None


def _condition(text: str) -> tuple[str, Any]:
    starts = _STARTS_WITH.fullmatch(text)
    if starts:
        prefix = starts.group(2).replace("''", "'").lower()
        return starts.group(1), lambda v: isinstance(v, str) and v.lower().startswith(prefix)
    comparison = _COMPARISON.fullmatch(text)
    if not comparison:
        raise _Refusal(400, "invalidRequest", f"Invalid filter clause: '{text}'")
    name, operator, raw = comparison.groups()
    value = _literal(raw)
    if isinstance(value, str):
        value = value.lower()  # SharePoint compares text without regard to case

    def test(field_value: Any) -> bool:
        current = field_value.lower() if isinstance(field_value, str) else field_value
        if operator == "eq":
            return bool(current == value)
        if operator == "ne":
            return bool(current != value)
        if current is None or value is None:
            return False
        return bool(
            {"lt": current < value, "le": current <= value, "gt": current > value, "ge": current >= value}[
                operator
            ]
        )

    return name, test


def _selected(query: Mapping[str, str]) -> list[str] | None:
    expand = _SELECT.fullmatch(query.get("expand", query.get("$expand", "fields")))
    if not expand or not expand.group(1):
        return None
    return expand.group(1).split(",")


def _handler(fake: GraphFake) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def _serve(self, method: str) -> None:
            length = int(self.headers.get("content-length") or 0)
            raw = self.rfile.read(length) if length else b""
            headers = {k.lower(): v for k, v in self.headers.items()}
            request_id = str(uuid.uuid4())
            try:
                try:
                    body = json.loads(raw) if raw else None
                except ValueError:
                    raise _Refusal(400, "BadRequest", "Unable to read JSON request payload.") from None
                status, answer, extra = fake.handle(method, self.path, headers, body)
            except _Refusal as refusal:
                status, extra = refusal.status, refusal.headers
                answer = {
                    "error": {
                        "code": refusal.code,
                        "message": refusal.message,
                        "innerError": {
                            "date": datetime.now(UTC).isoformat(timespec="seconds").replace("+00:00", ""),
                            "request-id": request_id,
                            "client-request-id": request_id,
                        },
                    }
                }
            data = b"" if answer is None else json.dumps(answer).encode()
            self.send_response(status)
            self.send_header("request-id", request_id)
            for name, value in extra.items():
                self.send_header(name, value)
            if data:
                self.send_header("Content-Type", "application/json;odata.metadata=minimal")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def do_GET(self) -> None:
            self._serve("GET")

        def do_POST(self) -> None:
            self._serve("POST")

        def do_PATCH(self) -> None:
            self._serve("PATCH")

        def do_DELETE(self) -> None:
            self._serve("DELETE")

        def log_message(self, *args: object) -> None:
            pass

    return Handler
