"""Salesforce REST client: what generated Salesforce drivers call.

:class:`Client` and :class:`AsyncClient` are the shells of :mod:`.client` around this module's
core, which holds all of the REST API's protocol logic (SOQL, codecs, paging, errors) as flows.

Decisions a caller may notice:

- The connection: ``Connection.url`` is either the REST root with its version
  (``https://org.my.salesforce.com/services/data/v62.0/``, what the Integration Manager hands out)
  or the bare instance URL, which gets ``/services/data/v<api_version>/`` with the version the
  package was generated for. Only bearer access tokens are accepted: the REST API knows no
  user/password. Every link Salesforce returns is rebased onto the connection's origin, so the
  token never travels to another host.
- Queries are SOQL built from ``BasicFilter`` s. Values are always encoded by type: text is quoted
  with every quote, backslash and control character escaped, and ``%``/``_`` escaped as well for
  starts/ends with and contains (which become ``LIKE``); numbers, dates and booleans are formatted
  from their Python values, never pasted. SOQL compares text case-insensitively, so the
  ``*_IGNORE_CASE`` operators give the same query as their plain twins. An EQUAL/NOT_EQUAL filter
  with a list, tuple or set value becomes ``IN``/``NOT IN``. ``advanced_filter`` is a WHERE
  clause the app owns: it is put in parentheses and AND-ed with the basic filters.
- Paging: pages below 200 records (Salesforce's smallest batch) query with ``LIMIT``/``OFFSET``;
  their ``next_link`` is the same query with the next ``OFFSET``, which Salesforce allows up to
  2,000 skipped records. Pages of 200 or more ask for that batch size and follow
  ``nextRecordsUrl`` while whole batches fit into the page; their ``next_link`` is Salesforce's
  cursor, which goes on as far as the data does (so iterating uses pages of 500). Such pages
  carry Salesforce's ``totalSize`` as ``total_count`` when the query skipped nothing; ``count``
  asks ``SELECT COUNT()``.
- Relationships: a lookup the descriptor expands (``expand`` of the integration's spec, e.g.
  ``"expand": ["Account"]`` on Contact, as OData's ``$expand``) is read with the record through
  SOQL relationship fields (``Account.Id, Account.Name``): as the package's model of the target
  when the package holds it (its own lookups are not followed further), else as a dict of its
  ``Id``; None when the lookup is empty or its record gone. ``get`` and the read-back of
  ``create`` read the record's own resource (for the ETag) and the related ones by a query on its
  Id. Lookups are still set through their id attributes (``account_id``), which stay ``str``.
- ``create`` POSTs the record and reads it back once, so it returns what Salesforce stored (Id,
  defaults, auto numbers). ``update`` PATCHes, ``delete`` DELETEs; with an ``etag`` they send
  ``If-Match`` and a stale one answers :class:`~.errors.Conflict`.
- Attributes Salesforce does not let you write (per field, from describe) are never sent;
  ``attributes_to_send`` (Python or wire names) limits a write further and sends ``None`` as null.
  base64 fields are written, but not read: Salesforce answers queries with a link to the blob
  instead of its content.
- Errors (``[{"errorCode": ..., "message": ...}]``) map to :mod:`.errors`: REQUEST_LIMIT_EXCEEDED
  is :class:`~.errors.RateLimited`, INVALID_SESSION_ID :class:`~.errors.Unauthorized` (the token
  expired or was revoked: the caller gets a new one and calls again), NOT_FOUND and
  ENTITY_IS_DELETED :class:`~.errors.NotFound`, INVALID_TYPE and INSUFFICIENT_ACCESS*
  :class:`~.errors.Forbidden`, DUPLICATE_VALUE :class:`~.errors.Conflict`; an INVALID_FIELD that
  names a field says the field no longer exists for this user, as it would after being removed
  since the package was generated.
"""

from __future__ import annotations

import base64
import json
import re
from collections.abc import Callable, Mapping, Sequence
from datetime import UTC, date, datetime, time
from decimal import Decimal
from enum import Enum
from functools import partial
from typing import Any, NamedTuple
from urllib.parse import quote

import httpx

