"""What a provider's runtime module offers the generated driver.

A runtime module (``odata``, ``salesforce``, ...) exposes ``Client`` and ``AsyncClient``
satisfying these protocols. Generated ``driver`` modules hold no protocol logic: they build
descriptors and call these methods. Keys are mappings of wire name -> Python value; records
are instances of the generated model dataclasses (subclasses of ``records.Record``).

Two keyword-only extras are optional: generated drivers pass them only where the descriptors
say the system supports them, so runtimes of other systems need not accept them.
``formatted_values: bool`` on ``search`` and ``get`` (``ServiceDescriptor.runtime["formatted_values"]``)
fills ``Record.formatted_values``; ``links: Mapping[str, Any]`` on ``create`` and ``update``
(navigation descriptors with ``bind_to``) sets lookups to the given keys (None clears one).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any, Protocol

from .query import BasicFilter, OrderBy, Page
from .records import ObjectDescriptor


class SyncClient(Protocol):
    def search(
        self,
        obj: ObjectDescriptor,
        filters: Sequence[BasicFilter] = (),
        advanced_filter: str | None = None,
        order_by: Sequence[OrderBy] = (),
        advanced_order_by: str | None = None,
        skip: int = 0,
        top: int = 50,
    ) -> Page[Any]: ...

    def next_page(self, obj: ObjectDescriptor, page: Page[Any]) -> Page[Any]: ...

    def count(
        self,
        obj: ObjectDescriptor,
        filters: Sequence[BasicFilter] = (),
        advanced_filter: str | None = None,
    ) -> int: ...

    def get(self, obj: ObjectDescriptor, key: Mapping[str, Any]) -> Any: ...

    def create(
        self, obj: ObjectDescriptor, record: Any, attributes_to_send: Sequence[str] | None = None
    ) -> Any: ...

    def update(
        self,
        obj: ObjectDescriptor,
        key: Mapping[str, Any],
        record: Any,
        attributes_to_send: Sequence[str] | None = None,
        etag: str | None = None,
    ) -> None: ...

    def delete(self, obj: ObjectDescriptor, key: Mapping[str, Any], etag: str | None = None) -> None: ...

    def close(self) -> None: ...


class AsyncClient(Protocol):
    async def search(
        self,
        obj: ObjectDescriptor,
        filters: Sequence[BasicFilter] = (),
        advanced_filter: str | None = None,
        order_by: Sequence[OrderBy] = (),
        advanced_order_by: str | None = None,
        skip: int = 0,
        top: int = 50,
    ) -> Page[Any]: ...

    async def next_page(self, obj: ObjectDescriptor, page: Page[Any]) -> Page[Any]: ...

    async def count(
        self,
        obj: ObjectDescriptor,
        filters: Sequence[BasicFilter] = (),
        advanced_filter: str | None = None,
    ) -> int: ...

    async def get(self, obj: ObjectDescriptor, key: Mapping[str, Any]) -> Any: ...

    async def create(
        self, obj: ObjectDescriptor, record: Any, attributes_to_send: Sequence[str] | None = None
    ) -> Any: ...

    async def update(
        self,
        obj: ObjectDescriptor,
        key: Mapping[str, Any],
        record: Any,
        attributes_to_send: Sequence[str] | None = None,
        etag: str | None = None,
    ) -> None: ...

    async def delete(
        self, obj: ObjectDescriptor, key: Mapping[str, Any], etag: str | None = None
    ) -> None: ...

    async def aclose(self) -> None: ...
