"""OData V2 and V4 client: what generated SAP OData (and Dataverse) drivers call.

:class:`Client` and :class:`AsyncClient` are the shells of :mod:`.client` around this module's
core, which holds all of OData's protocol logic (V2 and V4 dialects, codecs, CSRF, paging) as flows.

Decisions a caller may notice:

- Paging: ``search(skip, top)`` returns up to ``top`` records. When the server pages on its own
  (``__next`` / ``@odata.nextLink`` inside the requested ``$top``) those links are followed until
  ``top`` records are there. ``Page.next_link`` then points at the next ``top`` records
  (``$skip=skip+len(items)``); it is ``None`` when the reported total (or a short page) says
  there is nothing more. Every link a server returns is rebased onto the origin of
  ``Connection.url``: SAP systems behind proxies report internal host names, and credentials
  must never travel to another host.
- ETags: ``update``/``delete`` send ``If-Match: <etag>`` when an etag is given. Without one no
  ``If-Match`` is sent; if the server insists (428 Precondition Required, as CAP and Gateway do
  for objects with an ETag), the call is repeated once with ``If-Match: *``, because passing no
  etag means "overwrite whatever is there", and the client then sends ``If-Match: *`` on later
  etag-less writes to that object straight away. A stale etag answers 412: :class:`Conflict`.
- Updates: V2 uses MERGE (what SAP Gateway expects) and switches to PATCH for the rest of the
  client's life if the server refuses MERGE (405/501); V4 uses PATCH with
  ``Prefer: return=minimal``. Neither returns the record.
- Creates: V4 asks ``Prefer: return=representation``. A 201 with a body is decoded; a 204 (or a
  body-less 201) with ``OData-EntityId``/``Location`` is followed by one GET of that entity, so
  ``create`` always returns the record as the server stored it (keys, defaults, etag).
- SAP CSRF: before the first write a client GETs the service root with ``X-CSRF-Token: Fetch``
  and keeps the token (cookies stay in the httpx client). A 403 with ``x-csrf-token: Required``
  fetches a new token and repeats the write once. Servers that return no token still work.
- V4 requests declare ``IEEE754Compatible=true`` and send Edm.Decimal and Edm.Int64 as strings,
  so they keep their precision; answers are read whether the server sends strings or numbers.
- ``attributes_to_send`` (Python or wire names) limits a write to those attributes, sending
  ``None`` as null; without it, every creatable (create) or updatable (update) attribute that is
  not ``None`` is sent. Attributes the system does not let you write are never sent.
- ``record.null_attributes`` lists the attributes that came back null (or were absent).

Services whose descriptor says so in ``ServiceDescriptor.runtime`` (Microsoft Dataverse does):

- ``"server_paging": true``: the server knows no ``$skip`` and ``$top`` would end its paging, so
  ``search`` asks for pages with ``Prefer: odata.maxpagesize=<top>`` and ``Page.next_link`` is the
  server's ``@odata.nextLink``. ``skip`` must then be a multiple of ``top``: whole pages are
  read and dropped.
- ``"csrf": false``: no CSRF token is fetched before writes.
- ``"if_match": "*"``: updates and deletes without an etag send ``If-Match: *``, because a PATCH
  to a record that does not exist would create it (an upsert) instead of answering 404.
- ``"formatted_values": true``: ``search``/``get`` with ``formatted_values=True`` ask for the
  ``OData.Community.Display.V1.FormattedValue`` annotations (``Prefer: odata.include-annotations``)
  and put them in ``record.formatted_values`` (by Python name, expanded records too); later pages
  are asked for the same way. Without the flag, asking raises ConfigurationError. Records read
  without asking are decoded exactly as before: the annotations cost nothing unless requested.

Lookups: a navigation descriptor with ``bind_to`` is a single-valued navigation that ``create``
and ``update`` may set through ``links`` (navigation Python or wire name -> the target's key, or
``None`` to clear it), sent as ``"<navigation>@odata.bind": "<entity set>(<key>)"`` (OData 4.0
JSON; Dataverse writes lookups only this way).
"""

from __future__ import annotations

import base64
import json
import re
from collections.abc import Callable, Mapping, Sequence
from datetime import UTC, date, datetime, time, timedelta, timezone
from decimal import Decimal
from enum import Enum
from keyword import iskeyword
from operator import itemgetter
from types import MappingProxyType
from typing import Any, NamedTuple, cast
from urllib.parse import quote
from uuid import UUID, SafeUUID

import httpx

from . import client
from .client import Flow, Key, Links, Names, Search
from .connection import Connection
from .errors import ConfigurationError, IntegrationError
from .query import BasicFilter, FilterOperator, OrderBy, Page
from .records import FieldDescriptor, NavigationDescriptor, ObjectDescriptor, ServiceDescriptor

__all__ = ["AsyncClient", "Client"]

Decoder = Callable[[Any], Any]
Encoder = Callable[[Any], Any]
LiteralEncoder = Callable[[Any], str]

# --------------------------------------------------------------------------------------------
# Values: wire <-> Python, and URL literals
# --------------------------------------------------------------------------------------------

_new_object = object.__new__
_set_attribute = object.__setattr__
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_MILLISECOND = timedelta(milliseconds=1)
_DURATION = re.compile(r"(-)?P(?:(\d+)D)?(?:T(?:(\d+)H)?(?:(\d+)M)?(?:(\d+(?:\.\d+)?)S)?)?", re.IGNORECASE)


def _quote_text(value: Any) -> str:
    text = value.value if isinstance(value, Enum) else value
    return "'" + str(text).replace("'", "''") + "'"


def _boolean(value: Any) -> bool:
    if isinstance(value, str):
        return value.lower() == "true"
    return bool(value)


def _boolean_literal(value: Any) -> str:
    return "true" if _boolean(value) else "false"


def _integer_literal(value: Any) -> str:
    return str(int(value))


def _decimal(value: Any) -> Decimal:
    if isinstance(value, Decimal):
        return value
    # str() first: Decimal(0.1) would carry the binary float's 55 digits
    return Decimal(str(value))


def _decimal_text(value: Any) -> str:
    return format(_decimal(value), "f")


def _float_text(value: Any) -> str:
    number = float(value)
    if number != number:
        return "NaN"
    if number in (float("inf"), float("-inf")):
        return "INF" if number > 0 else "-INF"
    return repr(number)


