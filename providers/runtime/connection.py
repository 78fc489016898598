"""Connections: where and how a generated package reaches the external system.

An app either passes a :class:`Connection` explicitly (local use, tests) or lets the ``service``
layer resolve one from the Integration Manager with ``IB_MANAGER_URL`` and ``IB_RUNTIME_TOKEN``
(the token names the environment). Resolved connections are cached until they expire, so the
first call costs one manager round trip and later calls none.
"""

from __future__ import annotations

import asyncio
import os
import threading
import time
import weakref
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, TypeVar

import httpx

from .errors import ConfigurationError, IntegrationError, Unauthorized, error_for_status

T = TypeVar("T")


@dataclass(frozen=True, slots=True)
class BasicAuth:
    user: str
    password: str = field(repr=False)


@dataclass(frozen=True, slots=True)
class ApiKeyAuth:
    key: str = field(repr=False)
    header: str = "APIKey"


@dataclass(frozen=True, slots=True)
class BearerAuth:
    token: str = field(repr=False)


Auth = BasicAuth | ApiKeyAuth | BearerAuth


@dataclass(frozen=True, slots=True)
class Connection:
    """The service root URL plus credentials and per-request extras (headers, query params)."""

    url: str
    auth: Auth | None = None
    headers: Mapping[str, str] = field(default_factory=dict)
    params: Mapping[str, str] = field(default_factory=dict)
    timeout: float = 30.0
    verify: bool | str = True
    expires_at: float | None = None  # monotonic deadline for manager-issued credentials

    def auth_headers(self) -> dict[str, str]:
        auth = self.auth
        if isinstance(auth, BearerAuth):
            return {"Authorization": f"Bearer {auth.token}"}
        if isinstance(auth, ApiKeyAuth):
            return {auth.header: auth.key}
        return {}

    def httpx_auth(self) -> httpx.Auth | None:
        if isinstance(self.auth, BasicAuth):
            return httpx.BasicAuth(self.auth.user, self.auth.password)
        return None

    @property
    def expired(self) -> bool:
        return self.expires_at is not None and time.monotonic() >= self.expires_at


def connection_from_manager_answer(answer: Mapping[str, Any]) -> Connection:
    """Build a Connection from the Integration Manager's JSON answer."""
    auth_answer = answer.get("auth") or {}
    kind = auth_answer.get("type")
    auth: Auth | None
    if kind == "basic":
        auth = BasicAuth(str(auth_answer["user"]), str(auth_answer["password"]))
    elif kind == "api_key":
        auth = ApiKeyAuth(str(auth_answer["key"]), str(auth_answer.get("header") or "APIKey"))
    elif kind == "bearer":
        auth = BearerAuth(str(auth_answer["token"]))
    else:
        auth = None
    expires_in = answer.get("expires_in")
    return Connection(
        url=str(answer["url"]),
        auth=auth,
        headers={str(k): str(v) for k, v in (answer.get("headers") or {}).items()},
        params={str(k): str(v) for k, v in (answer.get("params") or {}).items()},
        expires_at=time.monotonic() + float(expires_in) if expires_in else None,
    )


class ManagerResolver:
    """Fetches and caches this integration's connection from the Integration Manager."""

    def __init__(self, integration: str) -> None:
        self.integration = integration
        self._cached: Connection | None = None
        self._lock = threading.Lock()
        # one per event loop: concurrent first calls of an async app share one manager request
        self._async_locks: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, asyncio.Lock] = (
            weakref.WeakKeyDictionary()
        )

    def _endpoint(self) -> tuple[str, dict[str, str]]:
        base = os.environ.get("IB_MANAGER_URL", "").rstrip("/")
        token = os.environ.get("IB_RUNTIME_TOKEN", "")
        if not base or not token:
            raise ConfigurationError(
                f"integration {self.integration!r}: no connection given and IB_MANAGER_URL / "
                "IB_RUNTIME_TOKEN are not set; pass a Connection explicitly or set both "
                "(the runtime token names the environment)"
            )
        url = f"{base}/manager/v1/integrations/{self.integration}/connection"
        return url, {"Authorization": f"Bearer {token}", "Accept": "application/json"}

    def _accept(self, response: httpx.Response) -> Connection:
        if response.status_code != 200:
            try:
                detail = str(response.json().get("error") or response.text)
            except ValueError:
                detail = response.text
            cls = ConfigurationError if response.status_code in (404, 409) else error_for_status(
                response.status_code
            )
            raise cls(
                f"Integration Manager: {detail}",
                status=response.status_code,
                request_id=response.headers.get("x-request-id"),
            )
        connection = connection_from_manager_answer(response.json())
        self._cached = connection
        return connection

    def cached(self) -> Connection | None:
        connection = self._cached
        if connection is not None and not connection.expired:
            return connection
        return None

    def invalidate(self) -> None:
        self._cached = None

    def resolve(self) -> Connection:
        connection = self.cached()
        if connection is not None:
            return connection
        with self._lock:
            connection = self.cached()
            if connection is not None:
                return connection
            url, headers = self._endpoint()
            try:
                response = httpx.get(url, headers=headers, timeout=30.0)
            except httpx.HTTPError as exc:
                raise IntegrationError(f"Integration Manager unreachable: {exc}") from exc
            return self._accept(response)

    async def aresolve(self) -> Connection:
        connection = self.cached()
        if connection is not None:
            return connection
        lock = self._async_locks.setdefault(asyncio.get_running_loop(), asyncio.Lock())
        async with lock:
            connection = self.cached()
            if connection is not None:
                return connection
            url, headers = self._endpoint()
            try:
                async with httpx.AsyncClient(timeout=30.0) as client:
                    response = await client.get(url, headers=headers)
            except httpx.HTTPError as exc:
                raise IntegrationError(f"Integration Manager unreachable: {exc}") from exc
            return self._accept(response)

    def call(self, action: Callable[[Connection], T]) -> T:
        """``action(connection)``; when the system says the credentials are no longer valid (an
        access token expired before ``expires_in``, a password was changed), ask the manager once
        more and retry once: a second ``Unauthorized`` is the app's to see."""
        try:
            return action(self.resolve())
        except Unauthorized:
            self.invalidate()
            return action(self.resolve())

    async def acall(self, action: Callable[[Connection], Awaitable[T]]) -> T:
        """The async twin of :meth:`call`."""
        try:
            return await action(await self.aresolve())
        except Unauthorized:
            self.invalidate()
            return await action(await self.aresolve())
