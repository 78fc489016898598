"""Connections, associations and admin requests: the operations behind `/ib connections`, the
admin-request DMs, `ib connection ...` and the Integration Manager runtime API.

No Slack here: every operation takes the acting Slack user id and returns plain dataclasses the
Slack views (or the CLI) render. A refusal is a :class:`ConnectionServiceError` with one line
and, for bad input, the ``field`` (a :class:`~providers.base.ConnectionField` name, or ``name``,
``environment``, ``provider``, ``admin``) the modal shows it under.

Rules:

* Managing connections of an environment (create, edit, test, delete, associate) needs the
  ``connection_admin`` role there; ``IB_ADMINS`` users hold every role. Listing is open to anyone:
  it shows no secret, only which secret fields hold a value.
* A connection is saved only after its test passed (create and edit alike); a failing test
  saves nothing and says why. Secret fields left blank on edit keep their stored value.
* A connection still associated with an integration cannot be deleted; the refusal names the
  integrations.
* Admin requests: asked by the integration's owner (in a development environment) or by anyone
  with the ``developer`` or ``connection_admin`` role in the environment; completed only by the
  addressed administrator, once, before it expires (7 days by default), which tests, saves and
  associates the connection; cancelled only by the requester. The addressed administrator needs
  no role: being asked is the permission, for this one integration and environment.
* Every change writes the audit log, never a secret value.
"""

from __future__ import annotations

import asyncio
import re
import time
from collections.abc import AsyncIterator, Callable, Collection, Mapping
from contextlib import asynccontextmanager
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, Final, Literal
from urllib.parse import urlsplit

from sqlalchemy.ext.asyncio import AsyncSession

from generator.spec import IntegrationSpec, SpecError
from providers.base import (
    AdminInstructions,
    ConnectionField,
    ConnectionTestResult,
    ConnectionValueError,
    Provider,
    ProviderError,
    get_provider,
)
from providers.certificates import CERTIFICATE_FIELD, PRIVATE_KEY_FIELD, generate_certificate
from storage import (
    AccessGrants,
    AdminRequests,
    AlreadyExists,
    Associations,
    AuditLog,
    Connections,
    Database,
    DedupKeys,
    Deployments,
    Environments,
    Integrations,
    RuntimeTokens,
    SecretBox,
    StorageError,
)
from storage.models import AdminRequest, Environment, ExternalConnection, Integration, utcnow

DEFAULT_REQUEST_LIFETIME: Final = timedelta(days=7)
# How long a generated package may use an answer before asking again: a changed password or a
# new association reaches running apps within this time.
DEFAULT_EXPIRES_IN_S: Final = 300
# A requester hears of an expired request if it expired within this many days (a service that was
# down longer does not send stale news), and idempotency keys are kept longer than that.
EXPIRY_NOTICE_DAYS: Final = 7
DEDUP_KEEP_DAYS: Final = 14
RUNTIME_CACHE_SECONDS: Final = 5.0
_CACHE_LIMIT: Final = 10_000  # entries; one per live token and integration it asked for
# The audit log's actor for changes nobody clicked (an expiry found on read or by a sweep).
SYSTEM_ACTOR: Final = "system"
CONNECTION_NAME: Final = re.compile(r"^[A-Za-z0-9][A-Za-z0-9 ._-]{0,63}$")
_ROLE: Final = "connection_admin"
_REQUESTER_ROLES: Final = ("developer", "connection_admin")


class ConnectionServiceError(Exception):
    """A refusal or bad input; ``str()`` is one line, safe to show, never a secret."""

    def __init__(self, message: str, field: str | None = None) -> None:
        super().__init__(message)
        self.field = field


RuntimeRefusal = Literal["unauthorized", "not_deployed", "no_connection", "unusable"]


class RuntimeLookupError(ConnectionServiceError):
    """Why the runtime API cannot hand out a connection; ``reason`` picks the HTTP status."""

    def __init__(self, message: str, reason: RuntimeRefusal) -> None:
        super().__init__(message)
        self.reason = reason


@dataclass(frozen=True, slots=True)
class ConnectionSummary:
    id: int
    name: str
    environment: str
    provider: str
    provider_title: str
    values: Mapping[str, str]  # the non-secret fields
    secrets_set: tuple[str, ...]  # names of secret fields holding a value (never the values)
    created_by: str
    created_at: datetime
    updated_at: datetime
    last_test_ok: bool | None
    last_test_at: datetime | None
    last_test_message: str | None
    used_by: tuple[str, ...]  # module names of the integrations associated with it


@dataclass(frozen=True, slots=True)
class SavedConnection:
    connection: ConnectionSummary
    test: ConnectionTestResult


@dataclass(frozen=True, slots=True)
class AssociationSummary:
    module_name: str
    application_name: str
    provider: str
    environment: str
    connection: str | None  # None: no connection picked yet in this environment


