"""The client shells every runtime module shares, and the core each module gives them.

A runtime module (``odata``, ``salesforce``, ``graph``) exposes ``Client`` and ``AsyncClient``:
subclasses of :class:`ClientBase` and :class:`AsyncClientBase` around the module's core, a
:class:`Core` subclass holding all of the system's protocol logic. Each operation of the core is a
generator (a :data:`Flow`) that yields the HTTP calls it needs and receives their responses, so
the sync and async shells here differ only in the loop that performs the I/O, and no module
repeats them. Generated ``driver`` modules hold no protocol logic: they build descriptors and call
the shells' methods. Keys are mappings of wire name -> Python value; records are instances of the
generated model dataclasses (subclasses of ``records.Record``).

Two keyword-only extras exist for some systems only: ``formatted_values: bool`` on ``search``
and ``get`` (``ServiceDescriptor.runtime["formatted_values"]``) fills ``Record.formatted_values``;
``links: Mapping[str, Any]`` on ``create`` and ``update`` (navigation descriptors with
``bind_to``) sets lookups to the given keys (None clears one). Generated drivers pass them only
where the descriptors say the system supports them; a system without them refuses them with
:class:`~.errors.ConfigurationError` (see :meth:`Core.plain`).
"""

from __future__ import annotations

import inspect
import json
import ssl
from collections.abc import Callable, Coroutine, Generator, Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime
from enum import Enum
from typing import (
    Any,
    ClassVar,
    Concatenate,
    Generic,
    NamedTuple,
    ParamSpec,
    Protocol,
    Self,
    TypeVar,
    cast,
    overload,
)
from urllib.parse import quote

import httpx

from .connection import Connection
from .errors import ConfigurationError, IntegrationError, RateLimited, ServiceUnavailable, error_for_status
from .query import BasicFilter, OrderBy, Page
from .records import FieldDescriptor, ObjectDescriptor, ServiceDescriptor

__all__ = [
    "AsyncClientBase",
    "Call",
    "ClientBase",
    "Core",
    "CoreClass",
    "FieldCodec",
    "Flow",
    "Flows",
    "Key",
    "Links",
    "Names",
    "ObjectCodec",
    "Search",
    "request_id",
    "retry_after",
    "status_error",
]

P = ParamSpec("P")
T = TypeVar("T")
CodecT = TypeVar("CodecT")
FieldT = TypeVar("FieldT", bound="FieldCodec")
Key = Mapping[str, Any]
Names = Sequence[str] | None
Links = Mapping[str, Any] | None

_REQUEST_ID_HEADERS = (
    "sap-request-id",
    "x-request-id",
    "request-id",
    "x-correlationid",
    "x-ms-service-request-id",
)


class Call(NamedTuple):
    """One HTTP request a flow asks for."""

    method: str
    url: str  # with the query string, encoded by the core
    headers: Mapping[str, str]
    content: bytes | None
    what: str  # the operation, for error messages


Flow = Generator[Call, httpx.Response, T]


class Search(NamedTuple):
    """A search (or, without ordering and paging, a count) as the caller asked for it."""

    obj: ObjectDescriptor
    filters: Sequence[BasicFilter]
    advanced_filter: str | None
    order_by: Sequence[OrderBy] = ()
    advanced_order_by: str | None = None
    skip: int = 0
    top: int = 0
    formatted: bool = False


def retry_after(value: str | None) -> float | None:
    """Seconds to wait from a ``Retry-After`` header: a number of seconds or an HTTP date."""
    if not value:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        when = parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    when = when if when.tzinfo is not None else when.replace(tzinfo=UTC)
    return max(0.0, (when - datetime.now(UTC)).total_seconds())


def status_error(
    response: httpx.Response,
    text: str,
    code: str | None = None,
    request_id: str | None = None,
    cls: type[IntegrationError] | None = None,
) -> IntegrationError:
    """The :mod:`.errors` exception ``cls`` (by default the one for the response's status) saying
    ``text``; a :class:`~.errors.RateLimited` carries the response's ``Retry-After``."""
    status = response.status_code
    cls = cls or error_for_status(status)
    if cls is RateLimited:
        return RateLimited(
            text,
            retry_after=retry_after(response.headers.get("retry-after")),
            status=status,
            code=code,
            request_id=request_id,
        )
    return cls(text, status=status, code=code, request_id=request_id)