def _float_json(value: Any) -> float | str:
    number = float(value)
    # JSON has no NaN/Infinity; OData spells them as strings
    return number if number - number == 0 else _float_text(number)


def _aware(value: Any) -> datetime:
    moment: datetime
    if isinstance(value, datetime):
        moment = value
    elif isinstance(value, str):
        moment = datetime.fromisoformat(value)
    elif isinstance(value, date):
        moment = datetime(value.year, value.month, value.day)
    else:
        raise TypeError(f"expected a datetime, got {type(value).__name__}")
    return moment if moment.tzinfo is not None else moment.replace(tzinfo=UTC)


def _iso_datetime(value: Any) -> datetime:
    moment = datetime.fromisoformat(value)
    return moment if moment.tzinfo is not None else moment.replace(tzinfo=UTC)


def _utc_text(value: Any) -> str:
    return _aware(value).astimezone(UTC).isoformat().replace("+00:00", "Z")


def _v2_datetime(value: Any) -> datetime:
    if not (isinstance(value, str) and value.startswith("/Date(") and value.endswith(")/")):
        return _aware(value)
    ticks = value[6:-2]  # milliseconds since 1970 UTC, then an optional offset in minutes
    sign = max(ticks.find("+"), ticks.find("-", 1))
    if sign < 0:
        return _EPOCH + int(ticks) * _MILLISECOND
    moment = _EPOCH + int(ticks[:sign]) * _MILLISECOND
    offset = int(ticks[sign:])
    return moment.astimezone(timezone(timedelta(minutes=offset))) if offset else moment


def _milliseconds(value: Any) -> int:
    return (_aware(value) - _EPOCH) // _MILLISECOND


def _v2_datetime_json(value: Any) -> str:
    return f"/Date({_milliseconds(value)})/"


def _v2_datetime_offset_json(value: Any) -> str:
    return f"/Date({_milliseconds(value)}+0000)/"


def _v2_datetime_literal(value: Any) -> str:
    moment = _aware(value).astimezone(UTC).replace(tzinfo=None)
    return f"datetime'{moment.isoformat()}'"


def _v2_datetime_offset_literal(value: Any) -> str:
    return f"datetimeoffset'{_utc_text(value)}'"


def _duration(value: Any) -> timedelta:
    if isinstance(value, timedelta):
        return value
    match = _DURATION.fullmatch(str(value))
    if match is None:
        raise ValueError(f"not an ISO 8601 day-time duration: {value!r}")
    sign, days, hours, minutes, seconds = match.groups()
    span = timedelta(
        days=int(days or 0), hours=int(hours or 0), minutes=int(minutes or 0), seconds=float(seconds or 0)
    )
    return -span if sign else span


def _fraction(microseconds: int) -> str:
    return f".{microseconds:06d}".rstrip("0") if microseconds else ""


def _duration_text(value: Any) -> str:
    span = _duration(value)
    sign = "-" if span < timedelta(0) else ""
    micros = abs(span) // timedelta(microseconds=1)
    days, micros = divmod(micros, 86_400_000_000)
    hours, micros = divmod(micros, 3_600_000_000)
    minutes, micros = divmod(micros, 60_000_000)
    seconds, micros = divmod(micros, 1_000_000)
    return f"{sign}P{days}DT{hours}H{minutes}M{seconds}{_fraction(micros)}S"


def _v2_time(value: Any) -> time:
    if isinstance(value, time):
        return value
    span = _duration(value)
    micros = span // timedelta(microseconds=1)
    hours, micros = divmod(micros, 3_600_000_000)
    minutes, micros = divmod(micros, 60_000_000)
    seconds, micros = divmod(micros, 1_000_000)
    return time(hours, minutes, seconds, micros)


def _v2_time_text(value: Any) -> str:
    moment = value if isinstance(value, time) else _v2_time(value)
    # two-digit minutes and seconds: SAP's CAP V2 adapter matches nothing shorter
    return f"PT{moment.hour:02d}H{moment.minute:02d}M{moment.second:02d}{_fraction(moment.microsecond)}S"


def _v2_time_literal(value: Any) -> str:
    return f"time'{_v2_time_text(value)}'"


def _date(value: Any) -> date:
    if isinstance(value, datetime):
        return value.date()
    return value if isinstance(value, date) else date.fromisoformat(value)


def _date_text(value: Any) -> str:
    return _date(value).isoformat()


def _time_of_day(value: Any) -> time:
    return value if isinstance(value, time) else time.fromisoformat(value)


def _time_of_day_text(value: Any) -> str:
    return _time_of_day(value).isoformat()


def _guid(value: Any) -> UUID:
    if isinstance(value, UUID):
        return value
    digits = value.replace("-", "") if isinstance(value, str) and len(value) == 36 else ""
    if len(digits) == 32 and digits.isascii() and digits.isalnum():
        # UUID(text) costs several times this; the hex digits were checked just above
        guid = _new_object(UUID)
        _set_attribute(guid, "int", int(digits, 16))
        _set_attribute(guid, "is_safe", SafeUUID.unknown)
        return guid
    return UUID(str(value))


def _guid_text(value: Any) -> str:
    return str(_guid(value))


def _binary(value: Any) -> bytes:
    if isinstance(value, bytes | bytearray | memoryview):
        return bytes(value)
    # V2 sends base64, V4 base64url; accept both, padded or not
    text = str(value).replace("-", "+").replace("_", "/")
    return base64.b64decode(text + "=" * (-len(text) % 4))


def _base64(value: Any) -> str:
    return base64.b64encode(_binary(value)).decode("ascii")


def _base64url(value: Any) -> str:
    return base64.urlsafe_b64encode(_binary(value)).decode("ascii")


def _identity(value: Any) -> Any:
    return value


def _any_literal(value: Any) -> str:
    """Literal for types without a rule of their own (complex, geo, unknown): by Python type."""
    if value is None:
        return "null"
    if isinstance(value, Enum):
        value = value.value
    if isinstance(value, bool):
        return _boolean_literal(value)
    if isinstance(value, int | float | Decimal):
        return str(value)
    return _quote_text(value)


