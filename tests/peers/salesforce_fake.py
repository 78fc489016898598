"""A local HTTPS fake of Salesforce's REST API and OAuth endpoints, on 127.0.0.1.

What it serves, as strictly as Salesforce (a lenient fake would hide the bugs users would hit):

- ``/services/oauth2/authorize``: the design-time web server flow; redirects to the registered
  callback with ``code`` and ``state`` (or ``error=access_denied`` when told to deny consent);
- ``/services/oauth2/token``: ``authorization_code`` (with the PKCE verifier checked against the
  S256 challenge), ``refresh_token``, and the JWT bearer flow, whose assertion is verified (RS256,
  issuer, audience, expiry within 3 minutes) against the certificate registered for the consumer
  key, for pre-authorized users only;
- ``/services/data/vXX.X/``: describe-global and per-object describe (the payloads it was given;
  ``described`` lists the objects asked for),
  SOQL queries (see ``salesforce_soql``) with ``nextRecordsUrl`` batches, sObject CRUD with the
  checks Salesforce makes (unknown, read-only and required fields), composite batch, and errors
  as ``[{"errorCode", "message"}]``.

Tests steer it: :meth:`SalesforceFake.fail_next` (e.g. REQUEST_LIMIT_EXCEEDED),
:meth:`expire_sessions`, :meth:`removed_field`, :meth:`batches_of`, ``deny_consent``, and look at
``queries`` (every parsed SOQL), ``requests`` and ``hosts``. TLS uses a certificate authority made
for this run (``ca_path``); the server certificate names IP:127.0.0.1 and DNS:localhost, so tests
reach one fake through two login hosts.
"""

from __future__ import annotations

import base64
import copy
import hashlib
import hmac
import itertools
import json
import secrets
import ssl
import string
import tempfile
import threading
import time
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlencode, urlsplit

import jwt
from cryptography import x509

from tests.peers.salesforce_soql import (
    NUMBER_TYPES,
    Query,
    SoqlError,
    matcher,
    no_such_column,
    parse,
    parse_datetime,
    parse_time,
    python_value,
)
from tests.peers.tls import certificate_authority

API_VERSIONS = ("59.0", "60.0", "61.0", "62.0", "63.0")
MAX_OFFSET = 2000
_ALPHABET = string.ascii_letters + string.digits
Json = Any


class _Refusal(Exception):
    """An error answer: ``status`` and a Salesforce REST or OAuth error body."""

    def __init__(self, status: int, body: Json) -> None:
        super().__init__(status)
        self.status = status
        self.body = body


def _rest_error(status: int, code: str, message: str, fields: Sequence[str] = ()) -> _Refusal:
    return _Refusal(status, [{"errorCode": code, "message": message, "fields": list(fields)}])


def _oauth_error(error: str, description: str) -> _Refusal:
    return _Refusal(400, {"error": error, "error_description": description})


@dataclass
class ConnectedApp:
    """An External Client App: its certificate (JWT bearer), callback (web server flow) and the
    users pre-authorized for it."""

    consumer_key: str
    certificate_pem: str
    callback_url: str
    users: set[str]
    client_secret: str | None = None


@dataclass
class _Grant:
    client_id: str
    redirect_uri: str
    challenge: str
    user: str


@dataclass
class _Cursor:
    rows: list[Json]
    batch: int


@dataclass
class Response:
    status: int
    body: Json = None
    headers: dict[str, str] = field(default_factory=dict)


def _now_text() -> str:
    return datetime.now(UTC).isoformat(timespec="milliseconds").replace("+00:00", "+0000")