from . import client
from .client import Flow, Key, Links, Names, Search
from .connection import BasicAuth, Connection
from .errors import (
    ConfigurationError,
    Conflict,
    Forbidden,
    IntegrationError,
    NotFound,
    RateLimited,
    ServiceUnavailable,
    Unauthorized,
    error_for_status,
)
from .query import BasicFilter, FilterOperator, OrderBy, Page
from .records import FieldDescriptor, NavigationDescriptor, ObjectDescriptor, ServiceDescriptor

__all__ = ["DEFAULT_API_VERSION", "AsyncClient", "Client", "soql_like", "soql_string"]

DEFAULT_API_VERSION = "62.0"

# --------------------------------------------------------------------------------------------
# SOQL literals
# --------------------------------------------------------------------------------------------

_STRING_ESCAPES = str.maketrans(
    {"\\": "\\\\", "'": "\\'", '"': '\\"', "\n": "\\n", "\r": "\\r", "\t": "\\t", "\b": "\\b", "\f": "\\f"}
)
_LIKE_ESCAPES = str.maketrans(
    {
        "\\": "\\\\",
        "'": "\\'",
        '"': '\\"',
        "\n": "\\n",
        "\r": "\\r",
        "\t": "\\t",
        "\b": "\\b",
        "\f": "\\f",
        "%": "\\%",
        "_": "\\_",
    }
)
_NAME = re.compile(r"[A-Za-z][A-Za-z0-9_]*\Z")


def soql_string(value: Any) -> str:
    """``value`` as a quoted SOQL string literal, every special character escaped.

    For apps writing an ``advanced_filter``: ``f"Name = {soql_string(name)}"``.
    """
    text = value.value if isinstance(value, Enum) else value
    return "'" + str(text).translate(_STRING_ESCAPES) + "'"


def soql_like(value: Any, prefix: str = "", suffix: str = "") -> str:
    """A quoted LIKE pattern matching ``value`` literally, between the wildcards given."""
    text = value.value if isinstance(value, Enum) else value
    return "'" + prefix + str(text).translate(_LIKE_ESCAPES) + suffix + "'"


# --------------------------------------------------------------------------------------------
# Values: wire <-> Python
# --------------------------------------------------------------------------------------------


def _identity(value: Any) -> Any:
    return value


def _boolean_literal(value: Any) -> str:
    return "true" if bool(value) else "false"


def _integer_literal(value: Any) -> str:
    return str(int(value))


def _float(value: Any) -> float:
    number = float(value)
    if number - number != 0:
        raise ValueError(f"Salesforce numbers cannot be {value!r}")
    return number


def _float_literal(value: Any) -> str:
    return repr(_float(value))


def _decimal(value: Any) -> Decimal:
    # str() first: Decimal(0.1) would carry the binary float's 55 digits
    return value if isinstance(value, Decimal) else Decimal(str(value))


def _decimal_json(value: Any) -> float:
    # Salesforce keeps currency and percent as doubles (soapType xsd:double)
    return _float(_decimal(value))


def _decimal_literal(value: Any) -> str:
    return format(_decimal(value), "f")


def _date(value: Any) -> date:
    if isinstance(value, datetime):
        return value.date()
    return value if isinstance(value, date) else date.fromisoformat(str(value))


def _date_text(value: Any) -> str:
    return _date(value).isoformat()


def _datetime(value: Any) -> datetime:
    moment = value if isinstance(value, datetime) else datetime.fromisoformat(str(value))
    return moment if moment.tzinfo is not None else moment.replace(tzinfo=UTC)


