"""OData values on the wire: decoding, encoding, $filter literals, key predicates, request bodies.

Pure: these build the client's shared core and look at what it would send or how it reads a
payload, without a server. The same behaviours run against the real CAP server in
test_odata_cap.py.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta, timezone
from decimal import Decimal
from enum import Enum
from typing import Any
from uuid import UUID

import pytest
from hypothesis import given
from hypothesis import strategies as st

from providers.runtime.connection import Connection
from providers.runtime.odata import _Core
from providers.runtime.query import BasicFilter, FilterOperator, OrderBy, SortDirection
from providers.runtime.records import (
    FieldDescriptor,
    NavigationDescriptor,
    ObjectDescriptor,
    Record,
    ServiceDescriptor,
)

from .shop import Category, Product, ProductAttribute, shop_service

GUID = UUID("f07f7751-e3b3-5e1d-a5e5-f90085422fbb")
PLUS_ONE = timezone(timedelta(hours=1))


class Color(Enum):
    RED = "Red"
    GREEN = "Green"


class Level(Enum):
    LOW = 1
    HIGH = 2


@dataclass(slots=True)
class Holder(Record):
    value: Any = None
    other: Any = None


class HolderAttribute(Enum):
    VALUE = "Value"
    OTHER = "Other"


def holder(version: str, wire_type: str, value_type: str = "string", **options: Any) -> tuple[_Core, Any]:
    """A one-attribute object of ``wire_type`` and the client core that serves it."""
    obj = ObjectDescriptor(
        name="Holders",
        entity_name="Holder",
        model=Holder,
        fields=(
            FieldDescriptor("value", "Value", wire_type, value_type, **options),
            FieldDescriptor("other", "Other", "Edm.String", "string", key=True),
        ),
    )
    service = ServiceDescriptor("test", "1", {"odata_version": version}, {"Holders": obj})
    core = _Core(Connection("http://127.0.0.1:9/svc"), service)
    return core, core.codec(obj)


DECODED = [
    ("2.0", "Edm.String", "string", "O'Neil", "O'Neil"),
    ("2.0", "Edm.Boolean", "boolean", True, True),
    ("2.0", "Edm.Byte", "integer", 255, 255),
    ("2.0", "Edm.SByte", "integer", -128, -128),
    ("2.0", "Edm.Int16", "integer", "-32768", -32768),
    ("2.0", "Edm.Int32", "integer", 2147483647, 2147483647),
    ("2.0", "Edm.Int64", "integer", "9007199254740993", 9007199254740993),
    ("2.0", "Edm.Decimal", "decimal", "12345678901234567890.12", Decimal("12345678901234567890.12")),
    ("2.0", "Edm.Double", "float", "1.5E+01", 15.0),
    ("2.0", "Edm.Single", "float", 2.5, 2.5),
    ("2.0", "Edm.Float", "float", "2.5", 2.5),
    ("2.0", "Edm.DateTime", "datetime", "/Date(1577836800000)/", datetime(2020, 1, 1, tzinfo=UTC)),
    ("2.0", "Edm.DateTime", "datetime", "/Date(-86400000)/", datetime(1969, 12, 31, tzinfo=UTC)),
    ("2.0", "Edm.DateTime", "date", "/Date(1454371200000)/", date(2016, 2, 2)),
    ("2.0", "Edm.DateTime", "datetime", "2020-01-01T00:00:00", datetime(2020, 1, 1, tzinfo=UTC)),
    (
        "2.0",
        "Edm.DateTimeOffset",
        "datetime",
        "/Date(1577836800123+0000)/",
        datetime(2020, 1, 1, 0, 0, 0, 123000, tzinfo=UTC),
    ),
    ("2.0", "Edm.DateTimeOffset", "datetime", "2020-01-01T01:00:00+01:00", datetime(2020, 1, 1, tzinfo=UTC)),
    ("2.0", "Edm.Time", "time", "PT12H30M15S", time(12, 30, 15)),
    ("2.0", "Edm.Time", "time", "PT9H5M", time(9, 5)),
    ("2.0", "Edm.Guid", "guid", str(GUID), GUID),
    ("2.0", "Edm.Binary", "binary", "AQID/w==", b"\x01\x02\x03\xff"),
    ("2.0", "Collection(Edm.String)", "string", {"results": ["a", "b"]}, ["a", "b"]),
    ("2.0", "API_TEST_SRV.A_TestComplexType", "json", {"StringProperty": "x"}, {"StringProperty": "x"}),
    ("2.0", "Edm.SomethingTheSDKDoesNotSupport", "json", "raw", "raw"),
    ("4.0", "Edm.String", "string", "é😀", "é😀"),
    ("4.0", "Edm.Int64", "integer", 9007199254740993, 9007199254740993),
    ("4.0", "Edm.Int64", "integer", "9007199254740993", 9007199254740993),
    ("4.0", "Edm.Decimal", "decimal", 797.2, Decimal("797.2")),
    ("4.0", "Edm.Decimal", "decimal", "0.10", Decimal("0.10")),
    ("4.0", "Edm.Double", "float", "INF", math.inf),
    ("4.0", "Edm.Double", "float", -1.5e-300, -1.5e-300),
    ("4.0", "Edm.Date", "date", "2020-02-29", date(2020, 2, 29)),
    (
        "4.0",
        "Edm.DateTimeOffset",
        "datetime",
        "2020-01-01T10:00:00.1234567+02:00",
        datetime(2020, 1, 1, 8, 0, 0, 123456, tzinfo=UTC),
    ),
    ("4.0", "Edm.DateTimeOffset", "datetime", "2020-01-01T00:00:00Z", datetime(2020, 1, 1, tzinfo=UTC)),
    ("4.0", "Edm.TimeOfDay", "time", "23:59:59.999", time(23, 59, 59, 999000)),
    ("4.0", "Edm.Duration", "duration", "P1DT2H3M4.5S", timedelta(days=1, hours=2, minutes=3, seconds=4.5)),
    ("4.0", "Edm.Duration", "duration", "-PT1H", timedelta(hours=-1)),
    ("4.0", "Edm.Guid", "guid", str(GUID).upper(), GUID),
    ("4.0", "Edm.Binary", "binary", "-_8", b"\xfb\xff"),
    ("4.0", "Collection(Edm.Int32)", "integer", [1, 2], [1, 2]),
    (
        "4.0",
        "Edm.GeographyPoint",
        "json",
        {"type": "Point", "coordinates": [8.6, 49.3]},
        {"type": "Point", "coordinates": [8.6, 49.3]},
    ),
]


@pytest.mark.parametrize(("version", "wire_type", "value_type", "wire", "expected"), DECODED)
def test_values_are_decoded_to_python_types(
    version: str, wire_type: str, value_type: str, wire: Any, expected: Any
) -> None:
    _core, codec = holder(version, wire_type, value_type)
    record = codec.decode({"Value": wire, "Other": "k"}, None)
    assert record.value == expected
    assert type(record.value) is type(expected)
    if isinstance(expected, datetime):
        assert record.value.tzinfo is not None


def test_datetime_offset_keeps_the_servers_offset() -> None:
    _core, codec = holder("2.0", "Edm.DateTimeOffset", "datetime")
    record = codec.decode({"Value": "/Date(1577836800000+0060)/"}, None)
    assert record.value.utcoffset() == timedelta(hours=1)
    assert record.value == datetime(2020, 1, 1, tzinfo=UTC)


ENCODED = [
    ("2.0", "Edm.String", "string", "x", "x"),
    ("2.0", "Edm.Int32", "integer", 7, 7),
    ("2.0", "Edm.Int64", "integer", 9007199254740993, "9007199254740993"),
    ("2.0", "Edm.Decimal", "decimal", Decimal("1E+2"), "100"),
    ("2.0", "Edm.Decimal", "decimal", 0.1, "0.1"),
    ("2.0", "Edm.Double", "float", 1.5, "1.5"),
    ("2.0", "Edm.DateTime", "datetime", datetime(2020, 1, 1, tzinfo=UTC), "/Date(1577836800000)/"),
    ("2.0", "Edm.DateTime", "datetime", datetime(2020, 1, 1, 1, tzinfo=PLUS_ONE), "/Date(1577836800000)/"),
    ("2.0", "Edm.DateTime", "datetime", datetime(2020, 1, 1), "/Date(1577836800000)/"),
    ("2.0", "Edm.DateTime", "date", date(2016, 2, 2), "/Date(1454371200000)/"),
    (
        "2.0",
        "Edm.DateTimeOffset",
        "datetime",
        datetime(2020, 1, 1, 1, tzinfo=PLUS_ONE),
        "/Date(1577836800000+0000)/",
    ),
    ("2.0", "Edm.Time", "time", time(9, 5, 3), "PT09H05M03S"),
    ("2.0", "Edm.Time", "time", time(23, 0, 0, 500000), "PT23H00M00.5S"),
    ("2.0", "Edm.Guid", "guid", GUID, str(GUID)),
    ("2.0", "Edm.Binary", "binary", b"\x01\x02\x03\xff", "AQID/w=="),
    ("2.0", "Collection(Edm.String)", "string", ["a"], {"results": ["a"]}),
    ("4.0", "Edm.Int64", "integer", 9007199254740993, "9007199254740993"),
    ("4.0", "Edm.Decimal", "decimal", Decimal("12.30"), "12.30"),
    ("4.0", "Edm.Double", "float", 1.5, 1.5),
    ("4.0", "Edm.Double", "float", math.nan, "NaN"),
    ("4.0", "Edm.Single", "float", -math.inf, "-INF"),
    ("4.0", "Edm.Date", "date", date(2020, 2, 29), "2020-02-29"),
    (
        "4.0",
        "Edm.DateTimeOffset",
        "datetime",
        datetime(2020, 1, 1, 10, tzinfo=timezone(timedelta(hours=2))),
        "2020-01-01T08:00:00Z",
    ),
    ("4.0", "Edm.TimeOfDay", "time", time(12, 30, 15), "12:30:15"),
    ("4.0", "Edm.Duration", "duration", timedelta(days=1, seconds=4.5), "P1DT0H0M4.5S"),
    ("4.0", "Edm.Duration", "duration", timedelta(hours=-1), "-P0DT1H0M0S"),
    ("4.0", "Edm.Binary", "binary", b"\xfb\xff", "-_8="),
    ("4.0", "Collection(Edm.Guid)", "guid", [GUID], [str(GUID)]),
    (
        "4.0",
        "Edm.GeographyPoint",
        "json",
        {"type": "Point", "coordinates": [1, 2]},
        {"type": "Point", "coordinates": [1, 2]},
    ),
]


@pytest.mark.parametrize(("version", "wire_type", "value_type", "value", "wire"), ENCODED)
def test_values_are_encoded_for_the_wire(
    version: str, wire_type: str, value_type: str, value: Any, wire: Any
) -> None:
    _core, codec = holder(version, wire_type, value_type)
    assert codec.body(Holder(value=value), ["Value"], creating=True) == {"Value": wire}


@given(
    st.datetimes(timezones=st.just(UTC)).map(lambda d: d.replace(microsecond=d.microsecond // 1000 * 1000))
)
def test_v2_datetimes_survive_a_round_trip_to_the_millisecond(moment: datetime) -> None:
    _core, codec = holder("2.0", "Edm.DateTime", "datetime")
    wire = codec.body(Holder(value=moment), ["Value"], creating=True)["Value"]
    assert codec.decode({"Value": wire}, None).value == moment


@given(st.timedeltas(min_value=timedelta(days=-9999), max_value=timedelta(days=9999)))
def test_v4_durations_survive_a_round_trip(span: timedelta) -> None:
    _core, codec = holder("4.0", "Edm.Duration", "duration")
    wire = codec.body(Holder(value=span), ["Value"], creating=True)["Value"]
    assert codec.decode({"Value": wire}, None).value == span


@given(st.decimals(allow_nan=False, allow_infinity=False, places=4))
def test_decimals_keep_every_digit(number: Decimal) -> None:
    for version in ("2.0", "4.0"):
        _core, codec = holder(version, "Edm.Decimal", "decimal")
        wire = codec.body(Holder(value=number), ["Value"], creating=True)["Value"]
        assert "E" not in wire.upper()
        assert codec.decode({"Value": wire}, None).value == number


def test_enums_decode_by_value_or_member_name_and_keep_unknown_values() -> None:
    _core, codec = holder("4.0", "NS.Color", "enum", enum=Color)
    assert codec.decode({"Value": "Green"}, None).value is Color.GREEN
    assert codec.decode({"Value": "Purple"}, None).value == "Purple"
    _core, codec = holder("4.0", "NS.Level", "enum", enum=Level)
    assert codec.decode({"Value": "HIGH"}, None).value is Level.HIGH
    assert codec.decode({"Value": "2"}, None).value is Level.HIGH
    assert codec.body(Holder(value=Level.LOW), ["Value"], creating=True) == {"Value": "1"}
    _core, codec = holder("4.0", "Collection(NS.Color)", "enum", enum=Color)
    assert codec.decode({"Value": ["Red", "Green"]}, None).value == [Color.RED, Color.GREEN]
    assert codec.body(Holder(value=[Color.RED]), ["Value"], creating=True) == {"Value": ["Red"]}


def test_v2_string_enums_travel_as_their_value() -> None:
    _core, codec = holder("2.0", "Edm.String", "enum", enum=Color)
    assert codec.decode({"Value": "Red"}, None).value is Color.RED
    assert codec.body(Holder(value=Color.GREEN), ["Value"], creating=True) == {"Value": "Green"}


def test_nulls_and_missing_attributes_are_reported() -> None:
    _core, codec = holder("4.0", "Edm.Int32", "integer")
    record = codec.decode({"Value": None, "@odata.etag": 'W/"1"'}, None)
    assert record.value is None
    assert record.null_attributes == frozenset({"value", "other"})
    assert record.etag == 'W/"1"'
    full = codec.decode({"Value": 0, "Other": ""}, 'W/"header"')
    assert full.null_attributes == frozenset()
    assert full.value == 0
    assert full.etag == 'W/"header"'


def test_v2_etag_comes_from_metadata() -> None:
    _core, codec = holder("2.0", "Edm.Int32", "integer")
    record = codec.decode({"Value": 1, "__metadata": {"uri": "x", "etag": "W/\"datetime'2020'\""}}, None)
    assert record.etag == "W/\"datetime'2020'\""


# --- $filter and $orderby -------------------------------------------------------------------

LITERALS = [
    ("2.0", "Edm.String", "string", "O'Neil", "Value eq 'O''Neil'"),
    ("2.0", "Edm.Boolean", "boolean", False, "Value eq false"),
    ("2.0", "Edm.Int32", "integer", -3, "Value eq -3"),
    ("2.0", "Edm.Int64", "integer", 12, "Value eq 12L"),
    ("2.0", "Edm.Decimal", "decimal", Decimal("12.50"), "Value eq 12.50M"),
    ("2.0", "Edm.Double", "float", 1.5, "Value eq 1.5d"),
    ("2.0", "Edm.Single", "float", 2.0, "Value eq 2.0f"),
    (
        "2.0",
        "Edm.DateTime",
        "datetime",
        datetime(2020, 1, 1, 1, tzinfo=PLUS_ONE),
        "Value eq datetime'2020-01-01T00:00:00'",
    ),
    ("2.0", "Edm.DateTime", "date", date(2016, 2, 2), "Value eq datetime'2016-02-02T00:00:00'"),
    (
        "2.0",
        "Edm.DateTimeOffset",
        "datetime",
        datetime(2020, 1, 1, 1, tzinfo=PLUS_ONE),
        "Value eq datetimeoffset'2020-01-01T00:00:00Z'",
    ),
    ("2.0", "Edm.Time", "time", time(12, 30), "Value eq time'PT12H30M00S'"),
    ("2.0", "Edm.Guid", "guid", GUID, f"Value eq guid'{GUID}'"),
    ("2.0", "Edm.Binary", "binary", b"\x01\xab", "Value eq X'01AB'"),
    ("2.0", "Edm.String", "string", None, "Value eq null"),
    ("4.0", "Edm.String", "string", "it's", "Value eq 'it''s'"),
    ("4.0", "Edm.Int64", "integer", 12, "Value eq 12"),
    ("4.0", "Edm.Decimal", "decimal", Decimal("12.50"), "Value eq 12.50"),
    ("4.0", "Edm.Double", "float", 1e-05, "Value eq 1e-05"),
    ("4.0", "Edm.Date", "date", date(2020, 1, 1), "Value eq 2020-01-01"),
    (
        "4.0",
        "Edm.DateTimeOffset",
        "datetime",
        datetime(2020, 1, 1, 1, tzinfo=PLUS_ONE),
        "Value eq 2020-01-01T00:00:00Z",
    ),
    ("4.0", "Edm.TimeOfDay", "time", time(12, 30), "Value eq 12:30:00"),
    ("4.0", "Edm.Duration", "duration", timedelta(hours=1), "Value eq duration'P0DT1H0M0S'"),
    ("4.0", "Edm.Guid", "guid", GUID, f"Value eq {GUID}"),
    ("4.0", "Edm.Binary", "binary", b"\xfb\xff", "Value eq binary'-_8='"),
]


@pytest.mark.parametrize(("version", "wire_type", "value_type", "value", "expected"), LITERALS)
def test_filter_literals_are_typed_per_version(
    version: str, wire_type: str, value_type: str, value: Any, expected: str
) -> None:
    core, codec = holder(version, wire_type, value_type)
    query = core.query(codec, [BasicFilter(HolderAttribute.VALUE, FilterOperator.EQUAL, value)], None)
    assert query == {"$filter": expected}


def test_v4_enum_filter_literal_names_the_enum_type() -> None:
    core, codec = holder("4.0", "NS.Color", "enum", enum=Color)
    query = core.query(codec, [BasicFilter(HolderAttribute.VALUE, FilterOperator.NOT_EQUAL, Color.RED)], None)
    assert query == {"$filter": "Value ne NS.Color'Red'"}


OPERATORS = [
    (FilterOperator.GREATER_OR_EQUAL, "Other ge 'b'", "Other ge 'b'"),
    (FilterOperator.LESS, "Other lt 'b'", "Other lt 'b'"),
    (FilterOperator.STARTS_WITH, "startswith(Other,'Ab') eq true", "startswith(Other,'Ab')"),
    (FilterOperator.ENDS_WITH, "endswith(Other,'Ab') eq true", "endswith(Other,'Ab')"),
    (FilterOperator.CONTAINS, "substringof('Ab',Other) eq true", "contains(Other,'Ab')"),
    (FilterOperator.EQUAL_IGNORE_CASE, "tolower(Other) eq 'ab'", "tolower(Other) eq 'ab'"),
    (
        FilterOperator.STARTS_WITH_IGNORE_CASE,
        "startswith(tolower(Other),'ab') eq true",
        "startswith(tolower(Other),'ab')",
    ),
    (
        FilterOperator.CONTAINS_IGNORE_CASE,
        "substringof('ab',tolower(Other)) eq true",
        "contains(tolower(Other),'ab')",
    ),
]


@pytest.mark.parametrize(("operator", "v2", "v4"), OPERATORS)
def test_operators_per_version(operator: FilterOperator, v2: str, v4: str) -> None:
    value = "b" if operator in (FilterOperator.GREATER_OR_EQUAL, FilterOperator.LESS) else "Ab"
    for version, expected in (("2.0", v2), ("4.0", v4)):
        core, codec = holder(version, "Edm.String")
        query = core.query(codec, [BasicFilter(HolderAttribute.OTHER, operator, value)], None)
        assert query["$filter"] == expected


def test_filters_combine_with_and_and_the_advanced_filter_stays_parenthesised() -> None:
    core, codec = holder("4.0", "Edm.Int32", "integer")
    filters = [
        BasicFilter(HolderAttribute.VALUE, FilterOperator.GREATER, 1),
        BasicFilter(HolderAttribute.OTHER, FilterOperator.CONTAINS, "x' or 1 eq 1 or Other eq '"),
    ]
    query = core.query(
        codec,
        filters,
        "Value eq 5 or Value eq 6",
        [OrderBy(HolderAttribute.VALUE, SortDirection.DESCENDING), OrderBy(HolderAttribute.OTHER)],
        "length(Other) desc",
    )
    assert query == {
        "$filter": "Value gt 1 and contains(Other,'x'' or 1 eq 1 or Other eq ''')"
        " and (Value eq 5 or Value eq 6)",
        "$orderby": "Value desc,Other asc,length(Other) desc",
    }
    assert core.query(codec, [], "Value eq 5 or Value eq 6") == {"$filter": "Value eq 5 or Value eq 6"}


def test_filter_on_an_unknown_attribute_is_refused() -> None:
    core, codec = holder("4.0", "Edm.Int32", "integer")
    with pytest.raises(ValueError, match="has no attribute 'name'"):
        core.query(codec, [BasicFilter(ProductAttribute.NAME, FilterOperator.EQUAL, 1)], None)


# --- key predicates ---------------------------------------------------------------------------


def keyed(version: str, *keys: tuple[str, str]) -> tuple[_Core, Any]:
    obj = ObjectDescriptor(
        name="Things",
        entity_name="Thing",
        model=Holder,
        fields=tuple(FieldDescriptor(wire.lower(), wire, t, "string", key=True) for wire, t in keys),
    )
    core = _Core(
        Connection("http://127.0.0.1:9/svc/"), ServiceDescriptor("t", "1", {"odata_version": version})
    )
    return core, core.codec(obj)


KEYS = [
    ("2.0", [("ID", "Edm.Int32")], {"ID": 1}, "(1)"),
    ("2.0", [("ID", "Edm.String")], {"ID": "a'b/c d?#"}, "('a''b%2Fc%20d%3F%23')"),
    ("2.0", [("ID", "Edm.Guid")], {"ID": GUID}, f"(guid'{GUID}')"),
    ("2.0", [("ID", "Edm.Int64")], {"ID": 5}, "(5L)"),
    (
        "2.0",
        [("ID", "Edm.DateTime")],
        {"ID": datetime(2020, 1, 1, tzinfo=UTC)},
        "(datetime'2020-01-01T00:00:00')",
    ),
    ("2.0", [("A", "Edm.Int32"), ("B", "Edm.String")], {"B": "x", "A": 1}, "(A=1,B='x')"),
    ("4.0", [("ID", "Edm.Guid")], {"ID": str(GUID)}, f"({GUID})"),
    ("4.0", [("ID", "Edm.Int64")], {"ID": 5}, "(5)"),
    ("4.0", [("ID", "Edm.String")], {"ID": "é"}, "('%C3%A9')"),
    (
        "4.0",
        [("Day", "Edm.Date"), ("Seq", "Edm.Int32")],
        {"day": date(2020, 1, 1), "Seq": 2},
        "(Day=2020-01-01,Seq=2)",
    ),
]


@pytest.mark.parametrize(("version", "keys", "key", "expected"), KEYS)
def test_key_predicates(
    version: str, keys: list[tuple[str, str]], key: dict[str, Any], expected: str
) -> None:
    core, codec = keyed(version, *keys)
    url, _name = core.entity_url(codec, key)
    assert url == "http://127.0.0.1:9/svc/Things" + expected


@pytest.mark.parametrize(
    ("key", "message"),
    [
        ({}, "'A' is missing"),
        ({"A": 1, "B": None}, "'B' is None"),
        ({"A": 1, "B": "x", "C": 3}, "C is not part"),
    ],
)
def test_bad_keys_are_refused(key: dict[str, Any], message: str) -> None:
    core, codec = keyed("4.0", ("A", "Edm.Int32"), ("B", "Edm.String"))
    with pytest.raises(ValueError, match=message):
        core.entity_url(codec, key)


# --- request bodies ---------------------------------------------------------------------------


def test_create_sends_creatable_attributes_that_are_set() -> None:
    core = _Core(Connection("http://127.0.0.1:9/svc/"), shop_service("2.0"))
    codec = core.codec(core.service.objects["Products"])
    product = Product(
        id=7,
        name="Tea",
        price=Decimal("1.50"),
        release_date=date(2020, 1, 1),
        modified_by="someone",
        created_at=datetime(2020, 1, 1, tzinfo=UTC),
    )
    assert codec.body(product, None, creating=True) == {
        "ID": 7,
        "name": "Tea",
        "price": "1.50",
        "releaseDate": "/Date(1577836800000)/",
    }


def test_update_leaves_out_the_key_and_read_only_attributes() -> None:
    core = _Core(Connection("http://127.0.0.1:9/svc/"), shop_service("4.0"))
    codec = core.codec(core.service.objects["Products"])
    product = Product(id=7, name="Tea", stock=3, modified_by="someone")
    assert codec.body(product, None, creating=False) == {"name": "Tea", "stock": 3}


def test_attributes_to_send_takes_python_or_wire_names_and_sends_none_as_null() -> None:
    core = _Core(Connection("http://127.0.0.1:9/svc/"), shop_service("4.0"))
    codec = core.codec(core.service.objects["Products"])
    product = Product(id=7, name="Tea", stock=3, description=None)
    body = codec.body(product, ["description", "stock", "category_ID", "ID", "modifiedBy"], creating=False)
    assert body == {"description": None, "stock": 3, "category_ID": None}
    with pytest.raises(ValueError, match="no attribute 'colour'"):
        codec.body(product, ["colour"], creating=False)


# --- expanded navigations ---------------------------------------------------------------------


def test_v2_expanded_navigations_become_models_or_stay_json() -> None:
    core = _Core(Connection("http://127.0.0.1:9/svc/"), shop_service("2.0", expand=True))
    codec = core.codec(core.service.objects["Products"])
    assert codec.read_params["$expand"] == "category,supplier"
    assert codec.read_params["$select"].endswith(",category,supplier")
    supplier = {"ID": str(GUID), "name": "Tokyo Traders", "__metadata": {"uri": "x"}}
    row = {
        "ID": 1,
        "category": {"ID": 2, "name": "Condiments", "products": {"__deferred": {"uri": "x"}}},
        "supplier": supplier,
    }
    product = codec.decode(row, None)
    assert product.category == Category(id=2, name="Condiments")
    assert product.category.null_attributes == frozenset({"description"})
    assert product.supplier == supplier
    categories = core.codec(core.service.objects["Categories"])
    category = categories.decode({"ID": 2, "products": {"results": [{"ID": 1, "name": "Tea"}]}}, None)
    assert category.products == [Product(id=1, name="Tea")]
    assert categories.decode({"ID": 2, "products": {"__deferred": {}}}, None).products is None


def test_v4_expanded_navigations_and_absent_ones() -> None:
    core = _Core(Connection("http://127.0.0.1:9/svc/"), shop_service("4.0", expand=True))
    codec = core.codec(core.service.objects["Products"])
    assert "category" not in codec.read_params["$select"].split(",")
    assert codec.decode({"ID": 1, "category": None}, None).category is None
    categories = core.codec(core.service.objects["Categories"])
    category = categories.decode({"ID": 2, "products": [{"ID": 1}, {"ID": 2}]}, None)
    assert [p.id for p in category.products] == [1, 2]
    assert categories.decode({"ID": 2}, None).products is None


def test_navigation_targets_unknown_to_the_package_stay_plain_json() -> None:
    obj = ObjectDescriptor(
        name="Holders",
        entity_name="Holder",
        model=Holder,
        fields=(FieldDescriptor("other", "Other", "Edm.String", "string", key=True),),
        navigations=(NavigationDescriptor("value", "Items", many=True, target="NotSelected"),),
        expand=("Items",),
    )
    core = _Core(Connection("http://127.0.0.1:9/svc/"), ServiceDescriptor("t", "1", {"odata_version": "2.0"}))
    record = core.codec(obj).decode({"Other": "k", "Items": {"results": [{"A": 1}]}}, None)
    assert record.value == [{"A": 1}]


def test_unsupported_odata_version_is_a_configuration_error() -> None:
    from providers.runtime.errors import ConfigurationError

    with pytest.raises(ConfigurationError, match=r"unsupported OData version '3\.0'"):
        _Core(Connection("http://127.0.0.1:9/"), ServiceDescriptor("t", "1", {"odata_version": "3.0"}))


def test_streams_are_neither_selected_nor_sent() -> None:
    obj = ObjectDescriptor(
        name="Holders",
        entity_name="Holder",
        model=Holder,
        fields=(
            FieldDescriptor("value", "Picture", "Edm.Stream", "json"),
            FieldDescriptor("other", "Other", "Edm.String", "string", key=True),
        ),
    )
    core = _Core(Connection("http://127.0.0.1:9/svc/"), ServiceDescriptor("t", "1", {"odata_version": "4.0"}))
    codec = core.codec(obj)
    assert codec.read_params == {"$select": "Other"}
    record = codec.decode({"Other": "k", "Picture@odata.mediaReadLink": "x"}, None)
    assert (record.value, record.null_attributes) == (None, frozenset())
    assert codec.body(Holder(value=b"png", other="k"), None, creating=True) == {"Other": "k"}