class _TypeCodec(NamedTuple):
    decode: Decoder | None  # None: the JSON value is already the Python value
    encode: Encoder  # Python -> JSON body value
    literal: LiteralEncoder  # Python -> URL literal ($filter, key predicates)
    native: type | None = None  # JSON values of this type need no decoding
    memo: bool = False  # decoded values are immutable and worth remembering by wire value


_PASSTHROUGH = _TypeCodec(None, _identity, _any_literal)

_SHARED_TYPES: dict[str, _TypeCodec] = {
    "Edm.String": _TypeCodec(None, str, _quote_text),
    "Edm.Boolean": _TypeCodec(_boolean, _boolean, _boolean_literal, bool),
    "Edm.Byte": _TypeCodec(int, int, _integer_literal, int),
    "Edm.SByte": _TypeCodec(int, int, _integer_literal, int),
    "Edm.Int16": _TypeCodec(int, int, _integer_literal, int),
    "Edm.Int32": _TypeCodec(int, int, _integer_literal, int),
}

_V2_TYPES: dict[str, _TypeCodec] = {
    **_SHARED_TYPES,
    "Edm.Int64": _TypeCodec(int, _integer_literal, lambda v: f"{int(v)}L", int),
    "Edm.Decimal": _TypeCodec(_decimal, _decimal_text, lambda v: f"{_decimal_text(v)}M", memo=True),
    "Edm.Double": _TypeCodec(float, _float_text, lambda v: f"{_float_text(v)}d", float),
    "Edm.Single": _TypeCodec(float, _float_text, lambda v: f"{_float_text(v)}f", float),
    "Edm.Float": _TypeCodec(float, _float_text, lambda v: f"{_float_text(v)}f", float),
    "Edm.DateTime": _TypeCodec(_v2_datetime, _v2_datetime_json, _v2_datetime_literal, memo=True),
    "Edm.DateTimeOffset": _TypeCodec(
        _v2_datetime, _v2_datetime_offset_json, _v2_datetime_offset_literal, memo=True
    ),
    "Edm.Time": _TypeCodec(_v2_time, _v2_time_text, _v2_time_literal, memo=True),
    "Edm.Guid": _TypeCodec(_guid, _guid_text, lambda v: f"guid'{_guid_text(v)}'", memo=True),
    "Edm.Binary": _TypeCodec(_binary, _base64, lambda v: f"X'{_binary(v).hex().upper()}'"),
}

_V4_TYPES: dict[str, _TypeCodec] = {
    **_SHARED_TYPES,
    "Edm.Int64": _TypeCodec(int, _integer_literal, _integer_literal, int),
    "Edm.Decimal": _TypeCodec(_decimal, _decimal_text, _decimal_text, memo=True),
    "Edm.Double": _TypeCodec(float, _float_json, _float_text, float),
    "Edm.Single": _TypeCodec(float, _float_json, _float_text, float),
    "Edm.Float": _TypeCodec(float, _float_json, _float_text, float),
    "Edm.Date": _TypeCodec(date.fromisoformat, _date_text, _date_text, memo=True),
    "Edm.DateTimeOffset": _TypeCodec(_iso_datetime, _utc_text, _utc_text, memo=True),
    "Edm.TimeOfDay": _TypeCodec(time.fromisoformat, _time_of_day_text, _time_of_day_text, memo=True),
    "Edm.Guid": _TypeCodec(_guid, _guid_text, _guid_text, memo=True),
    "Edm.Duration": _TypeCodec(
        _duration, _duration_text, lambda v: f"duration'{_duration_text(v)}'", memo=True
    ),
    "Edm.Binary": _TypeCodec(_binary, _base64url, lambda v: f"binary'{_base64url(v)}'"),
}

_DATETIME_TYPES = frozenset({"Edm.DateTime", "Edm.DateTimeOffset"})
_STREAM = "Edm.Stream"
_MISSING = object()
_USUAL_PAGE_SIZE = 1000  # CAP's and many Gateways' default server page
_FORMATTED_VALUE = "OData.Community.Display.V1.FormattedValue"
_FORMATTED_PREFERENCE = f'odata.include-annotations="{_FORMATTED_VALUE}"'
_MEMO_SIZE = 4096
_KEY_SAFE = "':@"  # what stays unescaped in a key predicate


class _Memo(dict[Any, Any]):
    """Conversions remembered by wire value: a hit is one dict lookup in C, a miss converts."""

    __slots__ = ("convert",)

    def __init__(self, convert: Decoder) -> None:
        super().__init__()
        self.convert = convert

    def __missing__(self, wire: Any) -> Any:
        if len(self) >= _MEMO_SIZE:
            self.clear()
        value = self[wire] = self.convert(wire)
        return value


def _plain_slots(model: Any, attrs: list[str]) -> bool:
    """Whether ``model`` is a plain slotted class whose records a decoder may fill by assigning
    ``attrs`` and the record metadata directly (no __init__ logic, no __setattr__ of its own)."""
    if not isinstance(model, type) or "__post_init__" in dir(model):
        return False
    if getattr(model, "__setattr__", None) is not object.__setattr__:
        return False
    for attr in [*attrs, "_ib_etag", "_ib_nulls"]:
        descriptor = next((k.__dict__[attr] for k in model.__mro__ if attr in k.__dict__), None)
        if descriptor is None or not hasattr(descriptor, "__set__") or isinstance(descriptor, property):
            return False
    # a field this decoder does not fill would be left unset
    return not set(getattr(model, "__dataclass_fields__", {})) - set(attrs)


def _identifier(name: str, object_name: str) -> str:
    if not name.isidentifier() or iskeyword(name):
        raise ConfigurationError(f"{object_name}: {name!r} is not a Python attribute name")
    return name


def _enum_decoder(enum: type[Enum], base: Decoder | None) -> Decoder:
    lookup: dict[Any, Enum] = {}
    for member in enum:
        lookup[member.name] = member
        lookup[str(member.value)] = member
        lookup[member.value] = member

    def decode(value: Any) -> Any:
        raw = base(value) if base is not None else value
        # a member added on the server after generation must not make the record unreadable
        return lookup.get(raw, raw)

    return decode


def _enum_value(value: Any) -> Any:
    return value.value if isinstance(value, Enum) else value


def _preferring(headers: Mapping[str, str], preference: str) -> dict[str, str]:
    """``headers`` with ``preference`` added to its ``Prefer`` header (preferences are a list)."""
    prefer = headers.get("Prefer")
    return {**headers, "Prefer": f"{prefer},{preference}" if prefer else preference}


