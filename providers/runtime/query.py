"""Filters, ordering and pages: the query vocabulary shared by every generated package."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from enum import Enum
from typing import Any, Generic, TypeVar

T = TypeVar("T")


class FilterOperator(Enum):
    EQUAL = "eq"
    NOT_EQUAL = "ne"
    GREATER = "gt"
    GREATER_OR_EQUAL = "ge"
    LESS = "lt"
    LESS_OR_EQUAL = "le"
    STARTS_WITH = "startswith"
    ENDS_WITH = "endswith"
    CONTAINS = "contains"
    EQUAL_IGNORE_CASE = "eq_ci"
    STARTS_WITH_IGNORE_CASE = "startswith_ci"
    ENDS_WITH_IGNORE_CASE = "endswith_ci"
    CONTAINS_IGNORE_CASE = "contains_ci"

    @property
    def ignore_case(self) -> bool:
        return self.value.endswith("_ci")


class SortDirection(Enum):
    ASCENDING = "asc"
    DESCENDING = "desc"


@dataclass(frozen=True, slots=True)
class BasicFilter:
    """``attribute operator value``; several filters are combined with AND.

    ``attribute`` is a member of the object's ``<Object>Attribute`` enum. The value is encoded by
    the driver for the wire; it is never pasted into a query string as is.
    """

    attribute: Enum
    operator: FilterOperator
    value: Any


@dataclass(frozen=True, slots=True)
class OrderBy:
    attribute: Enum
    direction: SortDirection = SortDirection.ASCENDING


@dataclass(slots=True)
class Page(Generic[T]):
    """One page of search results.

    ``total_count`` is the number of matching records when the system reports it; ``next_link``
    is the server's pointer to the next page (or ``None`` on the last page). The next page is read
    the way this one was (``formatted_values``).
    """

    items: list[T]
    total_count: int | None = None
    next_link: str | None = None
    skip: int = 0
    top: int = 0
    object_name: str = field(default="", repr=False)
    formatted_values: bool = field(default=False, repr=False)

    @property
    def has_next(self) -> bool:
        return self.next_link is not None

    def __iter__(self) -> Any:
        return iter(self.items)

    def __len__(self) -> int:
        return len(self.items)


Filters = Sequence[BasicFilter]
Ordering = Sequence[OrderBy]
