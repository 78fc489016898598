"""Base class of generated model dataclasses and the descriptors the driver passes to a client."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from enum import Enum
from typing import Any


class Record:
    """Base of every generated model.

    Besides its attributes, a record read from the system knows its ETag (for optimistic
    concurrency on update/delete) and which attributes came back null.
    """

    __slots__ = ("_ib_etag", "_ib_nulls")

    @property
    def etag(self) -> str | None:
        return getattr(self, "_ib_etag", None)

    @property
    def null_attributes(self) -> frozenset[str]:
        """Python names of the attributes the system returned as null."""
        return getattr(self, "_ib_nulls", frozenset())

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