# --------------------------------------------------------------------------------------------
# Dialects: what differs between OData V2 and V4
# --------------------------------------------------------------------------------------------


class _Dialect:
    version = ""
    types: Mapping[str, _TypeCodec] = {}
    count_params: Mapping[str, str] = {}
    headers: Mapping[str, str] = {}
    content_type = "application/json"
    update_method = "PATCH"
    select_navigations = False  # V2 returns expanded navigations only when $select names them
    binds_navigations = False  # writes may set single-valued navigations with @odata.bind

    def collection(self, payload: Any) -> tuple[list[Any], Any, str | None]:
        raise NotImplementedError

    def entity(self, payload: Any) -> Any:
        raise NotImplementedError

    etag_expression = "None"  # Python expression reading a row's etag, for the generated decoders

    def many(self, value: Any) -> list[Any]:
        return cast(list[Any], value)

    def wrap_many(self, values: list[Any]) -> Any:
        return values

    def deferred(self, value: Any) -> bool:
        return False

    def text_function(self, name: str, subject: str, literal: str) -> str:
        raise NotImplementedError

    def enum_codec(self, wire_type: str) -> _TypeCodec:
        return _PASSTHROUGH

    def page_headers(self, top: int) -> Mapping[str, str]:
        return {}

    def create_headers(self) -> Mapping[str, str]:
        return {}

    def update_headers(self) -> Mapping[str, str]:
        return {}


class _V2(_Dialect):
    version = "2.0"
    types = _V2_TYPES
    count_params = {"$inlinecount": "allpages"}
    headers = {"Accept": "application/json", "DataServiceVersion": "2.0", "MaxDataServiceVersion": "2.0"}
    update_method = "MERGE"
    select_navigations = True

    def collection(self, payload: Any) -> tuple[list[Any], Any, str | None]:
        body = payload["d"]
        if isinstance(body, list):  # OData V1 style answers
            return body, None, None
        return body["results"], body.get("__count"), body.get("__next")

    def entity(self, payload: Any) -> Any:
        body = payload["d"]
        # some V2 servers wrap a single entity in "results" as well
        return body["results"] if isinstance(body.get("results"), dict) else body

    etag_expression = "(row.get('__metadata') or NO_METADATA).get('etag')"

    def many(self, value: Any) -> list[Any]:
        return cast(list[Any], value["results"] if isinstance(value, dict) else value)

    def wrap_many(self, values: list[Any]) -> Any:
        return {"results": values}

    def deferred(self, value: Any) -> bool:
        return isinstance(value, dict) and "__deferred" in value

    def text_function(self, name: str, subject: str, literal: str) -> str:
        if name == "contains":
            return f"substringof({literal},{subject}) eq true"
        return f"{name}({subject},{literal}) eq true"


class _V4(_Dialect):
    version = "4.0"
    types = _V4_TYPES
    count_params = {"$count": "true"}
    headers = {
        "Accept": "application/json;IEEE754Compatible=true",
        "OData-Version": "4.0",
        "OData-MaxVersion": "4.0",
    }
    content_type = "application/json;IEEE754Compatible=true"
    binds_navigations = True

    def collection(self, payload: Any) -> tuple[list[Any], Any, str | None]:
        return payload["value"], payload.get("@odata.count"), payload.get("@odata.nextLink")

    def entity(self, payload: Any) -> Any:
        return payload

    etag_expression = "row.get('@odata.etag')"

    def text_function(self, name: str, subject: str, literal: str) -> str:
        return f"{name}({subject},{literal})"

    def enum_codec(self, wire_type: str) -> _TypeCodec:
        return _TypeCodec(None, lambda v: str(_enum_value(v)), lambda v: f"{wire_type}{_quote_text(v)}")

    def page_headers(self, top: int) -> Mapping[str, str]:
        # only past the usual server page size: below it the header buys nothing, and CAP answers
        # noticeably slower when it is present
        return {"Prefer": f"odata.maxpagesize={top}"} if top > _USUAL_PAGE_SIZE else {}

    def create_headers(self) -> Mapping[str, str]:
        return {"Prefer": "return=representation"}

    def update_headers(self) -> Mapping[str, str]:
        return {"Prefer": "return=minimal"}


_DIALECTS: dict[str, _Dialect] = {"2.0": _V2(), "4.0": _V4()}


def _dialect_for(service: ServiceDescriptor) -> _Dialect:
    version = str(service.runtime.get("odata_version", "2.0"))
    major = version.split(".", 1)[0]
    dialect = _DIALECTS.get(f"{major}.0")
    if dialect is None:
        raise ConfigurationError(f"{service.integration}: unsupported OData version {version!r}")
    return dialect


# --------------------------------------------------------------------------------------------
# Per-object codecs, built once per descriptor
# --------------------------------------------------------------------------------------------


class _FieldCodec(NamedTuple):
    field: FieldDescriptor
    decode: Decoder | None
    encode: Encoder
    literal: LiteralEncoder
    native: type | None
    memo: bool


def _field_codec(field: FieldDescriptor, dialect: _Dialect) -> _FieldCodec:
    wire_type = field.wire_type
    many = field.collection
    if wire_type.startswith("Collection(") and wire_type.endswith(")"):
        wire_type, many = wire_type[len("Collection(") : -1], True
    codec = dialect.types.get(wire_type)
    if codec is None:
        codec = dialect.enum_codec(wire_type) if field.enum is not None else _PASSTHROUGH
    decode, encode, literal, native, memo = codec
    if field.value_type == "date" and wire_type in _DATETIME_TYPES:
        # V2 has no Edm.Date: SAP marks date-only Edm.DateTime properties as display-format Date
        datetime_decode, datetime_encode = decode, encode
        assert datetime_decode is not None
        decode = lambda v: datetime_decode(v).date()  # noqa: E731
        encode = lambda v: datetime_encode(_date(v))  # noqa: E731
    if field.enum is not None:
        native, memo = None, False
        decode = _enum_decoder(field.enum, decode)
        plain_encode, plain_literal = encode, literal
        encode = lambda v: plain_encode(_enum_value(v))  # noqa: E731
        literal = lambda v: plain_literal(_enum_value(v))  # noqa: E731
    if many:
        native, memo = None, False
        element_decode, element_encode = decode or _identity, encode
        decode = lambda v: [element_decode(e) for e in dialect.many(v)]  # noqa: E731
        encode = lambda v: dialect.wrap_many([element_encode(e) for e in v])  # noqa: E731
    return _FieldCodec(field, decode, encode, literal, native, memo)