def request_id(response: httpx.Response) -> str | None:
    """The id the server gave the request, for support cases."""
    for name in _REQUEST_ID_HEADERS:
        value = response.headers.get(name)
        if value:
            return str(value)
    return None


class FieldCodec(Protocol):
    """What :class:`ObjectCodec` needs of a runtime's codec of one field."""

    @property
    def field(self) -> FieldDescriptor: ...

    @property
    def encode(self) -> Callable[[Any], Any]: ...  # Python -> JSON body value


class ObjectCodec(Generic[FieldT]):
    """A runtime's codec of one object, computed once: its fields' codecs by wire and Python name,
    its keys and the JSON bodies of writes. Subclasses add the system's reading and addressing."""

    def __init__(self, obj: ObjectDescriptor, fields: Iterable[FieldT]) -> None:
        self.obj = obj
        self.fields = tuple(fields)
        self.by_wire = {c.field.wire: c for c in self.fields}
        self.by_attr = {c.field.attr: c for c in self.fields}
        self.keys = tuple(c for c in self.fields if c.field.key)

    def field(self, name: Any) -> FieldT:
        """The codec of the attribute ``name`` (wire or Python name, or an attribute enum member)."""
        wire = name.value if isinstance(name, Enum) else name
        codec = self.by_wire.get(wire) or self.by_attr.get(wire)
        if codec is None:
            raise ValueError(f"{self.obj.name} has no attribute {wire!r}")
        return codec

    def body(self, record: Any, attributes_to_send: Names, creating: bool) -> dict[str, Any]:
        """The JSON body writing ``record``: ``attributes_to_send`` (None as null), else every
        attribute that is not None; attributes the system does not let you write never."""
        chosen = self.fields if attributes_to_send is None else [self.field(n) for n in attributes_to_send]
        body: dict[str, Any] = {}
        for codec in chosen:
            if not (codec.field.creatable if creating else codec.field.updatable):
                continue
            value = getattr(record, codec.field.attr)
            if value is not None:
                body[codec.field.wire] = codec.encode(value)
            elif attributes_to_send is not None:
                body[codec.field.wire] = None
        return body

    def key_value(self, key: Key) -> str:
        """The value of an object's one key in ``key`` (by wire or Python name), as text."""
        if not self.keys:
            raise ValueError(f"{self.obj.name} has no key: it cannot be read, updated or deleted by key")
        names = {self.keys[0].field.wire, self.keys[0].field.attr}
        unknown = sorted(set(key) - names)
        if unknown:
            raise ValueError(f"{self.obj.name}: {', '.join(unknown)} is not its key")
        value = next((key[n] for n in names if n in key), None)
        if value is None or not str(value).strip():
            raise ValueError(f"{self.obj.name}: the key {self.keys[0].field.wire!r} is missing")
        return str(value)


