"""A real HTTP server on 127.0.0.1 whose routes each test sets, for the metadata-fetch tests."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field

import pytest
from aiohttp import web

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


@dataclass
class LocalServer:
    base_url: str
    port: int
    routes: dict[str, Handler] = field(default_factory=dict)
    seen: list[web.Request] = field(default_factory=list)
    # Slow handlers wait on this; teardown sets it so no handler outlives its test.
    release: asyncio.Event = field(default_factory=asyncio.Event)

    def url(self, path: str) -> str:
        return f"{self.base_url}{path}"


@pytest.fixture
async def local_server() -> AsyncIterator[LocalServer]:
    server: LocalServer | None = None

    async def dispatch(request: web.Request) -> web.StreamResponse:
        assert server is not None
        server.seen.append(request)
        handler = server.routes.get(request.path)
        if handler is None:
            return web.Response(status=404, text="no such route")
        return await handler(request)

    app = web.Application()
    app.router.add_route("*", "/{tail:.*}", dispatch)
    runner = web.AppRunner(app, handler_cancellation=True, shutdown_timeout=1.0)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = runner.addresses[0][1]
    server = LocalServer(base_url=f"http://127.0.0.1:{port}", port=port)
    try:
        yield server
    finally:
        server.release.set()
        await runner.cleanup()