class _ObjectCodec(client.ObjectCodec[_FieldCodec]):
    """Everything the client needs about one object, computed once."""

    def __init__(self, obj: ObjectDescriptor, core: _Core) -> None:
        dialect = core.dialect
        super().__init__(obj, (_field_codec(f, dialect) for f in obj.fields if f.wire_type != _STREAM))
        streams = tuple(f.attr for f in obj.fields if f.wire_type == _STREAM)
        selected = [c.field.wire for c in self.fields]
        if dialect.select_navigations:
            selected.extend(obj.expand)
        self.read_params: dict[str, str] = {}
        if obj.runtime.get("select", True):
            self.read_params["$select"] = ",".join(selected)
        if obj.expand:
            self.read_params["$expand"] = ",".join(obj.expand)
        self.bindable = {n.attr: n for n in obj.navigations if n.bind_to}
        self.bindable.update({n.wire: n for n in obj.navigations if n.bind_to})
        self._core = core
        self._streams = streams
        self.decode = self._row_decoder(core, streams, formatted=False)
        self._formatted_decode: Callable[[Any, str | None], Any] | None = None

    def decoder(self, formatted: bool) -> Callable[[Any, str | None], Any]:
        """``decode``, or (compiled on first use) its twin that also keeps formatted values."""
        if not formatted:
            return self.decode
        if self._formatted_decode is None:
            self._formatted_decode = self._row_decoder(self._core, self._streams, formatted=True)
        return self._formatted_decode

    def _row_decoder(
        self, core: _Core, streams: tuple[str, ...], formatted: bool
    ) -> Callable[[Any, str | None], Any]:
        """Compile ``decode(row, fallback_etag)`` for this object.

        Listing pages is the hot path (see bench/): the decoder is generated as straight-line code,
        one local per attribute, so a row costs its conversions and one model call, no loops over
        descriptors. Conversions of immutable values (dates, GUIDs, decimals) are remembered by
        wire value, since pages repeat them (foreign keys, posting dates, prices). ``formatted``
        compiles a separate decoder that also reads each attribute's formatted value, so records
        read without them pay nothing for the feature.
        """
        dialect = core.dialect
        namespace: dict[str, Any] = {
            "model": self.obj.model,
            "fetch": itemgetter(*(c.field.wire for c in self.fields)) if self.fields else None,
            "NO_METADATA": {},
            "deferred": dialect.deferred,
            "NO_NULLS": frozenset(),
            "MISSING": _MISSING,
            "new": object.__new__,
            "set_meta": object.__setattr__,
            "frozen_mapping": MappingProxyType,
        }
        names = [f"v{i}" for i in range(len(self.fields))]
        # one C call fetches every attribute; rows that lack some take the slower path
        # nulls stays None for the usual row without any (no list made per row)
        body = ["    nulls = None"]
        if len(names) > 1:
            body += ["    try:", f"        {', '.join(names)} = fetch(row)", "    except KeyError:"]
            body += [
                f"        {name} = row.get({codec.field.wire!r})"
                for name, codec in zip(names, self.fields, strict=True)
            ]
        elif names:
            body.append(f"    v0 = row.get({self.fields[0].field.wire!r})")
        arguments = [f"{_identifier(attr, self.obj.name)}=None" for attr in streams]
        for i, codec in enumerate(self.fields):
            attr = _identifier(codec.field.attr, self.obj.name)
            body += [
                f"    if v{i} is None:",
                "        if nulls is None:",
                "            nulls = []",
                f"        nulls.append({attr!r})",
            ]
            if codec.decode is not None:
                namespace[f"c{i}"] = codec.decode
                if codec.native is not None:
                    namespace[f"t{i}"] = codec.native
                    body.append(f"    elif type(v{i}) is not t{i}:")
                else:
                    body.append("    else:")
                if codec.memo:
                    namespace[f"m{i}"] = _Memo(codec.decode)
                    body.append(f"        v{i} = m{i}[v{i}]")
                else:
                    body.append(f"        v{i} = c{i}(v{i})")
            arguments.append(f"{attr}=v{i}")
        # navigations that were not asked for are absent (V4) or deferred (V2): not worth a look
        expanded = [n for n in self.obj.navigations if n.wire in self.obj.expand]
        if expanded:
            body.append("    expanded = {}")
            arguments.append("**expanded")
        for j, navigation in enumerate(expanded):
            namespace[f"n{j}"] = core.navigation_decoder(navigation, formatted)
            body += [
                f"    w{j} = row.get({navigation.wire!r}, MISSING)",
                f"    if w{j} is not MISSING and not deferred(w{j}):",
                f"        expanded[{_identifier(navigation.attr, self.obj.name)!r}] = "
                f"None if w{j} is None else n{j}(w{j})",
            ]
        if _plain_slots(self.obj.model, [a.split("=", 1)[0] for a in arguments if "=" in a]) and not expanded:
            # Fill the slots directly: the dataclass __init__ would only assign the same values,
            # at more cost per row (the hot path of every listing); plain attribute stores in this
            # compiled function are specialised by the interpreter for slots.
            body.append("    record = new(model)")
            body += [f"    record.{a} = {v}" for a, v in (x.split("=", 1) for x in arguments)]
            body += [
                f"    record._ib_etag = {dialect.etag_expression} or fallback_etag",
                "    record._ib_nulls = frozenset(nulls) if nulls else NO_NULLS",
                "    return record",
            ]
        else:
            body += [
                f"    record = model({', '.join(arguments)})",
                f"    etag = {dialect.etag_expression} or fallback_etag",
                "    record._ib_set_meta(etag, frozenset(nulls) if nulls else NO_NULLS)",
                "    return record",
            ]
        if formatted:
            body.pop()  # "return record" comes after the formatted values
            body.append("    shown = {}")
            for i, codec in enumerate(self.fields):
                body += [
                    f"    s{i} = row.get({codec.field.wire + '@' + _FORMATTED_VALUE!r})",
                    f"    if s{i} is not None:",
                    f"        shown[{codec.field.attr!r}] = s{i}",
                ]
            body += ["    set_meta(record, '_ib_formatted', frozen_mapping(shown))", "    return record"]
        source = "def decode(row, fallback_etag=None):\n" + "\n".join(body)
        # the source holds only validated identifiers and repr()-quoted wire names
        exec(source, namespace)  # noqa: S102
        return cast(Callable[[Any, str | None], Any], namespace["decode"])

    def body(
        self,
        record: Any,
        attributes_to_send: Sequence[str] | None,
        creating: bool,
        links: Mapping[str, Any] | None = None,
    ) -> dict[str, Any]:
        """The write's body, with the lookups in ``links`` bound (see the module docstring)."""
        fields = super().body(record, attributes_to_send, creating)
        return {**self.bind(links), **fields} if links else fields

    def bind(self, links: Mapping[str, Any]) -> dict[str, Any]:
        """``links`` (navigation -> target key, None to clear) as ``@odata.bind`` body members."""
        dialect = self._core.dialect
        body: dict[str, Any] = {}
        for name, key in links.items():
            navigation = self.bindable.get(name.value if isinstance(name, Enum) else name)
            if navigation is None:
                known = ", ".join(sorted({n.attr for n in self.bindable.values()})) or "none"
                raise ValueError(f"{self.obj.name} has no lookup {name!r} to set (its lookups: {known})")
            if not dialect.binds_navigations:
                version = dialect.version.split(".", 1)[0]
                raise ConfigurationError(f"{self.obj.name}: OData V{version} cannot set lookups (links)")
            if key is None:
                body[f"{navigation.wire}@odata.bind"] = None
                continue
            literal = dialect.types.get(navigation.bind_key_type, _PASSTHROUGH).literal(key)
            target = quote(navigation.bind_to or "", safe="")
            body[f"{navigation.wire}@odata.bind"] = f"{target}({quote(literal, safe=_KEY_SAFE)})"
        return body

    def key_predicate(self, key: Mapping[str, Any]) -> str:
        if not self.keys:
            raise ValueError(f"{self.obj.name} has no key: it cannot be read, updated or deleted by key")
        known = {c.field.wire for c in self.keys} | {c.field.attr for c in self.keys}
        unknown = sorted(set(key) - known)
        if unknown:
            raise ValueError(f"{self.obj.name}: {', '.join(unknown)} is not part of its key")
        literals = []
        for codec in self.keys:
            f = codec.field
            if f.wire in key:
                value = key[f.wire]
            elif f.attr in key:
                value = key[f.attr]
            else:
                raise ValueError(f"{self.obj.name}: key attribute {f.wire!r} is missing")
            if value is None:
                raise ValueError(f"{self.obj.name}: key attribute {f.wire!r} is None")
            literals.append((f.wire, quote(codec.literal(value), safe=_KEY_SAFE)))
        if len(literals) == 1:
            return f"({literals[0][1]})"
        return "(" + ",".join(f"{wire}={literal}" for wire, literal in literals) + ")"