class Core(Generic[CodecT]):
    """What every runtime's core shares: connection state, calls, codecs, server links, errors.

    A subclass adds the flows :class:`Flows` names; ``new_codec`` builds what it needs about one
    object (computed once per object), ``error`` maps a failed response to :mod:`.errors`,
    ``system`` names the remote side in messages and ``loads`` parses its JSON.
    """

    query_safe = ""  # what query strings leave unescaped (OData and Graph syntax, for readability)

    def __init__(
        self,
        connection: Connection,
        root: str,
        headers: Mapping[str, str],
        new_codec: Callable[[ObjectDescriptor], CodecT],
        error: Callable[[httpx.Response, str], IntegrationError],
        system: str,
        loads: Callable[[bytes], Any] = json.loads,
    ) -> None:
        self.connection = connection
        self.root = root
        self.origin = httpx.URL(root)
        self.headers = {**headers, **connection.headers, **connection.auth_headers()}
        self.params = dict(connection.params)
        self.content_type = "application/json"
        self.system = system
        self._new_codec = new_codec
        self._error = error
        self._loads = loads
        self._codecs: dict[int, tuple[ObjectDescriptor, CodecT]] = {}

    def call(
        self,
        method: str,
        url: str,
        what: str,
        params: Mapping[str, str] | None = None,
        headers: Mapping[str, str] | None = None,
        body: Any = None,
    ) -> Call:
        """The call of ``method`` on ``url`` (with ``params``), ``body`` sent as JSON."""
        merged = {**self.headers, **headers} if headers else self.headers
        content = None
        if body is not None:
            content = json.dumps(body, ensure_ascii=False, separators=(",", ":")).encode()
            merged = {**merged, "Content-Type": self.content_type}
        query = self.query_params(url, params)
        if query:
            url = f"{url}{'&' if '?' in url else '?'}{self.query_string(query)}"
        return Call(method, url, merged, content, what)

    def query_params(self, url: str, params: Mapping[str, str] | None) -> Mapping[str, str]:
        """What a call to ``url`` adds to its query: the connection's parameters and the call's."""
        return {**self.params, **params} if params else self.params

    def query_string(self, params: Mapping[str, str]) -> str:
        # servers do not read "+" as a space the way HTML forms do (CAP V4 rejects it), so the
        # query is encoded here with %20 instead of by httpx's form-style encoder
        safe = self.query_safe
        return "&".join(f"{quote(k, safe=safe)}={quote(v, safe=safe)}" for k, v in params.items())

    def codec(self, obj: ObjectDescriptor) -> CodecT:
        entry = self._codecs.get(id(obj))
        if entry is not None and entry[0] is obj:
            return entry[1]
        codec = self._new_codec(obj)
        self._codecs[id(obj)] = (obj, codec)
        return codec

    def rebase(self, link: str) -> str:
        """A link the server returned, resolved against the root, on the connection's origin."""
        url = self.origin.join(link)
        if (url.scheme, url.host, url.port) != (self.origin.scheme, self.origin.host, self.origin.port):
            url = url.copy_with(scheme=self.origin.scheme, host=self.origin.host, port=self.origin.port)
        return str(url)

    def transport_error(self, exc: httpx.HTTPError, call: Call) -> ServiceUnavailable:
        # only the host: the URL may carry user data, and exception texts may echo it
        host = self.origin.host + (f":{self.origin.port}" if self.origin.port else "")
        if isinstance(exc, httpx.TimeoutException):
            reason = f"no answer from {host} within {self.connection.timeout:g} s"
        else:
            reason = f"cannot reach {host} ({type(exc).__name__})"
        return ServiceUnavailable(f"{call.what}: {reason}")

    def check(self, response: httpx.Response, what: str) -> None:
        if response.status_code >= 400:
            raise self._error(response, what)

    def payload(self, response: httpx.Response, what: str) -> Any:
        """The JSON of a successful response; the mapped error of a failed one."""
        self.check(response, what)
        try:
            return self._loads(response.content)
        except ValueError as exc:
            raise IntegrationError(
                f"{what}: {self.system} answered with something that is not JSON "
                f"({response.headers.get('content-type', 'no content type')})",
                status=response.status_code,
                request_id=request_id(response),
            ) from exc

    @contextmanager
    def decoding(self, what: str) -> Iterator[None]:
        """Turns an answer the object's descriptor does not describe into one clear error."""
        try:
            yield
        except (KeyError, TypeError, ValueError, AttributeError, ArithmeticError) as exc:
            raise IntegrationError(f"{what}: unexpected answer from {self.system} ({exc!r})") from exc

    def plain(self, formatted: bool = False, links: Links = None) -> None:
        """Refuses the extras of other systems (module docstring) rather than ignore them."""
        if formatted:
            raise ConfigurationError(f"{self.system} does not format values")
        if links:
            raise ConfigurationError(f"{self.system} sets lookups through their attributes, not links")


class Flows(Protocol):
    """What the shells need of a core: :class:`Core`'s I/O helpers and the operations' flows."""

    connection: Connection

    def transport_error(self, exc: httpx.HTTPError, call: Call, /) -> Exception: ...

    def search(self, search: Search, /) -> Flow[Page[Any]]: ...

    def next_page(self, obj: ObjectDescriptor, page: Page[Any], /) -> Flow[Page[Any]]: ...

    def count(self, search: Search, /) -> Flow[int]: ...

    def get(self, obj: ObjectDescriptor, key: Key, formatted: bool, /) -> Flow[Any]: ...

    def create(self, obj: ObjectDescriptor, record: Any, send: Names, links: Links, /) -> Flow[Any]: ...

    def update(
        self, obj: ObjectDescriptor, key: Key, record: Any, send: Names, etag: str | None, links: Links, /
    ) -> Flow[None]: ...

    def delete(self, obj: ObjectDescriptor, key: Key, etag: str | None, /) -> Flow[None]: ...


