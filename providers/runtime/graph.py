"""Microsoft Graph client for SharePoint list items: what generated SharePoint drivers call.

:class:`Client` and :class:`AsyncClient` are the shells of :mod:`.client` around this module's
core, which holds all of Graph's protocol logic for list items (filters, codecs, paging) as flows.

Decisions a caller may notice:

- The connection: ``Connection.url`` is the site's Graph root,
  ``https://graph.microsoft.com/v1.0/sites/<site id>/`` (what the Integration Manager hands out),
  with a bearer access token. Lists are addressed by the name they had when the package was
  generated, so the same package works on another site with the same lists. Every link Graph
  returns is rebased onto the connection's origin, so the token never travels to another host.
- Records are list items: ``id`` is the item's id, every other attribute a column of its
  ``fields``; ``record.etag`` is the item's ``eTag``.
- Filters become ``$filter`` on ``fields/<column>``, values encoded by type and quoted, never
  pasted. Graph offers eq, ne, lt, le, gt, ge and startswith; SharePoint compares text without
  regard to case, so the ``*_IGNORE_CASE`` twins give the same query; ends-with and contains
  raise ValueError. Queries that filter or order send
  ``Prefer: HonorNonIndexedQueriesWarningMayFailRandomly``, without which Graph refuses columns
  that are not indexed. The ``FileDirRef`` attribute is the folder filter: EQUAL for the items of
  one folder, STARTS_WITH for a folder and its subfolders.
- Paging: Graph pages by ``@odata.nextLink`` only (no ``$skip``, no count): ``Page.next_link`` is
  that link, ``total_count`` is None, ``skip`` must be a multiple of ``top`` (whole pages are
  read and dropped), and ``count`` raises InvalidRequest.
- ``create`` POSTs ``{"fields": ...}`` and returns the item as stored; ``update`` PATCHes the
  item's fields, ``delete`` deletes it; with an ``etag`` both send ``If-Match`` and a stale one
  answers :class:`~.errors.Conflict`. Read-only columns are never sent.
- 429 answers (throttling) are :class:`~.errors.RateLimited` with Graph's ``Retry-After``.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping, Sequence
from datetime import UTC, datetime
from decimal import Decimal
from enum import Enum
from typing import Any, NamedTuple
from urllib.parse import quote

import httpx

from . import client
from .client import Flow, Key, Links, Names, Search
from .connection import BasicAuth, Connection
from .errors import (
    ConfigurationError,
    IntegrationError,
    InvalidRequest,
    RateLimited,
)
from .query import BasicFilter, FilterOperator, OrderBy, Page
from .records import FieldDescriptor, ObjectDescriptor, ServiceDescriptor

__all__ = ["HONOR_NON_INDEXED", "AsyncClient", "Client"]

HONOR_NON_INDEXED = "HonorNonIndexedQueriesWarningMayFailRandomly"
_ITEM_ID = "id"
_MAX_MESSAGE = 500

# --------------------------------------------------------------------------------------------
# Values: wire <-> Python, and filter literals
# --------------------------------------------------------------------------------------------


def _identity(value: Any) -> Any:
    return value


def _text_literal(value: Any) -> str:
    text = value.value if isinstance(value, Enum) else value
    return "'" + str(text).replace("'", "''") + "'"


def _number_literal(value: Any) -> str:
    number = float(value)
    if number - number != 0:
        raise ValueError(f"SharePoint numbers cannot be {value!r}")
    return repr(int(number)) if number.is_integer() else repr(number)


def _decimal(value: Any) -> Decimal:
    return value if isinstance(value, Decimal) else Decimal(str(value))


def _datetime(value: Any) -> datetime:
    moment = value if isinstance(value, datetime) else datetime.fromisoformat(str(value))
    return moment if moment.tzinfo is not None else moment.replace(tzinfo=UTC)


def _datetime_text(value: Any) -> str:
    return _datetime(value).astimezone(UTC).isoformat(timespec="seconds").replace("+00:00", "Z")


def _no_literal(value: Any) -> str:
    raise ValueError("SharePoint cannot filter on this kind of column")


class _TypeCodec(NamedTuple):
    decode: Callable[[Any], Any]
    encode: Callable[[Any], Any]  # Python -> JSON body value
    literal: Callable[[Any], str]  # Python -> $filter literal


_TEXT = _TypeCodec(str, str, _text_literal)
_JSON = _TypeCodec(_identity, _identity, _no_literal)
_TYPES: dict[str, _TypeCodec] = {
    "id": _TEXT,
    "text": _TEXT,
    "choice": _TEXT,
    "calculated": _TEXT,
    "folder": _TEXT,
    "number": _TypeCodec(float, float, _number_literal),
    "currency": _TypeCodec(_decimal, float, _number_literal),
    "boolean": _TypeCodec(bool, bool, lambda v: "true" if v else "false"),
    "dateTime": _TypeCodec(_datetime, _datetime_text, lambda v: _text_literal(_datetime_text(v))),
}


def _enum_value(value: Any) -> Any:
    return value.value if isinstance(value, Enum) else value


class _FieldCodec(NamedTuple):
    field: FieldDescriptor
    decode: Callable[[Any], Any]
    encode: Callable[[Any], Any]
    literal: Callable[[Any], str]


def _field_codec(field: FieldDescriptor) -> _FieldCodec:
    codec = _TYPES.get(field.wire_type, _JSON)
    decode: Callable[[Any], Any] = codec.decode
    encode: Callable[[Any], Any] = codec.encode
    literal: Callable[[Any], str] = codec.literal
    if field.enum is not None:
        lookup = {member.value: member for member in field.enum}

        def decode_choice(value: Any) -> Any:
            # a choice added after generation must not make the item unreadable
            return lookup.get(value, value)

        decode, encode = decode_choice, lambda v: str(_enum_value(v))
    if field.collection:
        element_decode, element_encode = decode, encode
        decode = lambda v: [element_decode(e) for e in v]  # noqa: E731
        encode = lambda v: [element_encode(e) for e in v]  # noqa: E731
    return _FieldCodec(field, decode, encode, literal)


class _ObjectCodec(client.ObjectCodec[_FieldCodec]):
    """Everything the client needs about one list, computed once."""

    def __init__(self, obj: ObjectDescriptor) -> None:
        super().__init__(obj, (_field_codec(f) for f in obj.fields))
        columns = [c.field.wire for c in self.fields if c.field.wire != _ITEM_ID]
        self.expand = f"fields(select={','.join(columns)})" if columns else "fields"

    def decode(self, item: Mapping[str, Any]) -> Any:
        fields = {**(item.get("fields") or {}), _ITEM_ID: item.get("id")}
        values: dict[str, Any] = {}
        nulls: list[str] = []
        for codec in self.fields:
            raw = fields.get(codec.field.wire)
            if raw is None:
                values[codec.field.attr] = None
                nulls.append(codec.field.attr)
            else:
                values[codec.field.attr] = codec.decode(raw)
        record = self.obj.model(**values)
        record._ib_set_meta(item.get("eTag") or item.get("@odata.etag"), frozenset(nulls))
        return record

# --------------------------------------------------------------------------------------------
# Errors
# --------------------------------------------------------------------------------------------


def error_from_response(response: httpx.Response, what: str) -> IntegrationError:
    """The :mod:`errors` exception for a failed Graph response (``{"error": {"code", "message"}}``)."""
    status = response.status_code
    code: str | None = None
    message = ""
    request_id = response.headers.get("request-id")
    try:
        error = json.loads(response.content).get("error") or {}
        code = str(error.get("code") or "") or None
        message = " ".join(str(error.get("message") or "").split())[:_MAX_MESSAGE]
        request_id = str((error.get("innerError") or {}).get("request-id") or request_id or "") or None
    except (ValueError, AttributeError):
        message = response.text.strip()[:_MAX_MESSAGE]
    text = f"{what}: {message or response.reason_phrase or f'HTTP {status}'}"
    # Graph answers 503 with Retry-After when it throttles, too
    throttled = status == 503 and response.headers.get("retry-after")
    return client.status_error(response, text, code, request_id, RateLimited if throttled else None)


# --------------------------------------------------------------------------------------------
# The shared protocol: flows that yield calls and receive responses
# --------------------------------------------------------------------------------------------


_COMPARISONS = {
    FilterOperator.EQUAL: "eq",
    FilterOperator.EQUAL_IGNORE_CASE: "eq",
    FilterOperator.NOT_EQUAL: "ne",
    FilterOperator.GREATER: "gt",
    FilterOperator.GREATER_OR_EQUAL: "ge",
    FilterOperator.LESS: "lt",
    FilterOperator.LESS_OR_EQUAL: "le",
}
class _Core(client.Core[_ObjectCodec]):
    """Graph's protocol logic, run by :class:`Client` and :class:`AsyncClient`."""

    query_safe = "$,()'*:@/="

    def __init__(self, connection: Connection, service: ServiceDescriptor) -> None:
        if isinstance(connection.auth, BasicAuth):
            raise ConfigurationError(
                f"{service.integration}: Microsoft Graph takes an access token (BearerAuth), "
                "not a user and password"
            )
        root = connection.url if connection.url.endswith("/") else connection.url + "/"
        super().__init__(
            connection, root, {"Accept": "application/json"}, _ObjectCodec, error_from_response, "Graph"
        )

    def items_url(self, obj: ObjectDescriptor, item_id: str | None = None) -> str:
        url = f"{self.root}lists/{quote(obj.name, safe='')}/items"
        return url if item_id is None else f"{url}/{quote(item_id, safe='')}"

    # --- queries -----------------------------------------------------------------------------

    def condition(self, codec: _ObjectCodec, condition: BasicFilter) -> str:
        field = codec.field(condition.attribute)
        subject = f"fields/{field.field.wire}"
        operator = condition.operator
        comparison = _COMPARISONS.get(operator)
        if comparison is not None:
            literal = "null" if condition.value is None else field.literal(_enum_value(condition.value))
            return f"{subject} {comparison} {literal}"
        if operator in (FilterOperator.STARTS_WITH, FilterOperator.STARTS_WITH_IGNORE_CASE):
            return f"startswith({subject},{_text_literal(_enum_value(condition.value))})"
        raise ValueError(
            f"{codec.obj.name}: SharePoint lists filter with equal, not equal, greater/less (or equal) and "
            f"starts with only, not {operator.name.lower()}"
        )

    def query(
        self,
        codec: _ObjectCodec,
        filters: Sequence[BasicFilter],
        advanced_filter: str | None,
        order_by: Sequence[OrderBy] = (),
        advanced_order_by: str | None = None,
    ) -> dict[str, str]:
        params: dict[str, str] = {"expand": codec.expand}
        conditions = [self.condition(codec, f) for f in filters]
        if advanced_filter and advanced_filter.strip():
            conditions.append(f"({advanced_filter})" if conditions else advanced_filter)
        if conditions:
            params["$filter"] = " and ".join(conditions)
        ordering = [f"fields/{codec.field(o.attribute).field.wire} {o.direction.value}" for o in order_by]
        if advanced_order_by and advanced_order_by.strip():
            ordering.append(advanced_order_by)
        if ordering:
            params["$orderby"] = ",".join(ordering)
        return params

    @staticmethod
    def read_headers(params: Mapping[str, str]) -> dict[str, str]:
        # Graph refuses to filter or order on columns that are not indexed unless told to try
        return {"Prefer": HONOR_NON_INDEXED} if "$filter" in params or "$orderby" in params else {}

    # --- flows -------------------------------------------------------------------------------

    def search(self, search: Search) -> Flow[Page[Any]]:
        obj, filters, advanced_filter, order_by, advanced_order_by, skip, top, formatted = search
        self.plain(formatted)
        codec = self.codec(obj)
        params = {
            **self.query(codec, filters, advanced_filter, order_by, advanced_order_by),
            "$top": str(top),
        }
        return self._page(codec, self.items_url(obj), params, skip, top, drop=skip)

    def count(self, search: Search) -> Flow[int]:
        raise InvalidRequest(
            f"count {search.obj.name}: SharePoint lists cannot count items through Microsoft Graph"
        )

    def next_page(self, obj: ObjectDescriptor, page: Page[Any]) -> Flow[Page[Any]]:
        if page.next_link is None:
            raise ValueError(f"{obj.name}: this is the last page, there is no next one")
        link = self.rebase(page.next_link)
        params = {k: v for k, v in httpx.URL(link).params.items() if k not in self.params}
        skip = page.skip + len(page.items)
        return self._page(self.codec(obj), link.split("?", 1)[0], params, skip, page.top, drop=0)

    def _page(
        self, codec: _ObjectCodec, url: str, params: dict[str, str], skip: int, top: int, drop: int
    ) -> Flow[Page[Any]]:
        if skip < 0 or top <= 0:
            raise ValueError("skip must not be negative and top must be positive")
        if drop % top:
            raise ValueError(
                f"{codec.obj.name}: SharePoint pages by next links only: skip must be a multiple of top "
                f"({skip} is not a multiple of {top}); follow next_page instead"
            )
        what = f"search {codec.obj.name}"
        headers = self.read_headers(params)
        call = self.call("GET", url, what, params, headers)
        while True:
            response = yield call
            payload = self.payload(response, what)
            with self.decoding(what):
                rows = list(payload["value"])
                link = payload.get("@odata.nextLink")
                if drop <= 0:
                    items = [codec.decode(row) for row in rows]
                    return Page(items, None, self.rebase(link) if link else None, skip, top, codec.obj.name)
            drop -= len(rows)
            if not link:
                return Page([], None, None, skip, top, codec.obj.name)
            call = self.call("GET", self.rebase(link), what, None, headers)

    def get(self, obj: ObjectDescriptor, key: Mapping[str, Any], formatted: bool) -> Flow[Any]:
        self.plain(formatted)
        codec = self.codec(obj)
        return self._read(codec, codec.key_value(key), f"get {obj.name}")

    def _read(self, codec: _ObjectCodec, item_id: str, what: str) -> Flow[Any]:
        response = yield self.call("GET", self.items_url(codec.obj, item_id), what, {"expand": codec.expand})
        payload = self.payload(response, what)
        with self.decoding(what):
            return codec.decode(payload)

    def create(self, obj: ObjectDescriptor, record: Any, send: Names, links: Links) -> Flow[Any]:
        self.plain(links=links)
        codec = self.codec(obj)
        what = f"create {obj.name}"
        body = {"fields": codec.body(record, send, creating=True)}
        response = yield self.call("POST", self.items_url(obj), what, body=body)
        payload = self.payload(response, what)
        with self.decoding(what):
            return codec.decode(payload)

    def update(
        self, obj: ObjectDescriptor, key: Key, record: Any, send: Names, etag: str | None, links: Links
    ) -> Flow[None]:
        self.plain(links=links)
        codec = self.codec(obj)
        what = f"update {obj.name}"
        url = self.items_url(obj, codec.key_value(key)) + "/fields"
        body = codec.body(record, send, creating=False)
        response = yield self.call("PATCH", url, what, None, {"If-Match": etag} if etag else None, body)
        self.check(response, what)

    def delete(self, obj: ObjectDescriptor, key: Mapping[str, Any], etag: str | None) -> Flow[None]:
        codec = self.codec(obj)
        what = f"delete {obj.name}"
        headers = {"If-Match": etag} if etag else None
        response = yield self.call("DELETE", self.items_url(obj, codec.key_value(key)), what, None, headers)
        self.check(response, what)


# --------------------------------------------------------------------------------------------
# The clients: the shared shells around the core
# --------------------------------------------------------------------------------------------


class Client(client.ClientBase, core=_Core):
    """Synchronous Graph client for one site's lists; use as a context manager or call close()."""


class AsyncClient(client.AsyncClientBase, core=_Core):
    """Asynchronous twin of :class:`Client`; use with ``async with`` or call aclose()."""