def _datetime_json(value: Any) -> str:
    return _datetime(value).astimezone(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def _datetime_literal(value: Any) -> str:
    return _datetime(value).astimezone(UTC).isoformat(timespec="seconds").replace("+00:00", "Z")


def _time(value: Any) -> time:
    if isinstance(value, time):
        return value.replace(tzinfo=None)
    # Salesforce writes times of day as 13:30:00.000Z, with a nominal Z
    return time.fromisoformat(str(value).removesuffix("Z"))


def _time_text(value: Any) -> str:
    moment = _time(value)
    return f"{moment.hour:02d}:{moment.minute:02d}:{moment.second:02d}.{moment.microsecond // 1000:03d}Z"


def _binary(value: Any) -> bytes:
    if isinstance(value, bytes | bytearray | memoryview):
        return bytes(value)
    return base64.b64decode(str(value))


def _base64(value: Any) -> str:
    return base64.b64encode(_binary(value)).decode("ascii")


def _no_literal(value: Any) -> str:
    raise ValueError("Salesforce cannot filter on this kind of field")


class _TypeCodec(NamedTuple):
    decode: Callable[[Any], Any]
    encode: Callable[[Any], Any]  # Python -> JSON body value
    literal: Callable[[Any], str]  # Python -> SOQL literal
    selectable: bool = True


_TEXT = _TypeCodec(str, str, soql_string)
# anything Salesforce adds later passes through as JSON, as the generator types it
_JSON = _TypeCodec(_identity, _identity, _no_literal)
# Salesforce field types whose values are text (the provider reads them as strings too)
TEXT_TYPES = frozenset(
    {
        "id",
        "reference",
        "string",
        "textarea",
        "email",
        "phone",
        "url",
        "combobox",
        "encryptedstring",
        "picklist",
        "multipicklist",
    }
)
_TYPES: dict[str, _TypeCodec] = {
    **dict.fromkeys(TEXT_TYPES, _TEXT),
    "boolean": _TypeCodec(bool, bool, _boolean_literal),
    "int": _TypeCodec(int, int, _integer_literal),
    "long": _TypeCodec(int, int, _integer_literal),
    "double": _TypeCodec(float, _float, _float_literal),
    "currency": _TypeCodec(_decimal, _decimal_json, _decimal_literal),
    "percent": _TypeCodec(_decimal, _decimal_json, _decimal_literal),
    "date": _TypeCodec(date.fromisoformat, _date_text, _date_text),
    "datetime": _TypeCodec(_datetime, _datetime_json, _datetime_literal),
    "time": _TypeCodec(_time, _time_text, _time_text),
    "base64": _TypeCodec(_binary, _base64, _no_literal, selectable=False),
}


def _enum_value(value: Any) -> Any:
    return value.value if isinstance(value, Enum) else value


def _enum_decoder(enum: type[Enum]) -> Callable[[Any], Any]:
    lookup: dict[Any, Enum] = {member.value: member for member in enum}

    def decode(value: Any) -> Any:
        # a picklist value added after generation must not make the record unreadable
        return lookup.get(value, value)

    return decode


class _FieldCodec(NamedTuple):
    field: FieldDescriptor
    decode: Callable[[Any], Any]
    encode: Callable[[Any], Any]
    literal: Callable[[Any], str]
    selectable: bool


def _enum_text(value: Any) -> str:
    return str(_enum_value(value))


def _enum_literal(value: Any) -> str:
    return soql_string(_enum_value(value))


def _multiple(codec: _TypeCodec) -> _TypeCodec:
    """Multi-select picklists travel as one string, the values separated by semicolons."""
    element_decode, element_encode = codec.decode, codec.encode

    def decode(value: Any) -> list[Any]:
        return [element_decode(v) for v in str(value).split(";") if v]

    def encode(value: Any) -> str:
        if isinstance(value, str | Enum):
            return str(element_encode(value))
        return ";".join(str(element_encode(v)) for v in value)

    return _TypeCodec(decode, encode, lambda value: soql_string(encode(value)))


def _field_codec(field: FieldDescriptor) -> _FieldCodec:
    codec = _TYPES.get(field.wire_type, _JSON)
    if field.enum is not None:
        codec = _TypeCodec(_enum_decoder(field.enum), _enum_text, _enum_literal, codec.selectable)
    if field.collection:
        codec = _multiple(codec)
    return _FieldCodec(field, *codec)


def _checked_name(name: str, what: str) -> str:
    # names go into SOQL and URLs unquoted: only what Salesforce itself allows
    if not _NAME.match(name):
        raise ConfigurationError(f"{what} {name!r} is not a Salesforce API name")
    return name


class _Related(NamedTuple):
    """A lookup the descriptor expands: read through its relationship (``Account.Name``)."""

    navigation: NavigationDescriptor
    codec: _ObjectCodec | None  # None: the target is not in the package; its Id comes as a dict

    @property
    def fields(self) -> list[str]:
        own = [c.field.wire for c in self.codec.readable] if self.codec is not None else ["Id"]
        return [f"{self.navigation.wire}.{name}" for name in own]

    def decode(self, row: Mapping[str, Any]) -> Any:
        raw = row.get(self.navigation.wire)
        if raw is None:
            return None  # the lookup is empty, or its record is not visible to this user
        if self.codec is None:
            return {k: v for k, v in raw.items() if k != "attributes"}
        return self.codec.decode(raw, None)


class _ObjectCodec(client.ObjectCodec[_FieldCodec]):
    """Everything the client needs about one sObject, computed once.

    ``objects`` (the package's descriptors) resolves the targets of expanded lookups; their own
    expansions are not followed (one level, as one SOQL query reads it)."""

    def __init__(self, obj: ObjectDescriptor, objects: Mapping[str, ObjectDescriptor] | None = None) -> None:
        super().__init__(obj, (_field_codec(f) for f in obj.fields))
        self.name = _checked_name(obj.name, "object")
        for codec in self.fields:
            _checked_name(codec.field.wire, f"{obj.name}: field")
        self.readable = tuple(c for c in self.fields if c.selectable)
        self.own_fields = ", ".join(c.field.wire for c in self.readable) or "Id"
        self.related = tuple(_related(obj, n, objects or {}) for n in obj.navigations if n.wire in obj.expand)
        self.related_fields = ", ".join(name for related in self.related for name in related.fields)
        self.field_list = ", ".join(filter(None, (self.own_fields, self.related_fields)))

    def decode(self, row: Mapping[str, Any], etag: str | None) -> Any:
        values: dict[str, Any] = {}
        nulls: list[str] = []
        for codec in self.fields:
            raw = row.get(codec.field.wire) if codec.selectable else None
            attr = codec.field.attr
            if raw is None:
                values[attr] = None
                nulls.append(attr)
            else:
                values[attr] = codec.decode(raw)
        for related in self.related:
            values[related.navigation.attr] = related.decode(row)
        record = self.obj.model(**values)
        record._ib_set_meta(etag, frozenset(nulls))
        return record




def _related(
    obj: ObjectDescriptor, navigation: NavigationDescriptor, objects: Mapping[str, ObjectDescriptor]
) -> _Related:
    _checked_name(navigation.wire, f"{obj.name}: relationship")
    if navigation.many:
        raise ConfigurationError(
            f"{obj.name}: {navigation.wire} holds many records; Salesforce packages expand lookups only"
        )
    target = (
        objects.get(navigation.target)
        or next((o for o in objects.values() if o.name == navigation.target), None)
        if navigation.target
        else None
    )
    return _Related(navigation, _ObjectCodec(target) if target is not None else None)


# --------------------------------------------------------------------------------------------
# Errors
# --------------------------------------------------------------------------------------------

_ERROR_CLASSES: dict[str, type[IntegrationError]] = {
    "REQUEST_LIMIT_EXCEEDED": RateLimited,
    "INVALID_SESSION_ID": Unauthorized,
    "NOT_FOUND": NotFound,
    "ENTITY_IS_DELETED": NotFound,
    "INVALID_TYPE": Forbidden,
    "INSUFFICIENT_ACCESS": Forbidden,
    "INSUFFICIENT_ACCESS_OR_READONLY": Forbidden,
    "INSUFFICIENT_ACCESS_ON_CROSS_REFERENCE_ENTITY": Forbidden,
    "API_DISABLED_FOR_ORG": Forbidden,
    "API_CURRENTLY_DISABLED": Forbidden,
    "DUPLICATE_VALUE": Conflict,
    "DUPLICATES_DETECTED": Conflict,
    "SERVER_UNAVAILABLE": ServiceUnavailable,
}
_NO_SUCH_COLUMN = re.compile(r"No such column '(\w+)' on (?:entity|sobject of type) '?(\w+)'?")
_MAX_MESSAGE = 500
_MAX_OFFSET = 2000


def _error_details(response: httpx.Response) -> tuple[str, str | None]:
    """Salesforce's message and errorCode from ``[{"errorCode", "message"}]`` (or an OAuth error)."""
    try:
        body = json.loads(response.content)
    except ValueError:
        return response.text.strip()[:_MAX_MESSAGE], None
    first = body[0] if isinstance(body, list) and body else body
    if not isinstance(first, dict):
        return "", None
    message = first.get("message") or first.get("error_description") or ""
    code = first.get("errorCode") or first.get("error")
    return " ".join(str(message).split())[:_MAX_MESSAGE], (str(code) if code else None)


def error_from_response(response: httpx.Response, what: str) -> IntegrationError:
    """The :mod:`errors` exception for a failed Salesforce REST response."""
    status = response.status_code
    message, code = _error_details(response)
    detail = message or response.reason_phrase or f"HTTP {status}"
    cls = _ERROR_CLASSES.get(code or "") or error_for_status(status)
    missing = _NO_SUCH_COLUMN.search(message) if code == "INVALID_FIELD" else None
    if missing is not None:
        detail = (
            f"the field {missing[2]}.{missing[1]} does not exist in Salesforce for this user: it was "
            "removed or renamed since this package was generated, or field-level security hides it; "
            "regenerate the integration, or leave the attribute out"
        )
    elif code == "INVALID_SESSION_ID":
        detail = f"the Salesforce session expired or was revoked ({detail}): get a new access token"
    elif code == "INVALID_TYPE":
        detail = f"this user cannot use the object ({detail}): it was removed, or the user has no access"
    elif code == "NUMBER_OUTSIDE_VALID_RANGE":
        detail = (
            f"{detail} (Salesforce skips at most {_MAX_OFFSET:,} records with small pages: "
            "iterate, or use pages of 200 or more, which follow Salesforce's cursor)"
        )
    text = f"{what}: {detail}"
    return client.status_error(response, text, code, cls=cls)


# --------------------------------------------------------------------------------------------
# The shared protocol: flows that yield calls and receive responses
# --------------------------------------------------------------------------------------------


_COMPARISONS = {
    FilterOperator.EQUAL: "=",
    FilterOperator.EQUAL_IGNORE_CASE: "=",
    FilterOperator.NOT_EQUAL: "!=",
    FilterOperator.GREATER: ">",
    FilterOperator.GREATER_OR_EQUAL: ">=",
    FilterOperator.LESS: "<",
    FilterOperator.LESS_OR_EQUAL: "<=",
}
_WILDCARDS = {
    FilterOperator.STARTS_WITH: ("", "%"),
    FilterOperator.STARTS_WITH_IGNORE_CASE: ("", "%"),
    FilterOperator.ENDS_WITH: ("%", ""),
    FilterOperator.ENDS_WITH_IGNORE_CASE: ("%", ""),
    FilterOperator.CONTAINS: ("%", "%"),
    FilterOperator.CONTAINS_IGNORE_CASE: ("%", "%"),
}
_MIN_BATCH = 200  # Salesforce's smallest query batch
_MAX_BATCH = 2000
# what _page_soql appends, so a next_link's query can be continued
_PAGE_SUFFIX = re.compile(r" LIMIT \d+(?: OFFSET \d+)?\Z| OFFSET \d+\Z")


def _page_soql(base: str, skip: int, top: int) -> str:
    soql = base
    if top < _MIN_BATCH:
        soql += f" LIMIT {top}"
    if skip:
        soql += f" OFFSET {skip}"
    return soql


def _api_root(url: str, api_version: str) -> str:
    root = url if url.endswith("/") else url + "/"
    if "/services/data/v" in root:
        return root
    return f"{root}services/data/v{api_version}/"


class _Core(client.Core[_ObjectCodec]):
    """Salesforce's protocol logic, run by :class:`Client` and :class:`AsyncClient`."""

    def __init__(self, connection: Connection, service: ServiceDescriptor) -> None:
        if isinstance(connection.auth, BasicAuth):
            raise ConfigurationError(
                f"{service.integration}: Salesforce's REST API takes an access token (BearerAuth), "
                "not a user and password"
            )
        root = _api_root(connection.url, str(service.runtime.get("api_version") or DEFAULT_API_VERSION))
        super().__init__(
            connection,
            root,
            {"Accept": "application/json"},
            partial(_ObjectCodec, objects=service.objects),
            error_from_response,
            "Salesforce",
            # decimals as Decimal: currency and percent keep the digits Salesforce sent
            partial(json.loads, parse_float=Decimal),
        )

    # --- requests and responses --------------------------------------------------------------

    def query_url(self, soql: str) -> str:
        return f"{self.root}query?q={quote(soql, safe='')}"

    def sobject_url(self, codec: _ObjectCodec, record_id: str | None = None) -> str:
        url = f"{self.root}sobjects/{codec.name}/"
        return url + quote(record_id, safe="") if record_id is not None else url

    # --- queries -----------------------------------------------------------------------------

    def condition(self, codec: _ObjectCodec, condition: BasicFilter) -> str:
        field = codec.field(condition.attribute)
        wire, operator, value = field.field.wire, condition.operator, condition.value
        wildcards = _WILDCARDS.get(operator)
        if wildcards is not None:
            return f"{wire} LIKE {soql_like(value, *wildcards)}"
        comparison = _COMPARISONS[operator]
        if value is None:
            return f"{wire} {comparison} null"
        many = isinstance(value, list | tuple | set | frozenset) and not field.field.collection
        if many and operator in (FilterOperator.EQUAL, FilterOperator.NOT_EQUAL):
            literals = ", ".join(field.literal(v) for v in value)
            return f"{wire} {'IN' if operator is FilterOperator.EQUAL else 'NOT IN'} ({literals})"
        return f"{wire} {comparison} {field.literal(value)}"

    def where(self, codec: _ObjectCodec, filters: Sequence[BasicFilter], advanced_filter: str | None) -> str:
        conditions = [self.condition(codec, f) for f in filters]
        if advanced_filter and advanced_filter.strip():
            # SOQL refuses AND and OR side by side without parentheses
            conditions.append(f"({advanced_filter})" if conditions else advanced_filter)
        return f" WHERE {' AND '.join(conditions)}" if conditions else ""

    def soql(
        self,
        codec: _ObjectCodec,
        filters: Sequence[BasicFilter],
        advanced_filter: str | None,
        order_by: Sequence[OrderBy],
        advanced_order_by: str | None,
    ) -> str:
        ordering = [
            f"{codec.field(o.attribute).field.wire} {'DESC' if o.direction.value == 'desc' else 'ASC'}"
            for o in order_by
        ]
        if advanced_order_by and advanced_order_by.strip():
            ordering.append(advanced_order_by)
        order = f" ORDER BY {', '.join(ordering)}" if ordering else ""
        where = self.where(codec, filters, advanced_filter)
        return f"SELECT {codec.field_list} FROM {codec.name}{where}{order}"  # noqa: S608 (values are escaped)

    # --- flows -------------------------------------------------------------------------------

    def search(self, search: Search) -> Flow[Page[Any]]:
        obj, filters, advanced_filter, order_by, advanced_order_by, skip, top, formatted = search
        self.plain(formatted)
        if skip < 0 or top < 0:
            raise ValueError("skip and top must not be negative")
        codec = self.codec(obj)
        base = self.soql(codec, filters, advanced_filter, order_by, advanced_order_by)
        return self._page(codec, base, skip, top)

    def next_page(self, obj: ObjectDescriptor, page: Page[Any]) -> Flow[Page[Any]]:
        if page.next_link is None:
            raise ValueError(f"{obj.name}: this is the last page, there is no next one")
        link = self.rebase(page.next_link)
        skip = page.skip + len(page.items)
        soql = httpx.URL(link).params.get("q")
        if soql is None:  # Salesforce's cursor (nextRecordsUrl)
            return self._page(self.codec(obj), None, skip, page.top, link, page.total_count)
        return self._page(self.codec(obj), _PAGE_SUFFIX.sub("", soql), skip, page.top)

    def _page(
        self,
        codec: _ObjectCodec,
        base: str | None,
        skip: int,
        top: int,
        cursor: str | None = None,
        total: int | None = None,
    ) -> Flow[Page[Any]]:
        what = f"search {codec.obj.name}"
        if top == 0:
            return Page([], total, None, skip, top, codec.obj.name)
        small = top < _MIN_BATCH
        headers = {} if small else {"Sforce-Query-Options": f"batchSize={min(top, _MAX_BATCH)}"}
        if cursor is None:
            assert base is not None
            cursor = self.query_url(_page_soql(base, skip, top))
            counted = not small and not skip
        else:
            counted = False
        items: list[Any] = []
        batch = 0
        while True:
            response = yield self.call("GET", cursor, what, headers=headers)
            payload = self.payload(response, what)
            rows = payload.get("records") or []
            with self.decoding(what):
                items.extend([codec.decode(row, None) for row in rows])
            batch = batch or len(rows)
            if counted and payload.get("totalSize") is not None:
                total, counted = int(payload["totalSize"]), False
            following = None if payload.get("done", True) else payload.get("nextRecordsUrl")
            if not following:
                break
            cursor = self.rebase(str(following))
            # A LIMIT query holds at most one page anyway. Otherwise whole batches only: a cut
            # batch would lose the cursor's place.
            if not small and (not batch or len(items) + batch > top):
                return Page(items, total, cursor, skip, top, codec.obj.name)
        next_link = None
        if small and base is not None and len(items) == top:
            next_link = self.query_url(_page_soql(base, skip + top, top))
        return Page(items, total, next_link, skip, top, codec.obj.name)

    def count(self, search: Search) -> Flow[int]:
        codec = self.codec(search.obj)
        what = f"count {search.obj.name}"
        where = self.where(codec, search.filters, search.advanced_filter)
        soql = f"SELECT COUNT() FROM {codec.name}{where}"  # noqa: S608 (values are escaped)
        response = yield self.call("GET", self.query_url(soql), what)
        payload = self.payload(response, what)
        with self.decoding(what):
            return int(payload["totalSize"])

    def get(self, obj: ObjectDescriptor, key: Mapping[str, Any], formatted: bool) -> Flow[Any]:
        self.plain(formatted)
        codec = self.codec(obj)
        return self._read(codec, codec.key_value(key), f"get {obj.name}")

    def _read(self, codec: _ObjectCodec, record_id: str, what: str) -> Flow[Any]:
        fields = quote(codec.own_fields.replace(" ", ""), safe=",")
        url = f"{self.sobject_url(codec, record_id)}?fields={fields}"
        response = yield self.call("GET", url, what)
        payload = self.payload(response, what)
        etag = response.headers.get("etag")
        if codec.related:
            # The record's own resource answers its own fields (and the ETag); related records
            # come from a query by Id.
            soql = f"SELECT {codec.related_fields} FROM {codec.name} WHERE Id = {soql_string(record_id)}"  # noqa: S608 (escaped)
            related = yield self.call("GET", self.query_url(soql), what)
            rows = self.payload(related, what).get("records") or [{}]
            payload = {
                **payload,
                **{r.navigation.wire: rows[0].get(r.navigation.wire) for r in codec.related},
            }
        with self.decoding(what):
            return codec.decode(payload, etag)

    def create(self, obj: ObjectDescriptor, record: Any, send: Names, links: Links) -> Flow[Any]:
        self.plain(links=links)
        codec = self.codec(obj)
        what = f"create {obj.name}"
        body = codec.body(record, send, creating=True)
        response = yield self.call("POST", self.sobject_url(codec), what, body=body)
        payload = self.payload(response, what)
        with self.decoding(what):
            record_id = str(payload["id"])
        if codec.obj.runtime.get("retrieveable", True):
            return (yield from self._read(codec, record_id, what))
        # objects Salesforce cannot read by Id (events and the like): what was sent, with the Id
        key = codec.keys[0].field.wire if codec.keys else "Id"
        with self.decoding(what):
            return codec.decode({**body, key: record_id}, None)

    def update(
        self, obj: ObjectDescriptor, key: Key, record: Any, send: Names, etag: str | None, links: Links
    ) -> Flow[None]:
        self.plain(links=links)
        codec = self.codec(obj)
        url = self.sobject_url(codec, codec.key_value(key))
        body = codec.body(record, send, creating=False)
        headers = {"If-Match": etag} if etag else None
        response = yield self.call("PATCH", url, f"update {obj.name}", headers=headers, body=body)
        self.check(response, f"update {obj.name}")

    def delete(self, obj: ObjectDescriptor, key: Mapping[str, Any], etag: str | None) -> Flow[None]:
        codec = self.codec(obj)
        url = self.sobject_url(codec, codec.key_value(key))
        headers = {"If-Match": etag} if etag else None
        response = yield self.call("DELETE", url, f"delete {obj.name}", headers=headers)
        self.check(response, f"delete {obj.name}")


# --------------------------------------------------------------------------------------------
# The clients: the shared shells around the core
# --------------------------------------------------------------------------------------------


class Client(client.ClientBase, core=_Core):
    """Synchronous Salesforce client; use as a context manager or call close()."""


class AsyncClient(client.AsyncClientBase, core=_Core):
    """Asynchronous twin of :class:`Client`; use with ``async with`` or call aclose()."""