class SalesforceFake:
    """One org: describes, records, connected apps and sessions. Start it with ``with``."""

    def __init__(
        self,
        describes: Sequence[Mapping[str, Any]],
        describe_global: Mapping[str, Any] | None = None,
        *,
        design_user: str = "designer@example.com",
    ) -> None:
        self._lock = threading.RLock()
        self._describes = {str(d["name"]): copy.deepcopy(dict(d)) for d in describes}
        listed = [dict(o) for o in (describe_global or {}).get("sobjects") or ()]
        names = {o["name"] for o in listed}
        for name, describe in self._describes.items():
            if name not in names:
                listed.append(_summary(describe))
        self._global = {"encoding": "UTF-8", "maxBatchSize": 200, "sobjects": listed}
        self.records: dict[str, dict[str, dict[str, Any]]] = {name: {} for name in self._describes}
        self._deleted: dict[str, set[str]] = {name: set() for name in self._describes}
        self._versions: dict[str, int] = {}
        self.apps: dict[str, ConnectedApp] = {}
        self.design_user = design_user
        self.deny_consent = False
        self.queries: list[Query] = []
        self.requests: list[tuple[str, str]] = []
        self.hosts: list[tuple[str, str]] = []  # (Host header, path): which login host was used
        self.described: list[str] = []  # objects described through the REST API (batches too)
        self._tokens: dict[str, str] = {}  # access token -> username
        self._refresh_tokens: dict[str, tuple[str, str]] = {}  # refresh token -> (client id, user)
        self._grants: dict[str, _Grant] = {}
        self._cursors: dict[str, _Cursor] = {}
        self._failures: list[tuple[int, str, str]] = []
        self._max_batch: int | None = None
        self._counter = itertools.count(1)
        self._directory = tempfile.TemporaryDirectory(prefix="salesforce-fake-")
        self.ca_path, self._cert_path, self._key_path = certificate_authority(
            Path(self._directory.name), "Salesforce fake"
        )
        self._server: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None
        self.base_url = ""

    # --- lifecycle ------------------------------------------------------------------------------

    def start(self) -> None:
        context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        context.load_cert_chain(self._cert_path, self._key_path)
        server = ThreadingHTTPServer(("127.0.0.1", 0), _handler(self))
        server.daemon_threads = True
        server.socket = context.wrap_socket(server.socket, server_side=True)
        self._server = server
        self.base_url = f"https://127.0.0.1:{server.server_address[1]}"
        self._thread = threading.Thread(target=server.serve_forever, name="salesforce-fake", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
        if self._thread is not None:
            self._thread.join(timeout=10)
        self._directory.cleanup()

    def __enter__(self) -> SalesforceFake:
        self.start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.stop()

    # --- steering -------------------------------------------------------------------------------

    def register_app(self, app: ConnectedApp) -> None:
        with self._lock:
            self.apps[app.consumer_key] = app

    def fail_next(
        self, code: str = "REQUEST_LIMIT_EXCEEDED", times: int = 1, status: int = 403, message: str = ""
    ) -> None:
        """The next ``times`` REST calls answer ``[{"errorCode": code}]`` with ``status``."""
        with self._lock:
            self._failures.extend([(status, code, message or "TotalRequests Limit exceeded.")] * times)

    def expire_sessions(self, *, revoke: bool = False) -> None:
        """Every access token issued so far stops working (INVALID_SESSION_ID); ``revoke``: their
        refresh tokens too (an admin revoked the app's access, or the refresh token expired)."""
        with self._lock:
            self._tokens.clear()
            if revoke:
                self._refresh_tokens.clear()

    @contextmanager
    def removed_field(self, obj: str, name: str) -> Iterator[None]:
        """``obj.name`` is gone from the org (as after an admin deleted it) inside the block."""
        with self._lock:
            fields = self._describes[obj]["fields"]
            index = next(i for i, f in enumerate(fields) if f["name"] == name)
            removed = fields.pop(index)
        try:
            yield
        finally:
            with self._lock:
                fields.insert(index, removed)

    @contextmanager
    def batches_of(self, size: int) -> Iterator[None]:
        """Query results come in batches of at most ``size`` records inside the block."""
        with self._lock:
            self._max_batch = size
        try:
            yield
        finally:
            with self._lock:
                self._max_batch = None

    def insert(self, obj: str, values: Mapping[str, Any], user: str = "") -> str:
        """Store a record as if created in Salesforce's UI; returns its Id."""
        with self._lock:
            return self._insert(obj, dict(values), user or self.design_user, checked=False)

    def clear(self, obj: str) -> None:
        with self._lock:
            self.records[obj].clear()
            self._deleted[obj].clear()

    def issue_token(self, user: str) -> str:
        with self._lock:
            token = f"00D{_random(12)}!{secrets.token_urlsafe(24)}"
            self._tokens[token] = user
            return token

    # --- HTTP -----------------------------------------------------------------------------------

    def dispatch(self, method: str, target: str, headers: Mapping[str, str], body: bytes) -> Response:
        parts = urlsplit(target)
        path, query = parts.path, {k: v[-1] for k, v in parse_qs(parts.query, keep_blank_values=True).items()}
        with self._lock:
            self.requests.append((method, path))
            self.hosts.append((headers.get("host", ""), path))
            try:
                if path == "/services/oauth2/authorize" and method == "GET":
                    return self._authorize(query)
                if path == "/services/oauth2/token" and method == "POST":
                    form = {k: v[-1] for k, v in parse_qs(body.decode(), keep_blank_values=True).items()}
                    return Response(200, self._token(form))
                if path.rstrip("/") == "/services/data":
                    return Response(
                        200, [{"version": v, "url": f"/services/data/v{v}"} for v in API_VERSIONS]
                    )
                if path.startswith("/services/data/v"):
                    return self._rest(method, path, query, headers, body)
                raise _rest_error(404, "NOT_FOUND", "The requested resource does not exist")
            except _Refusal as refusal:
                return Response(refusal.status, refusal.body)
            except SoqlError as error:
                return Response(400, [{"errorCode": error.code, "message": error.message}])

    # --- OAuth ----------------------------------------------------------------------------------

    def _authorize(self, query: Mapping[str, str]) -> Response:
        app = self.apps.get(query.get("client_id", ""))
        if app is None:
            return Response(
                400, {"error": "invalid_client_id", "error_description": "client identifier invalid"}
            )
        if query.get("redirect_uri") != app.callback_url:
            return Response(
                400, {"error": "redirect_uri_mismatch", "error_description": "redirect_uri must match"}
            )
        if query.get("response_type") != "code":
            return Response(400, {"error": "unsupported_response_type", "error_description": "code only"})
        state = query.get("state", "")
        if self.deny_consent:
            answer = {"error": "access_denied", "error_description": "end-user denied authorization"}
        else:
            if query.get("code_challenge_method") != "S256" or not query.get("code_challenge"):
                return Response(
                    400, {"error": "invalid_request", "error_description": "missing PKCE challenge"}
                )
            code = f"aPr{secrets.token_urlsafe(32)}"
            self._grants[code] = _Grant(
                app.consumer_key, app.callback_url, query["code_challenge"], self.design_user
            )
            answer = {"code": code}
        location = f"{app.callback_url}?{urlencode({**answer, 'state': state})}"
        return Response(302, None, {"Location": location})

    def _token(self, form: Mapping[str, str]) -> Json:
        grant = form.get("grant_type")
        if grant == "authorization_code":
            return self._code_grant(form)
        if grant == "refresh_token":
            known = self._refresh_tokens.get(form.get("refresh_token", ""))
            if known is None or known[0] != form.get("client_id"):
                raise _oauth_error("invalid_grant", "expired access/refresh token")
            app = self.apps.get(known[0])
            if (
                app is not None
                and app.client_secret is not None
                and form.get("client_secret") != app.client_secret
            ):
                raise _oauth_error("invalid_client", "invalid client credentials")
            return self._token_answer(known[1], with_refresh=False)
        if grant == "urn:ietf:params:oauth:grant-type:jwt-bearer":
            return self._jwt_grant(form.get("assertion", ""))
        raise _oauth_error("unsupported_grant_type", "grant type not supported")

    def _code_grant(self, form: Mapping[str, str]) -> Json:
        grant = self._grants.pop(form.get("code", ""), None)  # a code works once
        if grant is None:
            raise _oauth_error("invalid_grant", "invalid authorization code")
        if form.get("client_id") != grant.client_id or form.get("redirect_uri") != grant.redirect_uri:
            raise _oauth_error("invalid_grant", "redirect_uri or client_id do not match the authorization")
        app = self.apps[grant.client_id]
        if app.client_secret is not None and form.get("client_secret") != app.client_secret:
            raise _oauth_error("invalid_client", "invalid client credentials")
        verifier = form.get("code_verifier", "")
        challenge = base64.urlsafe_b64encode(hashlib.sha256(verifier.encode()).digest()).rstrip(b"=").decode()
        if not hmac.compare_digest(challenge, grant.challenge):
            raise _oauth_error("invalid_grant", "invalid code verifier")
        return self._token_answer(grant.user, with_refresh=True, client_id=grant.client_id)

    def _jwt_grant(self, assertion: str) -> Json:
        try:
            unverified = jwt.decode(assertion, options={"verify_signature": False})
        except jwt.PyJWTError:
            raise _oauth_error("invalid_grant", "invalid assertion") from None
        app = self.apps.get(str(unverified.get("iss", "")))
        if app is None:
            raise _oauth_error("invalid_client_id", "client identifier invalid")
        public_key = x509.load_pem_x509_certificate(app.certificate_pem.encode()).public_key()
        audiences = ["https://login.salesforce.com", "https://test.salesforce.com", self.base_url]
        try:
            claims = jwt.decode(
                assertion,
                public_key,  # type: ignore[arg-type]
                algorithms=["RS256"],
                audience=audiences,
                issuer=app.consumer_key,
                options={"require": ["iss", "sub", "aud", "exp"]},
            )
        except jwt.InvalidAudienceError:
            raise _oauth_error("invalid_grant", "audience is invalid") from None
        except jwt.PyJWTError:
            raise _oauth_error("invalid_grant", "invalid assertion") from None
        if int(claims["exp"]) > time.time() + 300:
            raise _oauth_error("invalid_grant", "invalid assertion: expiry more than 3 minutes away")
        user = str(claims["sub"])
        if user not in app.users:
            raise _oauth_error("invalid_grant", "user hasn't approved this consumer")
        return self._token_answer(user, with_refresh=False)

    def _token_answer(self, user: str, *, with_refresh: bool, client_id: str = "") -> Json:
        token = self.issue_token(user)
        answer = {
            "access_token": token,
            "instance_url": self.base_url,
            "id": f"{self.base_url}/id/00D000000000001EAA/005000000000001AAA",
            "token_type": "Bearer",
            "issued_at": str(int(time.time() * 1000)),
            "scope": "api refresh_token" if with_refresh else "api",
        }
        if with_refresh:
            refresh = f"5Aep{secrets.token_urlsafe(32)}"
            self._refresh_tokens[refresh] = (client_id, user)
            answer["refresh_token"] = refresh
        return answer

    # --- REST -----------------------------------------------------------------------------------

    def _rest(
        self, method: str, path: str, query: Mapping[str, str], headers: Mapping[str, str], body: bytes
    ) -> Response:
        authorization = headers.get("authorization", "")
        user = self._tokens.get(authorization.removeprefix("Bearer ").strip()) if authorization else None
        if user is None:
            raise _rest_error(401, "INVALID_SESSION_ID", "Session expired or invalid")
        if self._failures:
            status, code, message = self._failures.pop(0)
            raise _rest_error(status, code, message)
        version, _, rest = path.removeprefix("/services/data/v").partition("/")
        if version not in API_VERSIONS:
            raise _rest_error(404, "NOT_FOUND", "The requested resource does not exist")
        segments = [s for s in rest.split("/") if s]
        return self._resource(method, version, segments, query, headers, body, user)

    def _resource(
        self,
        method: str,
        version: str,
        segments: list[str],
        query: Mapping[str, str],
        headers: Mapping[str, str],
        body: bytes,
        user: str,
    ) -> Response:
        match method, segments:
            case "GET", ["sobjects"]:
                return Response(200, self._global)
            case "GET", ["sobjects", name, "describe"]:
                described = self._describe(name)
                self.described.append(name)
                return Response(200, described)
            case "GET", ["query"]:
                return Response(200, self._query(version, query.get("q", ""), headers))
            case "GET", ["query", locator]:
                return Response(200, self._more(version, locator))
            case "POST", ["composite", "batch"]:
                return Response(200, self._batch(version, body, headers))
            case "POST", ["sobjects", name]:
                record_id = self._create(name, _json_body(body), user)
                return Response(201, {"id": record_id, "success": True, "errors": []})
            case "GET", ["sobjects", name, record_id]:
                return self._get(version, name, record_id, query.get("fields"))
            case "PATCH", ["sobjects", name, record_id]:
                self._update(name, record_id, _json_body(body), headers.get("if-match"), user)
                return Response(204)
            case "DELETE", ["sobjects", name, record_id]:
                self._delete(name, record_id, headers.get("if-match"))
                return Response(204)
        raise _rest_error(404, "NOT_FOUND", "The requested resource does not exist")

    def _describe(self, name: str) -> Json:
        describe = self._describes.get(name)
        if describe is None:
            raise _rest_error(404, "NOT_FOUND", "The requested resource does not exist")
        return describe

    def _fields(self, obj: str) -> dict[str, Mapping[str, Any]]:
        return {str(f["name"]): f for f in self._describe(obj)["fields"]}

    def _batch(self, version: str, body: bytes, headers: Mapping[str, str]) -> Json:
        requests = _json_body(body).get("batchRequests") or []
        if len(requests) > 25:
            raise _rest_error(400, "INVALID_BATCH_REQUEST", "at most 25 subrequests")
        results = []
        for request in requests:
            url = "/services/data/" + str(request.get("url", "")).lstrip("/")
            try:
                answer = self._rest(str(request.get("method", "GET")), url, {}, headers, b"")
                results.append({"statusCode": answer.status, "result": answer.body})
            except _Refusal as refusal:
                results.append({"statusCode": refusal.status, "result": refusal.body})
        return {"hasErrors": any(r["statusCode"] >= 400 for r in results), "results": results}

    # --- queries --------------------------------------------------------------------------------

    def _query(self, version: str, text: str, headers: Mapping[str, str]) -> Json:
        parsed = parse(text)
        self.queries.append(parsed)
        describe = self._describes.get(parsed.object)
        if describe is None:
            raise SoqlError(
                "INVALID_TYPE",
                f"sObject type '{parsed.object}' is not supported. If you are attempting to use a custom "
                "object, be sure to append the '__c' after the entity name.",
            )
        if not describe.get("queryable", False):
            raise SoqlError(
                "INVALID_TYPE_FOR_OPERATION", f"entity type {parsed.object} does not support query"
            )
        types = self._fields(parsed.object)
        for name in parsed.fields or ():
            if "." in name:
                self._relationship_field(parsed.object, name)
            elif name not in types:
                raise SoqlError("INVALID_FIELD", no_such_column(name, parsed.object))
        keep = matcher(parsed.where, types, parsed.object) if parsed.where is not None else None
        rows = [r for i, r in self.records[parsed.object].items() if i not in self._deleted[parsed.object]]
        if keep is not None:
            rows = [r for r in rows if keep(r)]
        for ordering in reversed(parsed.order_by):
            described = types.get(ordering.field)
            if described is None:
                raise SoqlError("INVALID_FIELD", no_such_column(ordering.field, parsed.object))
            if not described.get("sortable", True):
                raise SoqlError(
                    "INVALID_FIELD", f"field '{ordering.field}' can not be sorted in a query call"
                )
            rows = _sorted(
                rows, ordering.field, str(described["type"]), ordering.descending, ordering.nulls_first
            )
        if parsed.offset is not None:
            if parsed.offset > MAX_OFFSET:
                raise SoqlError("NUMBER_OUTSIDE_VALID_RANGE", f"Maximum SOQL offset allowed is {MAX_OFFSET}")
            rows = rows[parsed.offset :]
        if parsed.limit is not None:
            rows = rows[: parsed.limit]
        if parsed.fields is None:
            return {"totalSize": len(rows), "done": True, "records": []}
        projected = [self._project(version, parsed.object, r, parsed.fields, types) for r in rows]
        batch = _requested_batch(headers)
        if self._max_batch is not None:
            batch = min(batch, self._max_batch)
        return self._batch_answer(version, projected, 0, batch, len(projected), None)

    def _batch_answer(
        self, version: str, rows: list[Json], start: int, batch: int, total: int, cursor: str | None
    ) -> Json:
        end = start + batch
        answer: Json = {"totalSize": total, "done": end >= len(rows), "records": rows[start:end]}
        if end < len(rows):
            cursor = cursor or f"01g{_random(15)}"
            self._cursors[cursor] = _Cursor(rows, batch)
            answer["nextRecordsUrl"] = f"/services/data/v{version}/query/{cursor}-{end}"
        return answer

    def _more(self, version: str, locator: str) -> Json:
        cursor_id, _, position = locator.rpartition("-")
        cursor = self._cursors.get(cursor_id)
        if cursor is None or not position.isdigit():
            raise _rest_error(400, "INVALID_QUERY_LOCATOR", "invalid query locator")
        return self._batch_answer(
            version, cursor.rows, int(position), cursor.batch, len(cursor.rows), cursor_id
        )

    def _project(
        self,
        version: str,
        obj: str,
        record: Mapping[str, Any],
        names: Sequence[str],
        types: Mapping[str, Any],
    ) -> Json:
        url = f"/services/data/v{version}/sobjects/{obj}/{record['Id']}"
        row: Json = {"attributes": {"type": obj, "url": url}}
        related: dict[str, list[str]] = {}
        for name in names:
            relationship, dot, field_name = name.partition(".")
            if dot:
                related.setdefault(relationship, []).append(field_name)
                continue
            value = record.get(name)
            # queries answer base64 fields with where to fetch the blob, not the blob
            row[name] = f"{url}/{name}" if types[name]["type"] == "base64" and value is not None else value
        for relationship, field_names in related.items():
            lookup, target = self._relationship_field(obj, f"{relationship}.{field_names[0]}")
            parent = self.records[target].get(record.get(lookup) or "")
            visible = parent is not None and parent["Id"] not in self._deleted[target]
            row[relationship] = (
                self._project(version, target, parent, field_names, self._fields(target))
                if visible and parent is not None
                else None
            )
        return row

    def _relationship_field(self, obj: str, path: str) -> tuple[str, str]:
        """(lookup field, target object) of ``Relationship.Field`` in a SELECT of ``obj``."""
        relationship, _, name = path.partition(".")
        lookup = next(
            (f for f in self._fields(obj).values() if f.get("relationshipName") == relationship), None
        )
        if lookup is None or len(lookup.get("referenceTo") or ()) != 1 or "." in name:
            raise SoqlError(
                "INVALID_FIELD",
                f"Didn't understand relationship '{relationship}' in field path. If you are attempting to "
                "use a custom relationship, be sure to append the '__r' after the custom relationship name.",
            )
        target = str(lookup["referenceTo"][0])
        if target not in self._describes:
            raise SoqlError("INVALID_TYPE", f"sObject type '{target}' is not supported.")
        if name not in self._fields(target):
            raise SoqlError("INVALID_FIELD", no_such_column(name, target))
        return str(lookup["name"]), target

    # --- records --------------------------------------------------------------------------------

    def _writable(self, obj: str) -> Mapping[str, Any]:
        describe = self._describes.get(obj)
        if describe is None:
            raise _rest_error(404, "NOT_FOUND", "The requested resource does not exist")
        return describe

    def _insert(self, obj: str, values: dict[str, Any], user: str, *, checked: bool) -> str:
        describe = self._writable(obj)
        types = self._fields(obj)
        if checked:
            if not describe.get("createable", False):
                raise _rest_error(
                    403, "INSUFFICIENT_ACCESS_OR_READONLY", f"insufficient access rights on object {obj}"
                )
            self._check_values(obj, values, types, "createable", "create")
            missing = [
                name
                for name, f in types.items()
                if f.get("createable")
                and not f.get("nillable", True)
                and not f.get("defaultedOnCreate")
                and f.get("type") != "boolean"
                and values.get(name) in (None, "")
            ]
            if missing:
                raise _rest_error(
                    400, "REQUIRED_FIELD_MISSING", f"Required fields are missing: {missing}", missing
                )
        record_id = f"{describe.get('keyPrefix') or 'a00'}{_random(12)}AAA"
        now = _now_text()
        record: dict[str, Any] = dict.fromkeys(types)
        record.update({k: _stored(types[k], v) for k, v in values.items()})
        for name, f in types.items():
            if f.get("type") == "boolean" and record[name] is None:
                record[name] = bool(f.get("defaultValue") or False)
            if f.get("autoNumber"):
                record[name] = f"A-{next(self._counter):05d}"
        defaults = {
            "Id": record_id,
            "CreatedDate": now,
            "LastModifiedDate": now,
            "SystemModstamp": now,
            "CreatedById": user_id(user),
            "LastModifiedById": user_id(user),
            "OwnerId": record.get("OwnerId") or user_id(user),
        }
        record.update({k: v for k, v in defaults.items() if k in types})
        self.records[obj][record_id] = record
        self._versions[record_id] = 1
        return record_id

    def _check_values(
        self, obj: str, values: Mapping[str, Any], types: Mapping[str, Any], permission: str, verb: str
    ) -> None:
        for name, value in values.items():
            described = types.get(name)
            if described is None:
                raise _rest_error(
                    400, "INVALID_FIELD", f"No such column '{name}' on sobject of type {obj}", [name]
                )
            if not described.get(permission):
                raise _rest_error(
                    400,
                    "INVALID_FIELD_FOR_INSERT_UPDATE",
                    f"Unable to {verb} fields: {name}. Please check the security settings of this field and "
                    "verify that it is read/write for your profile or permission set.",
                    [name],
                )
            try:
                _stored(described, value)
            except (TypeError, ValueError):
                raise _rest_error(
                    400,
                    "JSON_PARSER_ERROR",
                    f"Cannot deserialize instance of {described['type']} from {json.dumps(value)} for {name}",
                    [name],
                ) from None

    def _create(self, obj: str, values: Json, user: str) -> str:
        if not isinstance(values, dict):
            raise _rest_error(400, "JSON_PARSER_ERROR", "Can not deserialize SObject out of non-object")
        return self._insert(obj, values, user, checked=True)

    def _existing(self, obj: str, record_id: str) -> dict[str, Any]:
        self._writable(obj)
        if record_id in self._deleted[obj]:
            raise _rest_error(404, "ENTITY_IS_DELETED", "entity is deleted")
        record = self.records[obj].get(record_id)
        if record is None:
            raise _rest_error(404, "NOT_FOUND", "The requested resource does not exist")
        return record

    def _etag(self, record_id: str) -> str:
        return f'"{self._versions[record_id]}--gzip"'

    def _get(self, version: str, obj: str, record_id: str, fields: str | None) -> Response:
        if not self._writable(obj).get("retrieveable", True):
            raise _rest_error(
                400, "INVALID_TYPE_FOR_OPERATION", f"entity type {obj} does not support retrieve"
            )
        record = self._existing(obj, record_id)
        types = self._fields(obj)
        names = [n for n in (fields.split(",") if fields else types) if n]
        for name in names:
            if name not in types:
                raise _rest_error(400, "INVALID_FIELD", no_such_column(name, obj).strip())
        return Response(
            200, self._project(version, obj, record, names, types), {"ETag": self._etag(record_id)}
        )

    def _check_etag(self, record_id: str, if_match: str | None) -> None:
        if if_match and if_match != "*" and if_match != self._etag(record_id):
            raise _rest_error(412, "PRECONDITION_FAILED", "The requested resource has been modified")

    def _update(self, obj: str, record_id: str, values: Json, if_match: str | None, user: str) -> None:
        record = self._existing(obj, record_id)
        if not self._writable(obj).get("updateable", False):
            raise _rest_error(
                403, "INSUFFICIENT_ACCESS_OR_READONLY", f"insufficient access rights on object {obj}"
            )
        if not isinstance(values, dict):
            raise _rest_error(400, "JSON_PARSER_ERROR", "Can not deserialize SObject out of non-object")
        self._check_etag(record_id, if_match)
        types = self._fields(obj)
        self._check_values(obj, values, types, "updateable", "update")
        record.update({k: _stored(types[k], v) for k, v in values.items()})
        for name in ("LastModifiedDate", "SystemModstamp"):
            if name in types:
                record[name] = _now_text()
        if "LastModifiedById" in types:
            record["LastModifiedById"] = user_id(user)
        self._versions[record_id] += 1

    def _delete(self, obj: str, record_id: str, if_match: str | None) -> None:
        self._existing(obj, record_id)
        if not self._writable(obj).get("deletable", False):
            raise _rest_error(
                403, "INSUFFICIENT_ACCESS_OR_READONLY", f"insufficient access rights on object {obj}"
            )
        self._check_etag(record_id, if_match)
        self._deleted[obj].add(record_id)


def _summary(describe: Mapping[str, Any]) -> Json:
    keys = (
        "name",
        "label",
        "labelPlural",
        "custom",
        "keyPrefix",
        "queryable",
        "createable",
        "updateable",
        "deletable",
        "retrieveable",
        "searchable",
        "layoutable",
        "deprecatedAndHidden",
    )
    return {k: describe.get(k) for k in keys}


def _random(length: int) -> str:
    return "".join(secrets.choice(_ALPHABET) for _ in range(length))


def user_id(user: str) -> str:
    return "005" + hashlib.sha256(user.encode()).hexdigest()[:12] + "AAA"


def _json_body(body: bytes) -> Json:
    try:
        return json.loads(body or b"{}")
    except ValueError:
        raise _rest_error(400, "JSON_PARSER_ERROR", "Unexpected character: the body is not JSON") from None


def _requested_batch(headers: Mapping[str, str]) -> int:
    options = headers.get("sforce-query-options", "")
    for option in options.split(","):
        name, _, value = option.strip().partition("=")
        if name == "batchSize" and value.isdigit():
            return min(max(int(value), 200), 2000)
    return 2000


def _stored(described: Mapping[str, Any], value: Any) -> Any:
    """A written value as Salesforce keeps it; TypeError/ValueError for one of the wrong type."""
    if value is None:
        return None
    sf_type = str(described.get("type"))
    if sf_type == "boolean":
        if not isinstance(value, bool):
            raise TypeError("not a boolean")
        return value
    if sf_type in NUMBER_TYPES:
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise TypeError("not a number")
        return int(value) if sf_type in ("int", "long") else value
    if sf_type == "date":
        return date.fromisoformat(value).isoformat()
    if sf_type == "datetime":
        return (
            parse_datetime(value)
            .astimezone(UTC)
            .isoformat(timespec="milliseconds")
            .replace("+00:00", "+0000")
        )
    if sf_type == "time":
        moment = parse_time(value)
        return f"{moment.isoformat(timespec='milliseconds')}Z"
    if sf_type == "base64":
        base64.b64decode(value, validate=True)
        return value
    if not isinstance(value, str):
        raise TypeError("not a string")
    return value


def _sorted(rows: list[Json], name: str, sf_type: str, descending: bool, nulls_first: bool) -> list[Json]:
    present = [r for r in rows if r.get(name) is not None]
    empty = [r for r in rows if r.get(name) is None]
    present.sort(key=lambda r: python_value(sf_type, r[name]), reverse=descending)
    return empty + present if nulls_first else present + empty


def _handler(fake: SalesforceFake) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def _serve(self) -> None:
            length = int(self.headers.get("Content-Length") or 0)
            body = self.rfile.read(length) if length else b""
            headers = {k.lower(): v for k, v in self.headers.items()}
            answer = fake.dispatch(self.command, self.path, headers, body)
            content = b"" if answer.body is None else json.dumps(answer.body).encode()
            self.send_response(answer.status)
            for name, value in answer.headers.items():
                self.send_header(name, value)
            if content:
                self.send_header("Content-Type", "application/json;charset=UTF-8")
            self.send_header("Content-Length", str(len(content)))
            self.end_headers()
            self.wfile.write(content)

        do_GET = do_POST = do_PATCH = do_DELETE = do_PUT = _serve

        def log_message(self, format: str, *args: Any) -> None:
            """Quiet: tests read ``fake.requests`` instead."""

    return Handler