# --------------------------------------------------------------------------------------------
# The shared protocol: flows that yield calls and receive responses
# --------------------------------------------------------------------------------------------


_COMPARISONS = {
    FilterOperator.EQUAL: "eq",
    FilterOperator.NOT_EQUAL: "ne",
    FilterOperator.GREATER: "gt",
    FilterOperator.GREATER_OR_EQUAL: "ge",
    FilterOperator.LESS: "lt",
    FilterOperator.LESS_OR_EQUAL: "le",
}
_TEXT_FUNCTIONS = {
    FilterOperator.STARTS_WITH: "startswith",
    FilterOperator.STARTS_WITH_IGNORE_CASE: "startswith",
    FilterOperator.ENDS_WITH: "endswith",
    FilterOperator.ENDS_WITH_IGNORE_CASE: "endswith",
    FilterOperator.CONTAINS: "contains",
    FilterOperator.CONTAINS_IGNORE_CASE: "contains",
}
_XML_CODE = re.compile(r"<(?:\w+:)?code>([^<]*)</", re.IGNORECASE)
_XML_MESSAGE = re.compile(r"<(?:\w+:)?message[^>]*>([^<]*)</", re.IGNORECASE)
_MAX_MESSAGE = 500


def _error_details(response: httpx.Response) -> tuple[str, str | None]:
    """The server's message and code from a V2/V4 JSON, XML or plain-text error body."""
    text = response.text.strip()
    if text.startswith("{"):
        try:
            error = json.loads(text).get("error") or {}
        except (ValueError, AttributeError):
            error = {}
        if isinstance(error, dict):
            message = error.get("message")
            if isinstance(message, dict):  # V2: {"lang": ..., "value": ...}
                message = message.get("value")
            code = error.get("code")
            return str(message or "")[:_MAX_MESSAGE], (str(code) if code else None)
    if text.startswith("<"):
        code_match = _XML_CODE.search(text)
        message_match = _XML_MESSAGE.search(text)
        return (
            (message_match[1].strip() if message_match else "")[:_MAX_MESSAGE],
            code_match[1].strip() or None if code_match else None,
        )
    return text[:_MAX_MESSAGE], None


def error_from_response(response: httpx.Response, what: str) -> IntegrationError:
    """The :mod:`errors` exception for a failed OData response."""
    status = response.status_code
    message, code = _error_details(response)
    text = f"{what}: {message or response.reason_phrase or f'HTTP {status}'}"
    return client.status_error(response, text, code, client.request_id(response))


