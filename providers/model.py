"""The neutral object model every provider produces and the generator consumes.

A provider turns whatever the external system describes (an OData ``$metadata`` document,
Salesforce describe payloads, Graph list columns) into a :class:`Catalog`. Nothing here knows
which system it came from: provider-specific details the generated runtime needs travel in the
opaque, JSON-serialisable ``runtime`` mappings.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import asdict, dataclass, field, replace
from enum import StrEnum
from typing import Any


class ValueType(StrEnum):
    """The Python-side type of an attribute, independent of the wire format."""

    STRING = "string"
    INTEGER = "integer"
    DECIMAL = "decimal"
    FLOAT = "float"
    BOOLEAN = "boolean"
    DATETIME = "datetime"  # timezone-aware datetime
    DATE = "date"
    TIME = "time"
    DURATION = "duration"  # timedelta
    GUID = "guid"  # uuid.UUID
    BINARY = "binary"  # bytes
    ENUM = "enum"  # one of EnumType's members
    JSON = "json"  # anything else (geo types, complex values, streams): passed through as JSON


@dataclass(frozen=True, slots=True)
class EnumMember:
    name: str  # the system's member name (e.g. OData enum member, picklist API value)
    value: str | int  # what travels on the wire
    label: str = ""


@dataclass(frozen=True, slots=True)
class EnumType:
    name: str  # the system's type name, e.g. "Namespace.Color" or "Account_Industry"
    members: tuple[EnumMember, ...]
    flags: bool = False


@dataclass(frozen=True, slots=True)
class Attribute:
    name: str  # wire name, exactly as the external system spells it
    type: ValueType
    wire_type: str  # the system's own type name ("Edm.Decimal", "picklist", ...)
    label: str = ""
    key: bool = False
    nullable: bool = True
    creatable: bool = True  # may be sent on create
    updatable: bool = True  # may be sent on update
    filterable: bool = True
    sortable: bool = True
    max_length: int | None = None
    precision: int | None = None
    scale: int | None = None
    enum: EnumType | None = None
    collection: bool = False  # a collection of values (OData Collection(...), multi-select picklist)
    runtime: Mapping[str, Any] = field(default_factory=dict)
    # The object (its ObjectDef name) whose key this attribute holds, for a lookup with one target:
    # the generator types it with that object's id type. None: a plain value (or many targets).
    reference_to: str | None = None

    @property
    def read_only(self) -> bool:
        return not self.creatable and not self.updatable


@dataclass(frozen=True, slots=True)
class Navigation:
    """A relation to another object that can be expanded when reading, and maybe set when writing."""

    name: str  # wire name of the navigation property / relationship
    target: str  # name of the target ObjectDef (its entity set / object name), "" if not exposed
    many: bool
    label: str = ""
    # create/update may point it at another record of ``target`` (a lookup, OData ``@odata.bind``)
    settable: bool = False


@dataclass(frozen=True, slots=True)
class Capabilities:
    queryable: bool = True  # search / get
    countable: bool = True
    creatable: bool = True
    updatable: bool = True
    deletable: bool = True
    pageable: bool = True  # server honours skip/top
    filterable: bool = True
    sortable: bool = True
    readable_by_key: bool = True


@dataclass(frozen=True, slots=True)
class ObjectDef:
    """One selectable object: an entity set, a table, a list, an sObject."""

    name: str  # wire name used in URLs / queries (entity set name, sObject name, list id)
    entity_name: str  # the singular type name (entity type, sObject, list name)
    label: str
    attributes: tuple[Attribute, ...]
    navigations: tuple[Navigation, ...] = ()
    capabilities: Capabilities = Capabilities()
    description: str = ""
    group: str = ""  # used by the object picker to order / group (e.g. "Dynamics 365")
    runtime: Mapping[str, Any] = field(default_factory=dict)
    # Only listed (name, label, capabilities), not described: no attributes or navigations yet.
    # Systems with many objects list them cheaply and describe the few a user picks (see
    # providers/base.py: complete_catalog).
    outline: bool = False

    @property
    def keys(self) -> tuple[Attribute, ...]:
        return tuple(a for a in self.attributes if a.key)

    def attribute(self, name: str) -> Attribute:
        for a in self.attributes:
            if a.name == name:
                return a
        raise KeyError(name)


@dataclass(frozen=True, slots=True)
class Catalog:
    """Everything a provider discovered about one service / instance / site."""

    provider: str  # the provider key
    service_name: str  # e.g. "GWSAMPLE_BASIC", used to suggest a module name
    title: str
    objects: tuple[ObjectDef, ...]
    runtime: Mapping[str, Any] = field(default_factory=dict)  # e.g. {"odata_version": "2.0"}
    source_sha256: str = ""

    def object(self, name: str) -> ObjectDef:
        for o in self.objects:
            if o.name == name:
                return o
        raise KeyError(name)

    def object_names(self) -> list[str]:
        return [o.name for o in self.objects]

    def outlined(self, names: Iterable[str]) -> list[str]:
        """Those of ``names`` whose objects are only outlined (unknown names are left out)."""
        wanted = set(names)
        return [o.name for o in self.objects if o.outline and o.name in wanted]

    def with_objects(self, described: Iterable[ObjectDef]) -> Catalog:
        """This catalog with the objects of the same names replaced by ``described``, in place."""
        by_name = {o.name: o for o in described}
        return replace(self, objects=tuple(by_name.get(o.name, o) for o in self.objects))


def catalog_to_dict(catalog: Catalog) -> dict[str, Any]:
    """A JSON-serialisable form of ``catalog`` (for the draft's catalog cache and publish jobs)."""
    return asdict(catalog)


def catalog_from_dict(data: Mapping[str, Any]) -> Catalog:
    """The inverse of :func:`catalog_to_dict`."""

    def enum_type(raw: Mapping[str, Any] | None) -> EnumType | None:
        if raw is None:
            return None
        members = tuple(EnumMember(**m) for m in raw["members"])
        return EnumType(name=raw["name"], members=members, flags=raw.get("flags", False))

    def attribute(raw: Mapping[str, Any]) -> Attribute:
        values = dict(raw)
        values["type"] = ValueType(values["type"])
        values["enum"] = enum_type(values.get("enum"))
        return Attribute(**values)

    def object_def(raw: Mapping[str, Any]) -> ObjectDef:
        values = dict(raw)
        values["attributes"] = tuple(attribute(a) for a in raw["attributes"])
        values["navigations"] = tuple(Navigation(**n) for n in raw.get("navigations", ()))
        values["capabilities"] = Capabilities(**raw.get("capabilities", {}))
        return ObjectDef(**values)

    values = dict(data)
    values["objects"] = tuple(object_def(o) for o in data["objects"])
    return Catalog(**values)