# --------------------------------------------------------------------------------------------
# The operations, written once for both shells
# --------------------------------------------------------------------------------------------


def _search(
    core: Flows,
    obj: ObjectDescriptor,
    filters: Sequence[BasicFilter] = (),
    advanced_filter: str | None = None,
    order_by: Sequence[OrderBy] = (),
    advanced_order_by: str | None = None,
    skip: int = 0,
    top: int = 50,
    *,
    formatted_values: bool = False,
) -> Flow[Page[Any]]:
    """Up to ``top`` records after ``skip``, with a link to the next page."""
    return core.search(
        Search(obj, filters, advanced_filter, order_by, advanced_order_by, skip, top, formatted_values)
    )


def _next_page(core: Flows, obj: ObjectDescriptor, page: Page[Any]) -> Flow[Page[Any]]:
    """The page after ``page``; ValueError when ``page`` is the last one."""
    return core.next_page(obj, page)


def _count(
    core: Flows,
    obj: ObjectDescriptor,
    filters: Sequence[BasicFilter] = (),
    advanced_filter: str | None = None,
) -> Flow[int]:
    """How many records match."""
    return core.count(Search(obj, filters, advanced_filter))


def _get(core: Flows, obj: ObjectDescriptor, key: Key, *, formatted_values: bool = False) -> Flow[Any]:
    """One record by key (wire name -> value); NotFound when it does not exist."""
    return core.get(obj, key, formatted_values)


def _create(
    core: Flows, obj: ObjectDescriptor, record: Any, attributes_to_send: Names = None, *, links: Links = None
) -> Flow[Any]:
    """Create ``record`` (with its lookups set to ``links``) and return it as the system stored it."""
    return core.create(obj, record, attributes_to_send, links)


def _update(
    core: Flows,
    obj: ObjectDescriptor,
    key: Key,
    record: Any,
    attributes_to_send: Names = None,
    etag: str | None = None,
    *,
    links: Links = None,
) -> Flow[None]:
    """Change the record with ``key`` (and its lookups in ``links``); Conflict when ``etag`` is stale."""
    return core.update(obj, key, record, attributes_to_send, etag, links)


def _delete(core: Flows, obj: ObjectDescriptor, key: Key, etag: str | None = None) -> Flow[None]:
    """Delete the record with ``key``; Conflict when ``etag`` is stale."""
    return core.delete(obj, key, etag)


class _Operation(Generic[P, T]):
    """An operation as a method of both shells: it builds the core's flow and runs it.

    On a :class:`ClientBase` the method returns the result; on an :class:`AsyncClientBase` it
    returns an awaitable of it, because there ``_run`` is a coroutine function.
    """

    def __init__(self, build: Callable[Concatenate[Flows, P], Flow[T]]) -> None:
        self.build = build
        self.__doc__ = build.__doc__
        self.__name__ = build.__name__.lstrip("_")
        # the method's signature for help() and inspect: the build's, without the core
        signature = inspect.signature(build)
        self.__signature__ = signature.replace(
            parameters=list(signature.parameters.values())[1:], return_annotation=inspect.Signature.empty
        )

    @overload
    def __get__(self, shell: ClientBase, owner: type[Any]) -> Callable[P, T]: ...

    @overload
    def __get__(self, shell: AsyncClientBase, owner: type[Any]) -> Callable[P, Coroutine[Any, Any, T]]: ...

    @overload
    def __get__(self, shell: None, owner: type[Any]) -> _Operation[P, T]: ...

    def __get__(self, shell: ClientBase | AsyncClientBase | None, owner: type[Any]) -> Any:
        if shell is None:
            return self
        build, run, core = self.build, shell._run, shell._core

        def operation(*args: P.args, **kwargs: P.kwargs) -> Any:
            return run(build(core, *args, **kwargs))

        operation.__doc__, operation.__name__ = self.__doc__, self.__name__
        operation.__signature__ = self.__signature__  # type: ignore[attr-defined]
        return operation

    def __call__(self, shell: ClientBase | AsyncClientBase, /, *args: P.args, **kwargs: P.kwargs) -> Any:
        """The operation called on the class, with the client first (``Client.get(client, ...)``)."""
        return self.__get__(shell, type(shell))(*args, **kwargs)