class _Core(client.Core[_ObjectCodec]):
    """OData's protocol logic, run by :class:`Client` and :class:`AsyncClient`."""

    query_safe = "$,()'*:@/"

    def __init__(self, connection: Connection, service: ServiceDescriptor) -> None:
        self.service = service
        self.dialect = _dialect_for(service)
        root = connection.url if connection.url.endswith("/") else connection.url + "/"
        super().__init__(
            connection,
            root,
            self.dialect.headers,
            lambda obj: _ObjectCodec(obj, self),
            error_from_response,
            "the server",
        )
        self.content_type = self.dialect.content_type
        self.update_method = self.dialect.update_method
        self.csrf_token: str | None = None
        self.csrf_fetched = not service.runtime.get("csrf", True)
        self.etag_required: set[str] = set()  # entity sets whose server answered 428 without If-Match
        self.if_match = str(service.runtime.get("if_match") or "")
        self.server_paging = bool(service.runtime.get("server_paging"))
        self.formats_values = bool(service.runtime.get("formatted_values"))

    # --- descriptors -------------------------------------------------------------------------

    def navigation_decoder(self, navigation: NavigationDescriptor, formatted: bool) -> Decoder:
        dialect = self.dialect
        objects = self.service.objects
        target = (
            objects.get(navigation.target)
            or next((o for o in objects.values() if o.name == navigation.target), None)
            if navigation.target
            else None
        )
        if target is None:
            if navigation.many:
                return dialect.many
            return _identity
        # resolved on first use: objects may point at each other
        resolved: list[_ObjectCodec] = []

        def decode_one(row: Any) -> Any:
            if not resolved:
                resolved.append(self.codec(target))
            return resolved[0].decoder(formatted)(row, None)

        if navigation.many:
            return lambda value: [decode_one(row) for row in dialect.many(value)]
        return decode_one

    # --- requests and responses --------------------------------------------------------------

    def query_params(self, url: str, params: Mapping[str, str] | None) -> Mapping[str, str]:
        if not self.params:
            return params or {}
        # server links usually carry sap-client already; sending it twice confuses Gateway
        present = httpx.URL(url).params if "?" in url else {}
        return {**{k: v for k, v in self.params.items() if k not in present}, **(params or {})}

    def entity_set_url(self, obj: ObjectDescriptor) -> str:
        return self.root + quote(obj.name, safe="")

    def entity_url(self, codec: _ObjectCodec, key: Mapping[str, Any]) -> tuple[str, str]:
        predicate = codec.key_predicate(key)
        return self.entity_set_url(codec.obj) + predicate, codec.obj.name + predicate

    # --- queries -----------------------------------------------------------------------------

    def condition(self, codec: _ObjectCodec, condition: BasicFilter) -> str:
        field = codec.field(condition.attribute)
        operator = condition.operator
        wire = field.field.wire
        comparison = _COMPARISONS.get(operator)
        if comparison is not None:
            literal = "null" if condition.value is None else field.literal(condition.value)
            return f"{wire} {comparison} {literal}"
        value = str(_enum_value(condition.value))
        subject = wire
        if operator.ignore_case:
            subject, value = f"tolower({wire})", value.lower()
        if operator is FilterOperator.EQUAL_IGNORE_CASE:
            return f"{subject} eq {_quote_text(value)}"
        return self.dialect.text_function(_TEXT_FUNCTIONS[operator], subject, _quote_text(value))

    def query(
        self,
        codec: _ObjectCodec,
        filters: Sequence[BasicFilter],
        advanced_filter: str | None,
        order_by: Sequence[OrderBy] = (),
        advanced_order_by: str | None = None,
    ) -> dict[str, str]:
        params: dict[str, str] = {}
        conditions = [self.condition(codec, f) for f in filters]
        if advanced_filter:
            conditions.append(f"({advanced_filter})" if conditions else advanced_filter)
        if conditions:
            params["$filter"] = " and ".join(conditions)
        ordering = [f"{codec.field(o.attribute).field.wire} {o.direction.value}" for o in order_by]
        if advanced_order_by:
            ordering.append(advanced_order_by)
        if ordering:
            params["$orderby"] = ",".join(ordering)
        return params

    def read_headers(self, headers: Mapping[str, str], formatted: bool) -> Mapping[str, str]:
        """``headers`` of a read, asking for formatted values when ``formatted``."""
        if not formatted:
            return headers
        if not self.formats_values:
            raise ConfigurationError(f"{self.service.integration}: this service does not format values")
        return _preferring(headers, _FORMATTED_PREFERENCE)

    # --- flows -------------------------------------------------------------------------------

    def search(self, search: Search) -> Flow[Page[Any]]:
        obj, filters, advanced_filter, order_by, advanced_order_by, skip, top, formatted = search
        codec = self.codec(obj)
        params = {
            **codec.read_params,
            **self.query(codec, filters, advanced_filter, order_by, advanced_order_by),
            **self.dialect.count_params,
        }
        if self.server_paging:
            return self._server_page(codec, self.entity_set_url(obj), params, skip, top, skip, formatted)
        return self._page(codec, self.entity_set_url(obj), params, skip, top, formatted)

    def next_page(self, obj: ObjectDescriptor, page: Page[Any]) -> Flow[Page[Any]]:
        if page.next_link is None:
            raise ValueError(f"{obj.name}: this is the last page, there is no next one")
        link = self.rebase(page.next_link)
        params = dict(httpx.URL(link).params)
        for name in self.params:
            params.pop(name, None)
        url = link.split("?", 1)[0]
        formatted = page.formatted_values
        if self.server_paging:
            skip = page.skip + len(page.items)
            return self._server_page(self.codec(obj), url, params, skip, page.top, 0, formatted)
        skip = int(params.get("$skip", page.skip + len(page.items)))
        top = int(params.get("$top", page.top))
        return self._page(self.codec(obj), url, params, skip, top, formatted)

    def _page(
        self, codec: _ObjectCodec, url: str, params: dict[str, str], skip: int, top: int, formatted: bool
    ) -> Flow[Page[Any]]:
        if skip < 0 or top < 0:
            raise ValueError("skip and top must not be negative")
        what = f"search {codec.obj.name}"
        params = {**params, "$top": str(top)}
        if skip:
            params["$skip"] = str(skip)
        else:
            params.pop("$skip", None)
        headers = self.read_headers(self.dialect.page_headers(top), formatted)
        decode = codec.decoder(formatted)
        items: list[Any] = []
        total: int | None = None
        call = self.call("GET", url, what, params, headers)
        while True:
            response = yield call
            payload = self.payload(response, what)
            with self.decoding(what):
                rows, count, link = self.dialect.collection(payload)
                if total is None and count is not None:
                    total = int(count)
                items.extend([decode(row, None) for row in rows])
            if link is None or len(items) >= top:
                break
            call = self.call("GET", self.rebase(link), what, None, headers)
        del items[top:]
        fetched = skip + len(items)
        more = bool(items) and (fetched < total if total is not None else len(items) >= top)
        next_link = f"{url}?{self.query_string({**params, '$skip': str(fetched)})}" if more else None
        return Page(items, total, next_link, skip, top, codec.obj.name, formatted)

    def _server_page(
        self,
        codec: _ObjectCodec,
        url: str,
        params: dict[str, str],
        skip: int,
        top: int,
        drop: int,
        formatted: bool,
    ) -> Flow[Page[Any]]:
        """One server page of ``top`` records after dropping ``drop`` records (whole pages)."""
        if skip < 0 or top <= 0:
            raise ValueError("skip must not be negative and top must be positive")
        if drop % top:
            raise ValueError(
                f"{codec.obj.name}: this service pages by next links only: skip must be a multiple of top "
                f"({skip} is not a multiple of {top}); follow next_page instead"
            )
        what = f"search {codec.obj.name}"
        headers = self.read_headers({"Prefer": f"odata.maxpagesize={top}"}, formatted)
        decode = codec.decoder(formatted)
        call = self.call("GET", url, what, params, headers)
        while True:
            response = yield call
            payload = self.payload(response, what)
            with self.decoding(what):
                rows, count, link = self.dialect.collection(payload)
                if drop <= 0:
                    items = [decode(row, None) for row in rows]
                    total = None if count is None else int(count)
                    next_link = self.rebase(link) if link else None
                    return Page(items, total, next_link, skip, top, codec.obj.name, formatted)
            drop -= len(rows)
            if link is None:
                total = None if count is None else int(count)
                return Page([], total, None, skip, top, codec.obj.name, formatted)
            call = self.call("GET", self.rebase(link), what, None, headers)

    def count(self, search: Search) -> Flow[int]:
        codec = self.codec(search.obj)
        what = f"count {search.obj.name}"
        params = self.query(codec, search.filters, search.advanced_filter)
        url = self.entity_set_url(search.obj) + "/$count"
        response = yield self.call("GET", url, what, params, {"Accept": "text/plain"})
        self.check(response, what)
        with self.decoding(what):
            return int(response.text.strip())

    def get(self, obj: ObjectDescriptor, key: Mapping[str, Any], formatted: bool = False) -> Flow[Any]:
        codec = self.codec(obj)
        url, name = self.entity_url(codec, key)
        return self._read(codec, url, f"get {name}", formatted)

    def _read(self, codec: _ObjectCodec, url: str, what: str, formatted: bool = False) -> Flow[Any]:
        headers = self.read_headers({}, formatted)
        response = yield self.call("GET", url, what, codec.read_params, headers)
        payload = self.payload(response, what)
        with self.decoding(what):
            return codec.decoder(formatted)(self.dialect.entity(payload), response.headers.get("etag"))

    def create(self, obj: ObjectDescriptor, record: Any, send: Names, links: Links) -> Flow[Any]:
        codec = self.codec(obj)
        what = f"create {obj.name}"
        body = codec.body(record, send, creating=True, links=links)
        response = yield from self._write(
            "POST", self.entity_set_url(obj), what, body, self.dialect.create_headers()
        )
        if response.status_code != 204 and response.content.strip():
            payload = self.payload(response, what)
            with self.decoding(what):
                return codec.decode(self.dialect.entity(payload), response.headers.get("etag"))
        location = response.headers.get("odata-entityid") or response.headers.get("location")
        if location:
            return (yield from self._read(codec, self.rebase(location), what))
        return record

    def update(
        self, obj: ObjectDescriptor, key: Key, record: Any, send: Names, etag: str | None, links: Links
    ) -> Flow[None]:
        codec = self.codec(obj)
        url, name = self.entity_url(codec, key)
        body = codec.body(record, send, creating=False, links=links)
        headers = {**self.dialect.update_headers(), **({"If-Match": etag} if etag else {})}
        yield from self._write(None, url, f"update {name}", body, headers, etag_scope=obj.name)

    def delete(self, obj: ObjectDescriptor, key: Mapping[str, Any], etag: str | None) -> Flow[None]:
        url, name = self.entity_url(self.codec(obj), key)
        headers = {"If-Match": etag} if etag else {}
        yield from self._write("DELETE", url, f"delete {name}", None, headers, etag_scope=obj.name)

    def _write(
        self,
        method: str | None,
        url: str,
        what: str,
        body: Any,
        headers: Mapping[str, str],
        etag_scope: str | None = None,
    ) -> Flow[httpx.Response]:
        """One write with SAP CSRF handling.

        ``method=None`` means this service's update method; ``etag_scope`` (the entity set) marks
        writes to an existing record, which may need ``If-Match``.
        """
        headers = dict(headers)
        if etag_scope and "If-Match" not in headers and (self.if_match or etag_scope in self.etag_required):
            headers["If-Match"] = self.if_match or "*"
        csrf_retried = precondition_retried = False
        if not self.csrf_fetched:
            yield from self._fetch_csrf(what)
        while True:
            verb = method or self.update_method
            sent = {**headers, "X-CSRF-Token": self.csrf_token} if self.csrf_token else headers
            response = yield self.call(verb, url, what, None, sent, body)
            status = response.status_code
            if (
                status == 403
                and not csrf_retried
                and response.headers.get("x-csrf-token", "").lower() == "required"
            ):
                csrf_retried = True
                yield from self._fetch_csrf(what)
                continue
            if status == 428 and etag_scope and not precondition_retried and "If-Match" not in headers:
                precondition_retried = True
                self.etag_required.add(etag_scope)
                headers["If-Match"] = "*"
                continue
            if status in (405, 501) and verb == "MERGE":
                self.update_method = "PATCH"
                continue
            self.check(response, what)
            return response

    def _fetch_csrf(self, what: str) -> Flow[None]:
        response = yield self.call("GET", self.root, what, None, {"X-CSRF-Token": "Fetch"})
        if response.status_code == 401:
            raise error_from_response(response, what)
        token = response.headers.get("x-csrf-token")
        self.csrf_token = token if token and token.lower() not in ("required", "unsafe") else None
        self.csrf_fetched = True


# --------------------------------------------------------------------------------------------
# The clients: the shared shells around the core
# --------------------------------------------------------------------------------------------


class Client(client.ClientBase, core=_Core):
    """Synchronous OData client for one service; use as a context manager or call close()."""


class AsyncClient(client.AsyncClientBase, core=_Core):
    """Asynchronous twin of :class:`Client`; use with ``async with`` or call aclose()."""
