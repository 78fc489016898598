"""Base class of generated model dataclasses and the descriptors the driver passes to a client."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from enum import Enum
from types import MappingProxyType
from typing import Any

_NO_FORMATTED_VALUES: Mapping[str, str] = MappingProxyType({})


class Record:
    """Base of every generated model.

    Besides its attributes, a record read from the system knows its ETag (for optimistic
    concurrency on update/delete), which attributes came back null and, when they were asked for,
    the values as the system formats them for display.
    """

    __slots__ = ("_ib_etag", "_ib_formatted", "_ib_nulls")

    @property
    def etag(self) -> str | None:
        return getattr(self, "_ib_etag", None)

    @property
    def null_attributes(self) -> frozenset[str]:
        """Python names of the attributes the system returned as null."""
        return getattr(self, "_ib_nulls", frozenset())

    @property
    def formatted_values(self) -> Mapping[str, str]:
        """The system's display strings of this record's attributes, by Python name.

        Only systems that format values offer them, and only for records read with
        ``formatted_values=True``: choice labels, numbers, money and dates formatted for the user,
        the name of the record a lookup points at. Attributes without one are absent.
        """
        return getattr(self, "_ib_formatted", _NO_FORMATTED_VALUES)

    def _ib_set_meta(self, etag: str | None, nulls: frozenset[str]) -> None:
        object.__setattr__(self, "_ib_etag", etag)
        object.__setattr__(self, "_ib_nulls", nulls)


@dataclass(frozen=True, slots=True)
class FieldDescriptor:
    attr: str  # Python attribute name on the model
    wire: str  # name on the wire
    wire_type: str  # the system's type name, e.g. "Edm.Decimal"
    value_type: str  # providers.model.ValueType value
    key: bool = False
    creatable: bool = True
    updatable: bool = True
    collection: bool = False
    enum: type[Enum] | None = None


@dataclass(frozen=True, slots=True)
class NavigationDescriptor:
    attr: str
    wire: str
    many: bool
    target: str | None = None  # ObjectDescriptor.name of the target when part of the package
    # A lookup that create/update may set (OData ``@odata.bind``): the entity set it points into
    # and the wire type of that entity set's key.
    bind_to: str | None = None
    bind_key_type: str = ""


@dataclass(frozen=True, slots=True)
class ObjectDescriptor:
    name: str  # wire name (entity set, sObject, list)
    entity_name: str
    model: Callable[..., Any]  # the generated dataclass
    fields: tuple[FieldDescriptor, ...]
    navigations: tuple[NavigationDescriptor, ...] = ()
    expand: tuple[str, ...] = ()  # wire names of navigations to expand on read
    runtime: Mapping[str, Any] = field(default_factory=dict)

    @property
    def keys(self) -> tuple[FieldDescriptor, ...]:
        return tuple(f for f in self.fields if f.key)


@dataclass(frozen=True, slots=True)
class ServiceDescriptor:
    integration: str  # the package's module name
    version: str
    runtime: Mapping[str, Any] = field(default_factory=dict)  # e.g. {"odata_version": "2.0"}
    objects: Mapping[str, ObjectDescriptor] = field(default_factory=dict)