@dataclass(frozen=True, slots=True)
class AdminRequestSummary:
    id: str
    requester: str
    admin: str
    module_name: str
    application_name: str
    environment: str
    provider: str
    provider_title: str
    note: str
    status: str  # pending, completed, cancelled, expired
    created_at: datetime
    expires_at: datetime
    completed_at: datetime | None
    connection: str | None  # the connection a completed request created
    # What the administrator must set up (mrkdwn) and the files to attach (the certificate).
    instructions: AdminInstructions
    team_id: str | None = None  # the workspace of the integration, for messages no request brought


@dataclass(frozen=True, slots=True)
class CompletedRequest:
    request: AdminRequestSummary
    connection: ConnectionSummary
    test: ConnectionTestResult
    notify: tuple[str, ...]  # Slack users to tell that the connection is ready (the requester)


@dataclass(frozen=True, slots=True)
class _Checked:
    """Validated input split by the schema, merged with what was stored (blank secrets and
    values outside the schema, such as a generated certificate, keep theirs)."""

    values: dict[str, str]
    secrets: dict[str, str]
    new_secrets: tuple[str, ...]  # names of secret fields given a value now

    def changed_from(self, previous: Mapping[str, Any]) -> list[str]:
        """Names of the fields this input changes (secret ones whenever they were given)."""
        keys = previous.keys() | self.values.keys()
        return sorted(
            {key for key in keys if previous.get(key) != self.values.get(key)} | set(self.new_secrets)
        )


