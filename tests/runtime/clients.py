"""Open the sync or the async OData client behind one blocking interface.

Every scenario then runs against both twins without a copy per flavour: the async client is
driven on its own event loop, through a real httpx.AsyncClient.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

import httpx

from providers.runtime.connection import Connection
from providers.runtime.odata import AsyncClient, Client
from providers.runtime.records import ServiceDescriptor

FLAVORS = ("sync", "async")


class BlockingAsyncClient:
    """Calls an AsyncClient's coroutine methods to completion on a private event loop."""

    def __init__(self, client: AsyncClient, loop: asyncio.AbstractEventLoop) -> None:
        self._client = client
        self._loop = loop

    def __getattr__(self, name: str) -> Callable[..., Any]:
        method = getattr(self._client, name)

        def call(*args: Any, **kwargs: Any) -> Any:
            return self._loop.run_until_complete(method(*args, **kwargs))

        return call


@contextmanager
def open_client(
    flavor: str,
    connection: Connection,
    service: ServiceDescriptor,
    transport: httpx.MockTransport | None = None,
) -> Iterator[Any]:
    """A Client (``flavor="sync"``) or a blocking view of an AsyncClient, closed on exit."""
    if flavor == "sync":
        http = httpx.Client(transport=transport) if transport is not None else None
        try:
            with Client(connection, service, http=http) as client:
                yield client
        finally:
            if http is not None:
                http.close()
        return
    loop = asyncio.new_event_loop()
    async_http = httpx.AsyncClient(transport=transport) if transport is not None else None
    async_client = AsyncClient(connection, service, http=async_http)
    try:
        yield BlockingAsyncClient(async_client, loop)
    finally:
        loop.run_until_complete(async_client.aclose())
        if async_http is not None:
            loop.run_until_complete(async_http.aclose())
        loop.close()