# --------------------------------------------------------------------------------------------
# The shells: only the I/O differs
# --------------------------------------------------------------------------------------------


def _verify(connection: Connection) -> bool | ssl.SSLContext:
    # httpx deprecates a CA bundle path as ``verify``; a context says the same
    if isinstance(connection.verify, str):
        return ssl.create_default_context(cafile=connection.verify)
    return connection.verify


class _Step(NamedTuple):
    """What a flow did with a response: asked for the next call, or finished with a result."""

    call: Call | None
    result: Any = None


def _advance(flow: Flow[Any], response: httpx.Response | None) -> _Step:
    try:
        return _Step(next(flow) if response is None else flow.send(response))
    except StopIteration as stop:
        return _Step(None, stop.value)


def _request(http: httpx.Client | httpx.AsyncClient, call: Call, timeout: float) -> httpx.Request:
    return http.build_request(
        call.method, call.url, headers=call.headers, content=call.content, timeout=timeout
    )


class CoreClass(Protocol):
    """A runtime module's core class, as its clients make one for a connection and service."""

    def __call__(self, connection: Connection, service: ServiceDescriptor, /) -> Flows: ...


class _Shell:
    """What the sync and async clients share: the core, the operations, the credentials.

    A runtime module names its core class when it subclasses a shell:
    ``class Client(ClientBase, core=_Core)``.
    """

    _core_class: ClassVar[CoreClass]

    def __init_subclass__(cls, core: CoreClass | None = None, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        if core is not None:
            cls._core_class = core

    def __init__(self, connection: Connection, service: ServiceDescriptor, owns_http: bool) -> None:
        self._core = self._core_class(connection, service)
        self._owns_http = owns_http
        # a shared httpx client keeps its own auth unless the connection brings one
        self._auth = connection.httpx_auth() or httpx.USE_CLIENT_DEFAULT
        self._timeout = connection.timeout

    search = _Operation(_search)
    next_page = _Operation(_next_page)
    count = _Operation(_count)
    get = _Operation(_get)
    create = _Operation(_create)
    update = _Operation(_update)
    delete = _Operation(_delete)


class ClientBase(_Shell):
    """Synchronous client (httpx.Client) running a core's flows; a context manager, or close() it.

    ``http`` is an httpx client to share (its owner closes it); without one the client opens
    its own, with the connection's timeout and TLS verification.
    """

    def __init__(
        self, connection: Connection, service: ServiceDescriptor, http: httpx.Client | None = None
    ) -> None:
        super().__init__(connection, service, http is None)
        self._http = http or httpx.Client(timeout=connection.timeout, verify=_verify(connection))

    def _run(self, flow: Flow[T]) -> T:
        step = _advance(flow, None)
        while step.call is not None:
            request = _request(self._http, step.call, self._timeout)
            try:
                response = self._http.send(request, auth=self._auth)
            except httpx.HTTPError as exc:
                raise self._core.transport_error(exc, step.call) from exc
            step = _advance(flow, response)
        return cast(T, step.result)

    def close(self) -> None:
        if self._owns_http:
            self._http.close()

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()


class AsyncClientBase(_Shell):
    """Asynchronous twin of :class:`ClientBase` (httpx.AsyncClient); ``async with`` it, or aclose() it."""

    def __init__(
        self, connection: Connection, service: ServiceDescriptor, http: httpx.AsyncClient | None = None
    ) -> None:
        super().__init__(connection, service, http is None)
        self._http = http or httpx.AsyncClient(timeout=connection.timeout, verify=_verify(connection))

    async def _run(self, flow: Flow[T]) -> T:
        step = _advance(flow, None)
        while step.call is not None:
            request = _request(self._http, step.call, self._timeout)
            try:
                response = await self._http.send(request, auth=self._auth)
            except httpx.HTTPError as exc:
                raise self._core.transport_error(exc, step.call) from exc
            step = _advance(flow, response)
        return cast(T, step.result)

    async def aclose(self) -> None:
        if self._owns_http:
            await self._http.aclose()

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.aclose()