class ConnectionService:
    """See the module docstring. One instance per process; every call is its own unit of work."""

    def __init__(
        self,
        database: Database,
        box: SecretBox,
        *,
        admins: Collection[str] = (),
        base_url: str = "",
        providers: Callable[[str], Provider] = get_provider,
        request_lifetime: timedelta = DEFAULT_REQUEST_LIFETIME,
        runtime_expires_in: int = DEFAULT_EXPIRES_IN_S,
        runtime_cache_seconds: float = RUNTIME_CACHE_SECONDS,
        clock: Callable[[], datetime] = utcnow,
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        self.database = database
        self.box = box
        self.admins = frozenset(admins)
        self.base_url = base_url  # the service's public URL, for callback URLs in admin instructions
        self._providers = providers
        self.request_lifetime = request_lifetime
        self.runtime_expires_in = runtime_expires_in
        self.runtime_cache_seconds = runtime_cache_seconds
        self._clock = clock
        self._monotonic = monotonic
        # (token hash, module) -> (when cached, answer); see runtime_answer.
        self._answers: dict[tuple[str, str], tuple[float, dict[str, Any]]] = {}

    # -- connections ------------------------------------------------------------------------

    def connection_fields(self, provider: str) -> tuple[ConnectionField, ...]:
        """The fields a connection of ``provider`` has, in the order to show them."""
        return tuple(self._provider(provider).connection_schema())

    async def can_manage(self, actor: str, environment: str) -> bool:
        """Whether ``actor`` may create, edit, test, delete and associate connections there."""
        async with self._session() as session:
            return await AccessGrants(session, self.admins).has_role(actor, _ROLE, environment)

    async def list_connections(
        self, environment: str, *, provider: str | None = None
    ) -> list[ConnectionSummary]:
        """The environment's connections (of ``provider`` only, if given), by name."""
        async with self._session() as session:
            env = await _environment(session, environment)
            connections = Connections(session, self.box)
            return [
                await self._summary(session, row)
                for row in await connections.in_environment(env)
                if provider is None or row.provider == provider
            ]

    async def get_connection(self, environment: str, name: str) -> ConnectionSummary:
        async with self._session() as session:
            env = await _environment(session, environment)
            return await self._summary(session, await _connection(session, self.box, env, name))

    async def check_values(
        self,
        actor: str,
        *,
        environment: str,
        provider: str,
        values: Mapping[str, str],
        name: str | None = None,
    ) -> ConnectionTestResult:
        """The "Test connection" button: validate and test, store nothing. With ``name`` (an
        edit), secret fields left blank take the stored values of that connection."""
        async with self._session() as session:
            await self._require_role(session, actor, environment)
            env = await _environment(session, environment)
            stored_values: Mapping[str, Any] = {}
            stored_secrets: Mapping[str, str] = {}
            if name is not None:
                row = await _connection(session, self.box, env, name)
                provider = row.provider
                stored_values = row.settings
                stored_secrets = Connections(session, self.box).read_secret(row)
        plugin = self._provider(provider)
        checked = await self._check(plugin, values, stored_values, stored_secrets)
        return await _test(plugin, checked.values, checked.secrets)

    async def create_connection(
        self, actor: str, *, environment: str, provider: str, name: str, values: Mapping[str, str]
    ) -> SavedConnection:
        """Validate, test, and save only if the test passed (else nothing is stored)."""
        name = _connection_name(name)
        async with self._session() as session:
            await self._require_role(session, actor, environment)
            env = await _environment(session, environment)
            if await Connections(session, self.box).by_name(env, name) is not None:
                raise ConnectionServiceError(
                    f"a connection named {name!r} already exists in {environment}", "name"
                )
        plugin = self._provider(provider)
        checked = await self._check(plugin, values)
        test = await _passing_test(plugin, checked)
        async with self._session() as session:
            env = await _environment(session, environment)
            fields = {"fields": checked.changed_from({})}
            row = await _create(session, self.box, env, plugin.key, name, checked, actor, test, fields)
            return SavedConnection(await self._summary(session, row), test)

    async def edit_connection(
        self, actor: str, *, environment: str, name: str, values: Mapping[str, str]
    ) -> SavedConnection:
        """New values for every field (blank secret fields keep theirs); tested before saving."""
        async with self._session() as session:
            await self._require_role(session, actor, environment)
            env = await _environment(session, environment)
            row = await _connection(session, self.box, env, name)
            stored = Connections(session, self.box).read_secret(row)
        plugin = self._provider(row.provider)
        checked = await self._check(plugin, values, row.settings, stored)
        test = await _passing_test(plugin, checked)
        changed = checked.changed_from(row.settings)
        async with self._changing_answers() as session:
            env = await _environment(session, environment)
            row = await _connection(session, self.box, env, name)
            connections = Connections(session, self.box)
            await connections.update(row, settings=checked.values, secret=checked.secrets)
            await connections.record_test(row, ok=True, message=test.message)
            await AuditLog(session).record(
                actor=actor,
                action="connection.edited",
                subject_type="connection",
                subject_id=row.id,
                details=_about(row) | {"fields": changed, "test": test.message},
            )
            return SavedConnection(await self._summary(session, row), test)

    async def test_connection(self, actor: str, *, environment: str, name: str) -> ConnectionTestResult:
        """Test a saved connection again and record the result (shown in listings)."""
        async with self._session() as session:
            await self._require_role(session, actor, environment)
            env = await _environment(session, environment)
            row = await _connection(session, self.box, env, name)
            secrets = Connections(session, self.box).read_secret(row)
        test = await _test(self._provider(row.provider), row.settings, secrets)
        async with self._session() as session:
            env = await _environment(session, environment)
            row = await _connection(session, self.box, env, name)
            await Connections(session, self.box).record_test(row, ok=test.ok, message=test.message)
            await AuditLog(session).record(
                actor=actor,
                action="connection.tested",
                subject_type="connection",
                subject_id=row.id,
                details=_about(row) | {"ok": test.ok, "test": test.message},
            )
        return test

    async def delete_connection(self, actor: str, *, environment: str, name: str) -> None:
        """Delete a connection no integration uses; otherwise refuse and name the users."""
        async with self._session() as session:
            await self._require_role(session, actor, environment)
            env = await _environment(session, environment)
            row = await _connection(session, self.box, env, name)
            users = [i.module_name for i in await Associations(session).integrations_using(row.id)]
            if users:
                raise ConnectionServiceError(
                    f"connection {name!r} is used by {', '.join(users)} in {environment}: associate "
                    f"{'it' if len(users) == 1 else 'them'} with another connection first"
                )
            details = _about(row)
            await Connections(session, self.box).delete(row)
            await AuditLog(session).record(
                actor=actor,
                action="connection.deleted",
                subject_type="connection",
                subject_id=row.id,
                details=details,
            )

    async def associate(
        self,
        actor: str,
        *,
        module_name: str,
        environment: str,
        connection_name: str,
        team_id: str | None = None,
    ) -> AssociationSummary:
        """Let the integration deployed as ``module_name`` use the connection in ``environment``."""
        async with self._changing_answers() as session:
            await self._require_role(session, actor, environment)
            env = await _environment(session, environment)
            integration = await _deployed(session, env, module_name, team_id)
            row = await _connection(session, self.box, env, connection_name)
            return await _associate(session, self.box, integration, env, row, actor)

    async def integration_connections(self, team_id: str, module_name: str) -> list[AssociationSummary]:
        """Where the integration is deployed and which connection it uses there."""
        async with self._session() as session:
            integration = await Integrations(session).by_module(team_id, module_name)
            if integration is None:
                raise ConnectionServiceError(f"there is no integration named {module_name} in this workspace")
            summaries = []
            for deployment in await Deployments(session).of_integration(integration.id):
                association = await Associations(session).get(integration.id, deployment.environment)
                connection = association.connection if association is not None else None
                summaries.append(_association(integration, deployment.environment, connection))
            return summaries

    # -- admin requests -----------------------------------------------------------------------

    async def request_admin(
        self,
        actor: str,
        *,
        admin: str,
        module_name: str,
        environment: str,
        note: str = "",
        team_id: str | None = None,
    ) -> AdminRequestSummary:
        """Ask ``admin`` (a Slack user) for the connection of ``module_name`` in ``environment``.

        For providers that need a certificate one is generated now; the summary's instructions
        carry it as a file for the administrator's DM.
        """
        if admin == actor:
            raise ConnectionServiceError(
                "pick the administrator of the external system, not yourself: "
                "if you have the credentials, create the connection directly",
                "admin",
            )
        async with self._session() as session:
            env = await _environment(session, environment)
            integration = await _deployed(session, env, module_name, team_id)
            await self._require_requester(session, actor, integration, env)
            plugin = self._provider(integration.provider)
        certificate = None
        if plugin.needs_certificate:
            certificate = await asyncio.to_thread(
                generate_certificate, f"Integration Builder {module_name} {environment}"
            )
        now = self._clock()
        async with self._session() as session:
            env = await _environment(session, environment)
            row = await AdminRequests(session, self.box).create(
                requester_user_id=actor,
                admin_user_id=admin,
                integration_id=integration.id,
                environment=env,
                provider=plugin.key,
                note=note.strip(),
                created_at=now,
                expires_at=now + self.request_lifetime,
                certificate_pem=certificate.certificate_pem if certificate else None,
                private_key=certificate.private_key_pem if certificate else None,
            )
            await AuditLog(session).record(
                actor=actor,
                action="admin_request.created",
                subject_type="admin_request",
                subject_id=row.id,
                details={
                    "admin": admin,
                    "integration": module_name,
                    "environment": environment,
                    "certificate": certificate is not None,
                },
            )
            return await self._request_summary(session, row)

    async def get_admin_request(self, actor: str, request_id: str) -> AdminRequestSummary:
        """The request, for its requester or its administrator; an overdue one reads as expired."""
        row = await self._current_request(request_id)
        if actor not in (row.requester_user_id, row.admin_user_id):
            raise ConnectionServiceError("this admin request is between two other people")
        return await self._summarize_request(row)

    async def open_admin_request(self, actor: str, request_id: str) -> AdminRequestSummary:
        """The request the "Provide connection details" button opens: only for the addressed
        administrator and only while it is pending (the modal asks for connection_fields)."""
        row = await self._current_request(request_id)
        _require_pending_for_admin(row, actor)
        return await self._summarize_request(row)

    async def complete_admin_request(
        self, actor: str, request_id: str, *, name: str, values: Mapping[str, str]
    ) -> CompletedRequest:
        """Test, save and associate the connection the administrator entered; once per request.

        A failing test stores nothing and leaves the request pending, so the administrator can
        correct the values and submit again.
        """
        name = _connection_name(name)
        row = await self._current_request(request_id)
        _require_pending_for_admin(row, actor)
        generated_values: dict[str, str] = {}
        generated_secrets: dict[str, str] = {}
        if row.certificate_pem is not None and row.private_key is not None:
            generated_values[CERTIFICATE_FIELD] = row.certificate_pem
            generated_secrets[PRIVATE_KEY_FIELD] = self.box.decrypt(row.private_key).decode("ascii")
        plugin = self._provider(row.provider)
        # The administrator never types what the service generated: it fills blank fields.
        given = dict(values)
        for field in plugin.connection_schema():
            if field.name in generated_values and not (given.get(field.name) or "").strip():
                given[field.name] = generated_values[field.name]
        checked = await self._check(plugin, given, generated_values, generated_secrets)
        test = await _passing_test(plugin, checked)
        async with self._changing_answers() as session:
            requests = AdminRequests(session, self.box)
            now = self._clock()
            # Conditional: of two submissions racing (a double click), one completes the request;
            # and one that outlasted the expiry while testing completes nothing.
            if not await requests.change_status(
                request_id, from_status="pending", to_status="completed", unexpired_at=now, completed_at=now
            ):
                raise ConnectionServiceError(_not_pending(await self._request(session, request_id)))
            env = await session.get(Environment, row.environment_id)
            integration = await session.get(Integration, row.integration_id) if row.integration_id else None
            if env is None or integration is None:
                raise ConnectionServiceError(
                    "the integration or environment of this request no longer exists"
                )
            asked = {"admin_request": request_id}
            connection = await _create(session, self.box, env, plugin.key, name, checked, actor, test, asked)
            await _associate(session, self.box, integration, env, connection, actor)
            completed = await requests.get(request_id)
            assert completed is not None
            completed.connection_id = connection.id
            await session.flush()
            await AuditLog(session).record(
                actor=actor,
                action="admin_request.completed",
                subject_type="admin_request",
                subject_id=request_id,
                details={"connection": connection.name, "environment": env.name},
            )
            return CompletedRequest(
                request=await self._request_summary(session, completed),
                connection=await self._summary(session, connection),
                test=test,
                notify=(row.requester_user_id,),
            )

    async def cancel_admin_request(self, actor: str, request_id: str) -> AdminRequestSummary:
        """Withdraw a pending request; only its requester may."""
        row = await self._current_request(request_id)
        if actor != row.requester_user_id:
            raise ConnectionServiceError(
                f"only <@{row.requester_user_id}>, who asked, can cancel this request"
            )
        async with self._session() as session:
            if not await AdminRequests(session, self.box).change_status(
                request_id, from_status="pending", to_status="cancelled"
            ):
                raise ConnectionServiceError(_not_pending(await self._request(session, request_id)))
            await AuditLog(session).record(
                actor=actor,
                action="admin_request.cancelled",
                subject_type="admin_request",
                subject_id=request_id,
            )
        return await self._summarize_request(await self._current_request(request_id))

    async def expire_admin_requests(self) -> list[AdminRequestSummary]:
        """Mark every overdue pending request expired (a periodic sweep); return them, e.g. to
        tell their requesters."""
        async with self._session() as session:
            requests = AdminRequests(session, self.box)
            expired = await requests.expire_due(self._clock())
            summaries = []
            for request_id in expired:
                await _audit_expiry(session, request_id)
                row = await requests.get(request_id)
                assert row is not None
                summaries.append(await self._request_summary(session, row))
            return summaries

    async def expired_requests_to_tell(self) -> list[AdminRequestSummary]:
        """Expire what is overdue, then claim every expired request whose requester was not told
        yet: each is returned once across all processes (a shared dedup key), however the request
        came to expire (this sweep, or an administrator's click on an overdue one).

        Only requests that expired within :data:`EXPIRY_NOTICE_DAYS` are considered, and dedup
        keys are pruned after :data:`DEDUP_KEEP_DAYS`, which is longer, so none is told twice.
        """
        await self.expire_admin_requests()
        now = self._clock()
        async with self._session() as session:
            rows = await AdminRequests(session, self.box).expired_since(
                now - timedelta(days=EXPIRY_NOTICE_DAYS)
            )
        told = []
        for row in rows:
            async with self._session() as session:
                first = await DedupKeys(session).claim(f"admin-request-expired:{row.id}")
            if first:
                told.append(await self._summarize_request(row))
        return told

    async def prune_dedup_keys(self) -> int:
        """Forget idempotency keys older than :data:`DEDUP_KEEP_DAYS` (Slack retries an event for
        minutes, not days); returns how many went."""
        async with self._session() as session:
            return await DedupKeys(session).prune(self._clock() - timedelta(days=DEDUP_KEEP_DAYS))

    async def admin_requests_for(self, user: str) -> list[AdminRequestSummary]:
        """Pending requests ``user`` made or must answer, newest first (for the App Home)."""
        await self.expire_admin_requests()
        async with self._session() as session:
            return [
                await self._request_summary(session, row)
                for row in await AdminRequests(session, self.box).involving(user)
            ]

    # -- runtime --------------------------------------------------------------------------------

    async def runtime_answer(self, token: str, module_name: str) -> dict[str, Any]:
        """What the Integration Manager answers a generated package: its connection in the
        environment the runtime token belongs to, with ``expires_in`` seconds (the provider's,
        e.g. an access token's lifetime, else ``runtime_expires_in``).

        Environments (and their tokens and package indexes) are shared by every workspace of this
        installation, and an environment's index serves one package per module name, so the
        token's environment and ``module_name`` name exactly one integration.

        Answers are kept in this process for ``runtime_cache_seconds`` (5): the database is read
        at most once per token, integration and period, whatever the number of app processes.
        Changes made through this service drop them at once; changes elsewhere (another replica,
        the CLI, a token revocation) are seen within that period. Refusals are never kept.
        """
        key = (RuntimeTokens.hash(token), module_name)
        now = self._monotonic()
        cached = self._answers.get(key)
        if cached is not None and now - cached[0] < self.runtime_cache_seconds:
            cached_at, answer = cached
            age = int(now - cached_at)
            return {**answer, "expires_in": max(1, int(answer["expires_in"]) - age)}
        answer = await self._runtime_lookup(token, module_name)
        if self.runtime_cache_seconds > 0:
            if len(self._answers) >= _CACHE_LIMIT:
                self._answers.clear()
            self._answers[key] = (now, answer)
        return dict(answer)

    async def _runtime_lookup(self, token: str, module_name: str) -> dict[str, Any]:
        async with self._session(read_only=True) as session:
            found = await RuntimeTokens(session).verify(token)
            if found is None:
                raise RuntimeLookupError(
                    "the runtime token is unknown or revoked; create one with `ib env token create ENV`",
                    "unauthorized",
                )
            env = found.environment
            deployed = await Deployments(session).deployed_named(env, module_name)
            if len(deployed) != 1:
                raise RuntimeLookupError(
                    f"integration {module_name!r} is not deployed to environment {env.name!r}: deploy it "
                    f"with /ib deploy or `ib deploy {module_name} {env.name}`"
                    if not deployed
                    else f"several integrations named {module_name!r} are deployed to {env.name!r}",
                    "not_deployed",
                )
            integration = deployed[0]
            association = await Associations(session).get(integration.id, env)
            row = association.connection if association is not None else None
            if row is None:
                raise RuntimeLookupError(
                    f"integration {module_name!r} has no connection in environment {env.name!r}: ask a "
                    f"connection admin to run /ib connections or `ib connection associate {module_name} "
                    f"{env.name} <connection name>`",
                    "no_connection",
                )
            secrets = Connections(session, self.box).read_secret(row)
        try:
            answer = await self._provider(row.provider).connection_answer(row.settings, secrets)
        except ProviderError as error:
            raise RuntimeLookupError(
                f"connection {row.name!r} of {module_name!r} in {env.name!r} is unusable: {error}", "unusable"
            ) from None
        answer.setdefault("expires_in", self.runtime_expires_in)
        return answer

    # -- helpers ---------------------------------------------------------------------------------

    @asynccontextmanager
    async def _changing_answers(self) -> AsyncIterator[AsyncSession]:
        """A unit of work that may change runtime answers: they are dropped once it committed."""
        async with self._session() as session:
            yield session
        self._answers.clear()

    @asynccontextmanager
    async def _session(self, *, read_only: bool = False) -> AsyncIterator[AsyncSession]:
        try:
            async with self.database.reader() if read_only else self.database.session() as session:
                yield session
        except StorageError as error:
            raise ConnectionServiceError(str(error)) from None

    def _provider(self, key: str) -> Provider:
        try:
            provider = self._providers(key)
        except ProviderError as error:
            raise ConnectionServiceError(str(error), "provider") from None
        if not provider.implemented:
            raise ConnectionServiceError(
                f"{provider.title} is not available yet in this installation of Integration Builder",
                "provider",
            )
        return provider

    async def _require_role(self, session: AsyncSession, actor: str, environment: str) -> None:
        if not await AccessGrants(session, self.admins).has_role(actor, _ROLE, environment):
            raise ConnectionServiceError(
                f"<@{actor}> may not manage connections in {environment}: that needs the connection_admin "
                f"role (`ib access grant {actor} connection_admin {environment}`), or ask an administrator"
            )

    async def _require_requester(
        self, session: AsyncSession, actor: str, integration: Integration, environment: Environment
    ) -> None:
        if environment.development and integration.owner_user_id == actor:
            return
        grants = AccessGrants(session, self.admins)
        for role in _REQUESTER_ROLES:
            if await grants.has_role(actor, role, environment.name):
                return
        raise ConnectionServiceError(
            f"<@{actor}> may not ask for connections of {integration.module_name} in {environment.name}: "
            "that needs the developer or connection_admin role there"
        )

    async def _check(
        self,
        provider: Provider,
        given: Mapping[str, str],
        stored_values: Mapping[str, Any] | None = None,
        stored_secrets: Mapping[str, str] | None = None,
    ) -> _Checked:
        """Validate ``given`` against the provider's schema; the first error, under its field."""
        fields = {field.name: field for field in provider.connection_schema()}
        for key in given:
            if key not in fields:
                raise ConnectionServiceError(
                    f"{provider.title} connections have no field {key!r} (fields: {', '.join(fields)})", key
                )
        values = {k: str(v) for k, v in (stored_values or {}).items() if k not in fields}
        secrets = dict(stored_secrets or {})
        new_secrets: list[str] = []
        for field in fields.values():
            value = _field_value(field, given.get(field.name, ""))
            if field.secret:
                if value:
                    secrets[field.name] = value
                    new_secrets.append(field.name)
                present = bool(secrets.get(field.name))
            else:
                if value:
                    values[field.name] = value
                present = bool(value)
            if field.required and not present:
                raise ConnectionServiceError(f"{field.label} is required", field.name)
        try:
            await provider.connection_answer(values, secrets)
        except ConnectionValueError as error:
            raise ConnectionServiceError(str(error), error.field) from None
        except ProviderError as error:
            raise ConnectionServiceError(str(error)) from None
        return _Checked(values, secrets, tuple(new_secrets))

    async def _summary(self, session: AsyncSession, row: ExternalConnection) -> ConnectionSummary:
        secrets = Connections(session, self.box).read_secret(row)
        users = await Associations(session).integrations_using(row.id)
        try:
            title = self._providers(row.provider).title
        except ProviderError:
            title = row.provider
        return ConnectionSummary(
            id=row.id,
            name=row.name,
            environment=row.environment.name,
            provider=row.provider,
            provider_title=title,
            values={str(k): str(v) for k, v in row.settings.items()},
            secrets_set=tuple(sorted(name for name, value in secrets.items() if value)),
            created_by=row.created_by,
            created_at=row.created_at,
            updated_at=row.updated_at,
            last_test_ok=row.last_test_ok,
            last_test_at=row.last_test_at,
            last_test_message=row.last_test_message,
            used_by=tuple(i.module_name for i in users),
        )

    async def _current_request(self, request_id: str) -> AdminRequest:
        """The request, read in a unit of work of its own, so marking an overdue one expired is
        committed even when the caller then refuses."""
        async with self._session() as session:
            return await self._request(session, request_id)

    async def _summarize_request(self, row: AdminRequest) -> AdminRequestSummary:
        async with self._session(read_only=True) as session:
            return await self._request_summary(session, row)

    async def _request(self, session: AsyncSession, request_id: str) -> AdminRequest:
        """The request; a pending one past its expiry is marked expired first."""
        requests = AdminRequests(session, self.box)
        row = await requests.get(request_id)
        if row is None:
            raise ConnectionServiceError("this admin request does not exist (any more)")
        if row.status == "pending" and row.expires_at <= self._clock():
            if await requests.change_status(request_id, from_status="pending", to_status="expired"):
                await _audit_expiry(session, request_id)
            row = await requests.get(request_id)
            assert row is not None
        return row

    async def _request_summary(self, session: AsyncSession, row: AdminRequest) -> AdminRequestSummary:
        integration = await session.get(Integration, row.integration_id) if row.integration_id else None
        env = await session.get(Environment, row.environment_id)
        connection = await session.get(ExternalConnection, row.connection_id) if row.connection_id else None
        module = integration.module_name if integration else "(deleted integration)"
        environment = env.name if env else "(deleted environment)"
        try:
            plugin: Provider | None = self._providers(row.provider)
        except ProviderError:
            plugin = None
        instructions = AdminInstructions(text="")
        if plugin is not None and plugin.implemented:
            context = _instruction_context(row, integration, environment)
            if self.base_url:
                context["base_url"] = self.base_url
            instructions = plugin.admin_instructions(context)
        if row.certificate_pem is not None:
            certificate = (_certificate_filename(module, environment), row.certificate_pem.encode("ascii"))
            instructions = AdminInstructions(instructions.text, (*instructions.files, certificate))
        return AdminRequestSummary(
            id=row.id,
            requester=row.requester_user_id,
            admin=row.admin_user_id,
            module_name=module,
            application_name=integration.application_name if integration else module,
            environment=environment,
            provider=row.provider,
            provider_title=plugin.title if plugin else row.provider,
            note=row.note,
            status=row.status,
            created_at=row.created_at,
            expires_at=row.expires_at,
            completed_at=row.completed_at,
            connection=connection.name if connection else None,
            instructions=instructions,
            team_id=integration.team_id if integration else None,
        )


async def _environment(session: AsyncSession, name: str) -> Environment:
    env = await Environments(session).get(name)
    if env is None:
        raise ConnectionServiceError(
            f"there is no environment named {name!r}; see `ib env list`", "environment"
        )
    return env


async def _connection(
    session: AsyncSession, box: SecretBox, environment: Environment, name: str
) -> ExternalConnection:
    row = await Connections(session, box).by_name(environment, name)
    if row is None:
        raise ConnectionServiceError(f"there is no connection named {name!r} in {environment.name}", "name")
    return row


async def _deployed(
    session: AsyncSession, environment: Environment, module_name: str, team_id: str | None
) -> Integration:
    deployed = [
        integration
        for integration in await Deployments(session).deployed_named(environment, module_name)
        if team_id is None or integration.team_id == team_id
    ]
    if not deployed:
        raise ConnectionServiceError(
            f"integration {module_name!r} is not deployed to {environment.name}: deploy it first "
            f"(/ib deploy {module_name} {environment.name})"
        )
    if len(deployed) > 1:
        raise ConnectionServiceError(f"several workspaces deploy {module_name!r} to {environment.name}")
    return deployed[0]


async def _create(
    session: AsyncSession,
    box: SecretBox,
    environment: Environment,
    provider: str,
    name: str,
    checked: _Checked,
    actor: str,
    test: ConnectionTestResult,
    details: Mapping[str, Any],
) -> ExternalConnection:
    """Store a connection whose ``test`` passed, with the test's result and an audit entry
    (``details`` added to what names the connection)."""
    connections = Connections(session, box)
    try:
        row = await connections.create(
            environment,
            provider=provider,
            name=name,
            settings=checked.values,
            secret=checked.secrets,
            created_by=actor,
        )
    except AlreadyExists as error:
        raise ConnectionServiceError(str(error), "name") from None
    await connections.record_test(row, ok=True, message=test.message)
    await AuditLog(session).record(
        actor=actor,
        action="connection.created",
        subject_type="connection",
        subject_id=row.id,
        details=_about(row) | dict(details) | {"test": test.message},
    )
    return row


async def _associate(
    session: AsyncSession,
    box: SecretBox,
    integration: Integration,
    environment: Environment,
    connection: ExternalConnection,
    actor: str,
) -> AssociationSummary:
    if connection.provider != integration.provider:
        raise ConnectionServiceError(
            f"connection {connection.name!r} is for {connection.provider}; {integration.module_name} needs "
            f"a {integration.provider} connection",
            "name",
        )
    connections = Connections(session, box)
    before = await connections.association(integration.id, environment)
    previous = before.connection.name if before is not None and before.connection is not None else None
    await connections.associate(integration.id, environment, connection, updated_by=actor)
    await AuditLog(session).record(
        actor=actor,
        action="connection.associated",
        subject_type="integration",
        subject_id=integration.id,
        details={
            "integration": integration.module_name,
            "environment": environment.name,
            "connection": connection.name,
            "previous_connection": previous,
        },
    )
    return _association(integration, environment, connection)


def _association(
    integration: Integration, environment: Environment, connection: ExternalConnection | None
) -> AssociationSummary:
    return AssociationSummary(
        module_name=integration.module_name,
        application_name=integration.application_name,
        provider=integration.provider,
        environment=environment.name,
        connection=connection.name if connection is not None else None,
    )


async def _test(
    provider: Provider, values: Mapping[str, str], secrets: Mapping[str, str]
) -> ConnectionTestResult:
    try:
        return await provider.test_connection(values, secrets)
    except ProviderError as error:
        return ConnectionTestResult(ok=False, message=str(error))


async def _passing_test(provider: Provider, checked: _Checked) -> ConnectionTestResult:
    test = await _test(provider, checked.values, checked.secrets)
    if not test.ok:
        raise ConnectionServiceError(f"the connection test failed, nothing was saved: {test.message}")
    return test


async def _audit_expiry(session: AsyncSession, request_id: str) -> None:
    await AuditLog(session).record(
        actor=SYSTEM_ACTOR,
        action="admin_request.expired",
        subject_type="admin_request",
        subject_id=request_id,
    )


def _require_pending_for_admin(row: AdminRequest, actor: str) -> None:
    if actor != row.admin_user_id:
        raise ConnectionServiceError(
            f"only <@{row.admin_user_id}>, whom <@{row.requester_user_id}> asked, can provide these "
            "connection details"
        )
    if row.status != "pending":
        raise ConnectionServiceError(_not_pending(row))


def _not_pending(row: AdminRequest) -> str:
    if row.status == "completed":
        return "this request was completed already; the connection is saved"
    if row.status == "cancelled":
        return f"<@{row.requester_user_id}> cancelled this request"
    return (
        f"this request expired on {row.expires_at:%Y-%m-%d %H:%M} UTC; "
        f"<@{row.requester_user_id}> can send a new one"
    )


def _connection_name(name: str) -> str:
    name = name.strip()
    if not CONNECTION_NAME.match(name):
        raise ConnectionServiceError(
            "a connection name is 1 to 64 letters, digits, spaces, '.', '_' or '-', starting with a letter "
            "or digit",
            "name",
        )
    return name


def _field_value(field: ConnectionField, raw: str) -> str:
    value = raw.strip() if field.kind != "multiline" else raw.rstrip()
    if not value:
        return field.default if field.kind == "choice" and not field.secret else ""
    if field.kind != "multiline" and ("\n" in value or "\r" in value):
        raise ConnectionServiceError(f"{field.label} must be one line", field.name)
    if field.kind == "choice" and value not in {choice for choice, _ in field.choices}:
        allowed = ", ".join(choice for choice, _ in field.choices)
        raise ConnectionServiceError(f"{field.label} must be one of {allowed}, not {value!r}", field.name)
    if field.kind == "url":
        parts = urlsplit(value)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise ConnectionServiceError(
                f"{field.label} must be an http(s) URL such as https://host/path/", field.name
            )
    return value


def _about(row: ExternalConnection) -> dict[str, Any]:
    return {"name": row.name, "environment": row.environment.name, "provider": row.provider}


def _instruction_context(
    row: AdminRequest, integration: Integration | None, environment: str
) -> dict[str, str]:
    context = {
        "requester": f"<@{row.requester_user_id}>",
        "environment": environment,
        "note": row.note,
    }
    if integration is not None:
        context |= {"integration": integration.module_name, "service_name": integration.application_name}
        try:
            spec = IntegrationSpec.from_dict(integration.spec)
        except SpecError:
            return context
        if spec.source.kind == "url" and spec.source.location:
            context["service_url"] = spec.source.location
        read_only = all(selection.access == "read-only" for selection in spec.objects)
        context["access"] = "read-only" if read_only else "read-write"
    if row.certificate_pem is not None:
        context["certificate"] = _certificate_filename(context.get("integration", ""), environment)
    return context


def _certificate_filename(module: str, environment: str) -> str:
    return f"integration-builder-{module}-{environment}.pem"


__all__ = (
    "DEFAULT_EXPIRES_IN_S",
    "DEFAULT_REQUEST_LIFETIME",
    "RUNTIME_CACHE_SECONDS",
    "AdminRequestSummary",
    "AssociationSummary",
    "CompletedRequest",
    "ConnectionService",
    "ConnectionServiceError",
    "ConnectionSummary",
    "RuntimeLookupError",
    "SavedConnection",
)
