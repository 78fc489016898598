"""Repositories: the operations the service needs, on one session (one unit of work).

Each repository wraps the ``AsyncSession`` of ``async with database.session() as session`` and
returns model instances that stay usable after the block ends (the session does not expire them).
Conflicts raise :mod:`storage.errors` with one line, safe to show.
"""

from __future__ import annotations

import hashlib
import re
import secrets
import zlib
from collections.abc import Collection, Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any, TypeVar, cast

from sqlalchemy import CursorResult, Executable, delete, func, insert, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from storage.errors import AlreadyExists, InUse, InvalidValue, NotFound, StaleDraft
from storage.models import (
    ALL_ENVIRONMENTS,
    PUBLISH_FINAL_STATES,
    ROLES,
    AccessGrant,
    AdminRequest,
    Association,
    AuditEntry,
    Base,
    CatalogCacheEntry,
    DedupKey,
    Deployment,
    DeploymentHistory,
    Draft,
    Environment,
    ExternalConnection,
    Integration,
    IntegrationVersion,
    PublishJob,
    RuntimeToken,
    utcnow,
)
from storage.secrets import SecretBox

_Row = TypeVar("_Row", bound=Base)

# Environment names appear in URLs (/envs/<env>/simple/) and in pip index lines.
ENVIRONMENT_NAME = re.compile(r"^[a-z][a-z0-9-]{0,30}[a-z0-9]$|^[a-z]$")
# Lets log redaction and secret scanners recognise a leaked token.
RUNTIME_TOKEN_PREFIX = "ibrt_"  # noqa: S105 (a prefix, not a secret)


def _is_unique_violation(error: IntegrityError) -> bool:
    original = error.orig
    # asyncpg reports SQLSTATE 23505; sqlite3 names the failed UNIQUE/PRIMARY KEY constraint.
    return getattr(original, "sqlstate", None) == "23505" or getattr(original, "sqlite_errorname", "") in (
        "SQLITE_CONSTRAINT_UNIQUE",
        "SQLITE_CONSTRAINT_PRIMARYKEY",
    )


async def _rowcount(session: AsyncSession, statement: Executable) -> int:
    """How many rows an UPDATE or DELETE touched."""
    result = cast(CursorResult[Any], await session.execute(statement))
    return result.rowcount


async def _insert(session: AsyncSession, row: _Row, conflict: str | None = None) -> _Row:
    """Insert ``row`` and load its relationships.

    With ``conflict``, a unique violation raises :class:`AlreadyExists` with that message and
    leaves the unit of work usable (the insert runs in a savepoint). Rows refer to other rows by
    id, never by assigning instances: those often come from an earlier unit of work, and attaching
    them here would clash with copies this session already loaded.
    """
    try:
        async with session.begin_nested():
            session.add(row)
    except IntegrityError as error:
        if conflict is None or not _is_unique_violation(error):
            raise
        raise AlreadyExists(conflict) from None
    await session.refresh(row)
    return row


class Environments:
    def __init__(self, session: AsyncSession) -> None:
        self.session = session

    async def get(self, name: str) -> Environment | None:
        return await self.session.scalar(select(Environment).where(Environment.name == name))

    async def require(self, name: str) -> Environment:
        environment = await self.get(name)
        if environment is None:
            raise NotFound(f"no environment named {name!r}")
        return environment

    async def all(self) -> list[Environment]:
        return list(await self.session.scalars(select(Environment).order_by(Environment.id)))

    async def create(self, name: str, *, development: bool = False) -> Environment:
        if not ENVIRONMENT_NAME.match(name):
            raise InvalidValue(
                f"environment name {name!r} must be lowercase letters, digits and '-', at most 32 long"
            )
        row = Environment(name=name, development=development)
        return await _insert(self.session, row, f"environment {name!r} already exists")

    async def usage(self, environment: Environment) -> EnvironmentUsage:
        async def count(statement: Any) -> int:
            return int(await self.session.scalar(statement) or 0)

        return EnvironmentUsage(
            deployments=await count(select(func.count()).where(Deployment.environment_id == environment.id)),
            connections=await count(
                select(func.count()).where(ExternalConnection.environment_id == environment.id)
            ),
            live_tokens=await count(
                select(func.count()).where(
                    RuntimeToken.environment_id == environment.id, RuntimeToken.revoked_at.is_(None)
                )
            ),
        )

    async def remove(self, environment: Environment, *, force: bool = False) -> None:
        """Delete ``environment`` with its tokens, grants and job targets.

        Deployments and connections are deleted too only with ``force``; otherwise
        :class:`InUse` names them. The last development environment is never removed: the
        wizard publishes there.
        """
        if environment.development:
            others = await self.session.scalar(
                select(func.count()).where(
                    Environment.development.is_(True), Environment.id != environment.id
                )
            )
            if not others:
                raise InUse(
                    f"{environment.name} is the only development environment and the wizard publishes "
                    "there; add another with `ib env add NAME --development` first"
                )
        usage = await self.usage(environment)
        if not force and (usage.deployments or usage.connections):
            raise InUse(
                f"environment {environment.name!r} still has {usage.deployments} deployment(s) and "
                f"{usage.connections} connection(s); remove them or pass --force"
            )
        env_id = environment.id
        for statement in (
            delete(Association).where(Association.environment_id == env_id),
            delete(Deployment).where(Deployment.environment_id == env_id),
            delete(DeploymentHistory).where(DeploymentHistory.environment_id == env_id),
            delete(AdminRequest).where(AdminRequest.environment_id == env_id),
            delete(ExternalConnection).where(ExternalConnection.environment_id == env_id),
            delete(RuntimeToken).where(RuntimeToken.environment_id == env_id),
            delete(AccessGrant).where(AccessGrant.environment == environment.name),
            delete(Environment).where(Environment.id == env_id),
        ):
            await self.session.execute(statement.execution_options(synchronize_session=False))


@dataclass(frozen=True, slots=True)
class EnvironmentUsage:
    deployments: int
    connections: int
    live_tokens: int


class RuntimeTokens:
    """Bearer tokens of one environment; the plaintext is shown once, only its sha256 is kept."""

    def __init__(self, session: AsyncSession) -> None:
        self.session = session

    @staticmethod
    def hash(token: str) -> str:
        return hashlib.sha256(token.encode("utf-8")).hexdigest()

    async def create(
        self, environment: Environment, *, label: str, created_by: str
    ) -> tuple[RuntimeToken, str]:
        """A new token; returns the row and the plaintext (which is never stored)."""
        token = RUNTIME_TOKEN_PREFIX + secrets.token_urlsafe(32)
        row = RuntimeToken(
            environment_id=environment.id, token_hash=self.hash(token), label=label, created_by=created_by
        )
        return await _insert(self.session, row), token

    async def verify(self, token: str) -> RuntimeToken | None:
        """The live token row (with its environment) for ``token``, or None."""
        return await self.session.scalar(
            select(RuntimeToken).where(
                RuntimeToken.token_hash == self.hash(token), RuntimeToken.revoked_at.is_(None)
            )
        )

    async def revoke(self, token_id: int) -> bool:
        """Revoke a token; False when it does not exist or was revoked already."""
        revoked = await _rowcount(
            self.session,
            update(RuntimeToken)
            .where(RuntimeToken.id == token_id, RuntimeToken.revoked_at.is_(None))
            .values(revoked_at=utcnow())
            .execution_options(synchronize_session=False),
        )
        return revoked == 1

    async def in_environment(self, environment: Environment) -> list[RuntimeToken]:
        return list(
            await self.session.scalars(
                select(RuntimeToken)
                .where(RuntimeToken.environment_id == environment.id)
                .order_by(RuntimeToken.id)
            )
        )


class Integrations:
    """Integrations, their immutable versions and the artifacts of those versions."""

    def __init__(self, session: AsyncSession) -> None:
        self.session = session

    async def create(
        self,
        *,
        team_id: str,
        module_name: str,
        application_name: str,
        provider: str,
        owner_user_id: str,
        spec: Mapping[str, Any],
        open: bool = False,
    ) -> Integration:
        row = Integration(
            team_id=team_id,
            module_name=module_name,
            application_name=application_name,
            provider=provider,
            owner_user_id=owner_user_id,
            spec=dict(spec),
            open=open,
        )
        return await _insert(
            self.session, row, f"module name {module_name!r} is already taken in this workspace"
        )

    async def get(self, integration_id: int) -> Integration | None:
        return await self.session.get(Integration, integration_id)

    async def by_module(self, team_id: str, module_name: str) -> Integration | None:
        return await self.session.scalar(
            select(Integration).where(Integration.team_id == team_id, Integration.module_name == module_name)
        )

    async def teams(self, module_name: str | None = None) -> list[str]:
        """The workspaces that have integrations (named ``module_name``, if given)."""
        statement = select(Integration.team_id).distinct().order_by(Integration.team_id)
        if module_name is not None:
            statement = statement.where(Integration.module_name == module_name)
        return list(await self.session.scalars(statement))

    async def in_team(self, team_id: str) -> list[Integration]:
        return list(
            await self.session.scalars(
                select(Integration).where(Integration.team_id == team_id).order_by(Integration.module_name)
            )
        )

    async def add_version(
        self,
        integration: Integration,
        *,
        version: str,
        wheel_filename: str,
        wheel: bytes,
        spec: Mapping[str, Any],
        created_by: str,
        sdist_filename: str | None = None,
        sdist: bytes | None = None,
    ) -> IntegrationVersion:
        row = IntegrationVersion(
            integration_id=integration.id,
            version=version,
            wheel_filename=wheel_filename,
            wheel=wheel,
            sha256=hashlib.sha256(wheel).hexdigest(),
            sdist_filename=sdist_filename,
            sdist=sdist,
            sdist_sha256=hashlib.sha256(sdist).hexdigest() if sdist is not None else None,
            spec=dict(spec),
            created_by=created_by,
        )
        return await _insert(
            self.session, row, f"version {version} of {integration.module_name} is already published"
        )

    async def versions(self, integration: Integration) -> list[IntegrationVersion]:
        """Every version, newest first; artifacts are not loaded."""
        return list(
            await self.session.scalars(
                select(IntegrationVersion)
                .where(IntegrationVersion.integration_id == integration.id)
                .order_by(IntegrationVersion.id.desc())
            )
        )

    async def get_version(self, integration: Integration, version: str) -> IntegrationVersion | None:
        return await self.session.scalar(
            select(IntegrationVersion).where(
                IntegrationVersion.integration_id == integration.id, IntegrationVersion.version == version
            )
        )

    async def artifact(self, version: IntegrationVersion, filename: str) -> bytes:
        """The bytes of the version's wheel or sdist named ``filename``."""
        data: bytes | None = None
        where = IntegrationVersion.id == version.id
        if filename == version.wheel_filename:
            data = await self.session.scalar(select(IntegrationVersion.wheel).where(where))
        elif filename == version.sdist_filename:
            data = await self.session.scalar(select(IntegrationVersion.sdist).where(where))
        if data is None:
            raise NotFound(f"{filename} is not a file of version {version.version}")
        return data


class Deployments:
    """Which version runs where, and the history of every deployment."""

    def __init__(self, session: AsyncSession) -> None:
        self.session = session

    async def deploy(
        self, version: IntegrationVersion, environment: Environment, *, deployed_by: str
    ) -> Deployment:
        """Make ``version`` the one running in ``environment`` and add that to the history."""
        at = utcnow()
        current = await self.current(version.integration_id, environment)
        if current is None:
            first = Deployment(
                integration_id=version.integration_id,
                environment_id=environment.id,
                version_id=version.id,
                deployed_by=deployed_by,
                deployed_at=at,
            )
            try:
                current = await _insert(self.session, first, "deployed concurrently")
            except AlreadyExists:
                # Another unit of work deployed this integration here first: take its row over.
                current = await self.current(version.integration_id, environment)
                assert current is not None
        current.version_id = version.id
        current.deployed_by = deployed_by
        current.deployed_at = at
        self.session.add(
            DeploymentHistory(
                integration_id=version.integration_id,
                environment_id=environment.id,
                version_id=version.id,
                deployed_by=deployed_by,
                deployed_at=at,
            )
        )
        await self.session.flush()
        await self.session.refresh(current)
        return current

    async def current(self, integration_id: int, environment: Environment) -> Deployment | None:
        return await self.session.scalar(
            select(Deployment).where(
                Deployment.integration_id == integration_id, Deployment.environment_id == environment.id
            )
        )

    async def in_environment(self, environment: Environment) -> list[Deployment]:
        return list(
            await self.session.scalars(
                select(Deployment).where(Deployment.environment_id == environment.id).order_by(Deployment.id)
            )
        )

    async def of_integration(self, integration_id: int) -> list[Deployment]:
        """Where the integration runs now, in the order the environments were created."""
        return list(
            await self.session.scalars(
                select(Deployment)
                .where(Deployment.integration_id == integration_id)
                .order_by(Deployment.environment_id)
            )
        )

    async def deployed_named(self, environment: Environment, module_name: str) -> list[Integration]:
        """The integrations called ``module_name`` running in ``environment`` now (one, unless
        the package index's one-name-per-environment rule was bypassed)."""
        return list(
            await self.session.scalars(
                select(Integration)
                .join(Deployment, Deployment.integration_id == Integration.id)
                .where(Deployment.environment_id == environment.id, Integration.module_name == module_name)
                .order_by(Integration.id)
            )
        )

    async def served(self, environment: Environment) -> list[Integration]:
        """Integrations with a version ever deployed to ``environment`` (its package index)."""
        ever_deployed = select(DeploymentHistory.integration_id).where(
            DeploymentHistory.environment_id == environment.id
        )
        return list(
            await self.session.scalars(
                select(Integration).where(Integration.id.in_(ever_deployed)).order_by(Integration.module_name)
            )
        )

    async def served_versions(self, environment: Environment, module_name: str) -> list[IntegrationVersion]:
        """Every version of ``module_name`` ever deployed to ``environment``, oldest first."""
        deployed = select(DeploymentHistory.version_id).where(
            DeploymentHistory.environment_id == environment.id
        )
        return list(
            await self.session.scalars(
                select(IntegrationVersion)
                .join(Integration, IntegrationVersion.integration_id == Integration.id)
                .where(Integration.module_name == module_name, IntegrationVersion.id.in_(deployed))
                .order_by(IntegrationVersion.id)
            )
        )

    async def served_file(self, environment: Environment, filename: str) -> bytes | None:
        """The wheel or sdist called ``filename`` if one of its versions was deployed here."""
        deployed = select(DeploymentHistory.version_id).where(
            DeploymentHistory.environment_id == environment.id
        )
        for column, name in (
            (IntegrationVersion.wheel, IntegrationVersion.wheel_filename),
            (IntegrationVersion.sdist, IntegrationVersion.sdist_filename),
        ):
            data = await self.session.scalar(
                select(column).where(name == filename, IntegrationVersion.id.in_(deployed)).limit(1)
            )
            if data is not None:
                return data
        return None

    async def history(self, integration_id: int) -> list[DeploymentHistory]:
        """Every deployment of the integration, oldest first."""
        return list(
            await self.session.scalars(
                select(DeploymentHistory)
                .where(DeploymentHistory.integration_id == integration_id)
                .order_by(DeploymentHistory.id)
            )
        )


class Drafts:
    """Wizard drafts with optimistic concurrency: every save names the version it was based on."""

    def __init__(self, session: AsyncSession) -> None:
        self.session = session

    async def create(
        self,
        *,
        owner_user_id: str,
        team_id: str,
        step: str,
        state: Mapping[str, Any],
        integration_id: int | None = None,
    ) -> Draft:
        row = Draft(
            owner_user_id=owner_user_id,
            team_id=team_id,
            step=step,
            state=dict(state),
            integration_id=integration_id,
        )
        return await _insert(self.session, row)

    async def get(self, draft_id: str) -> Draft | None:
        return await self.session.get(Draft, draft_id)

    async def require(self, draft_id: str) -> Draft:
        draft = await self.get(draft_id)
        if draft is None:
            raise NotFound("this draft no longer exists; start again with /ib new")
        return draft

    async def save(
        self,
        draft_id: str,
        *,
        expected_version: int,
        step: str,
        state: Mapping[str, Any],
        status: str | None = None,
    ) -> Draft:
        """Store a new state if the draft is still at ``expected_version``; else :class:`StaleDraft`."""
        values: dict[str, Any] = {
            "step": step,
            "state": dict(state),
            "version": Draft.version + 1,
            "updated_at": utcnow(),
        }
        if status is not None:
            values["status"] = status
        saved = await _rowcount(
            self.session,
            update(Draft)
            .where(Draft.id == draft_id, Draft.version == expected_version)
            .values(values)
            .execution_options(synchronize_session=False),
        )
        if not saved:
            await self.require(draft_id)
            raise StaleDraft("this draft was changed elsewhere (another window or a double click); reopen it")
        draft = await self.session.get(Draft, draft_id, populate_existing=True)
        assert draft is not None
        return draft

    async def open_for(self, owner_user_id: str, team_id: str) -> list[Draft]:
        """The user's open drafts, most recently touched first."""
        return list(
            await self.session.scalars(
                select(Draft)
                .where(Draft.owner_user_id == owner_user_id, Draft.team_id == team_id, Draft.status == "open")
                .order_by(Draft.updated_at.desc())
            )
        )


class DedupKeys:
    """Idempotency keys shared by every process: whoever inserts a key first owns the event.

    Claim in a short unit of work of its own: the key (and, on SQLite, the write lock) is held
    until that unit commits.
    """

    def __init__(self, session: AsyncSession) -> None:
        self.session = session

    async def claim(self, key: str) -> bool:
        """True for the first claim of ``key`` anywhere, False for every later one."""
        try:
            # A Core insert, not session.add(): the identity map must not answer for the database.
            async with self.session.begin_nested():
                await self.session.execute(insert(DedupKey).values(key=key))
        except IntegrityError as error:
            if not _is_unique_violation(error):
                raise
            return False
        return True

    async def prune(self, older_than: datetime) -> int:
        return await _rowcount(self.session, delete(DedupKey).where(DedupKey.created_at < older_than))


# Names of details that would carry a secret; audit entries are shown to users and kept forever.
_SECRET_DETAIL_NAMES = frozenset(
    {
        "access_token",
        "api_key",
        "authorization",
        "bot_token",
        "client_secret",
        "code_verifier",
        "id_token",
        "password",
        "private_key",
        "refresh_token",
        "secret",
        "token",
    }
)


def _secret_detail(details: Any) -> str | None:
    if isinstance(details, Mapping):
        for name, value in details.items():
            lowered = str(name).lower()
            if lowered in _SECRET_DETAIL_NAMES or lowered.endswith(("_secret", "_password")):
                return str(name)
            found = _secret_detail(value)
            if found:
                return found
    elif isinstance(details, list | tuple):
        for item in details:
            found = _secret_detail(item)
            if found:
                return found
    return None


class AuditLog:
    def __init__(self, session: AsyncSession) -> None:
        self.session = session

    async def record(
        self,
        *,
        actor: str,
        action: str,
        subject_type: str,
        subject_id: str | int,
        details: Mapping[str, Any] | None = None,
    ) -> AuditEntry:
        """Append an entry; details that look like secrets are refused (a programming error)."""
        secret_name = _secret_detail(details)
        if secret_name is not None:
            raise ValueError(f"audit details must not carry secrets: remove {secret_name!r}")
        row = AuditEntry(
            actor=actor,
            action=action,
            subject_type=subject_type,
            subject_id=str(subject_id),
            details=dict(details or {}),
        )
        self.session.add(row)
        await self.session.flush()
        return row

    async def for_subject(
        self, subject_type: str, subject_id: str | int, limit: int = 50
    ) -> list[AuditEntry]:
        """The latest entries about one subject, newest first."""
        return list(
            await self.session.scalars(
                select(AuditEntry)
                .where(AuditEntry.subject_type == subject_type, AuditEntry.subject_id == str(subject_id))
                .order_by(AuditEntry.id.desc())
                .limit(limit)
            )
        )


class Connections:
    """Connections (secret fields encrypted with the :class:`SecretBox`) and associations."""

    def __init__(self, session: AsyncSession, box: SecretBox) -> None:
        self.session = session
        self.box = box

    async def create(
        self,
        environment: Environment,
        *,
        provider: str,
        name: str,
        settings: Mapping[str, Any],
        secret: Mapping[str, Any],
        created_by: str,
    ) -> ExternalConnection:
        row = ExternalConnection(
            environment_id=environment.id,
            provider=provider,
            name=name,
            settings=dict(settings),
            secret=self.box.encrypt_json(secret),
            created_by=created_by,
        )
        return await _insert(
            self.session, row, f"a connection named {name!r} already exists in {environment.name}"
        )

    async def get(self, connection_id: int) -> ExternalConnection | None:
        return await self.session.get(ExternalConnection, connection_id)

    async def in_environment(self, environment: Environment) -> list[ExternalConnection]:
        return list(
            await self.session.scalars(
                select(ExternalConnection)
                .where(ExternalConnection.environment_id == environment.id)
                .order_by(ExternalConnection.name)
            )
        )

    async def by_name(self, environment: Environment, name: str) -> ExternalConnection | None:
        return await self.session.scalar(
            select(ExternalConnection).where(
                ExternalConnection.environment_id == environment.id, ExternalConnection.name == name
            )
        )

    def read_secret(self, connection: ExternalConnection) -> dict[str, Any]:
        return self.box.decrypt_json(connection.secret)

    async def update(
        self,
        connection: ExternalConnection,
        *,
        settings: Mapping[str, Any] | None = None,
        secret: Mapping[str, Any] | None = None,
    ) -> ExternalConnection:
        if settings is not None:
            connection.settings = dict(settings)
        if secret is not None:
            connection.secret = self.box.encrypt_json(secret)
        await self.session.flush()
        return connection

    async def record_test(self, connection: ExternalConnection, *, ok: bool, message: str) -> None:
        connection.last_test_ok = ok
        connection.last_test_at = utcnow()
        connection.last_test_message = message
        await self.session.flush()

    async def delete(self, connection: ExternalConnection) -> None:
        """Delete the connection; associations that used it become empty."""
        await self.session.delete(connection)
        await self.session.flush()

    async def association(self, integration_id: int, environment: Environment) -> Association | None:
        return await Associations(self.session).get(integration_id, environment)

    async def associate(
        self,
        integration_id: int,
        environment: Environment,
        connection: ExternalConnection | None,
        *,
        updated_by: str,
    ) -> Association:
        """Point (integration, environment) at ``connection``; None leaves it empty."""
        if connection is not None and connection.environment_id != environment.id:
            raise InvalidValue(
                f"connection {connection.name!r} belongs to {connection.environment.name}, "
                f"not to {environment.name}"
            )
        row = await Associations(self.session).ensure(integration_id, environment, updated_by=updated_by)
        row.connection_id = connection.id if connection is not None else None
        row.updated_by = updated_by
        row.updated_at = utcnow()
        await self.session.flush()
        await self.session.refresh(row)
        return row


class Associations:
    """(integration, environment) -> connection rows, without touching any secret.

    Deployment creates the row empty; :meth:`Connections.associate` points it at a connection.
    """

    def __init__(self, session: AsyncSession) -> None:
        self.session = session

    async def get(self, integration_id: int, environment: Environment) -> Association | None:
        return await self.session.scalar(
            select(Association).where(
                Association.integration_id == integration_id, Association.environment_id == environment.id
            )
        )

    async def integrations_using(self, connection_id: int) -> list[Integration]:
        """The integrations associated with the connection, by module name."""
        return list(
            await self.session.scalars(
                select(Integration)
                .join(Association, Association.integration_id == Integration.id)
                .where(Association.connection_id == connection_id)
                .order_by(Integration.module_name)
            )
        )

    async def ensure(self, integration_id: int, environment: Environment, *, updated_by: str) -> Association:
        """The existing association, or a new empty one."""
        row = await self.get(integration_id, environment)
        if row is not None:
            return row
        empty = Association(
            integration_id=integration_id, environment_id=environment.id, updated_by=updated_by
        )
        try:
            return await _insert(self.session, empty, "associated concurrently")
        except AlreadyExists:
            row = await self.get(integration_id, environment)
            assert row is not None
            return row


class AdminRequests:
    """Admin requests; a generated private key is stored encrypted with the :class:`SecretBox`.

    Status changes are conditional on the status the caller saw, so a request is completed,
    cancelled or expired exactly once however many clicks race for it.
    """

    def __init__(self, session: AsyncSession, box: SecretBox) -> None:
        self.session = session
        self.box = box

    async def create(
        self,
        *,
        requester_user_id: str,
        admin_user_id: str,
        integration_id: int,
        environment: Environment,
        provider: str,
        note: str,
        created_at: datetime,
        expires_at: datetime,
        certificate_pem: str | None = None,
        private_key: bytes | None = None,
    ) -> AdminRequest:
        row = AdminRequest(
            created_at=created_at,
            requester_user_id=requester_user_id,
            admin_user_id=admin_user_id,
            integration_id=integration_id,
            environment_id=environment.id,
            provider=provider,
            note=note,
            expires_at=expires_at,
            certificate_pem=certificate_pem,
            private_key=self.box.encrypt(private_key) if private_key is not None else None,
        )
        return await _insert(self.session, row)

    async def get(self, request_id: str) -> AdminRequest | None:
        return await self.session.get(AdminRequest, request_id, populate_existing=True)

    def read_private_key(self, request: AdminRequest) -> bytes | None:
        return self.box.decrypt(request.private_key) if request.private_key is not None else None

    async def change_status(
        self,
        request_id: str,
        *,
        from_status: str,
        to_status: str,
        unexpired_at: datetime | None = None,
        **values: Any,
    ) -> bool:
        """Move the request from ``from_status`` to ``to_status`` (with ``unexpired_at``, only if
        it expires after then); False when it was not in ``from_status`` any more (someone else
        changed it first) or has expired."""
        condition = (AdminRequest.id == request_id) & (AdminRequest.status == from_status)
        if unexpired_at is not None:
            condition &= AdminRequest.expires_at > unexpired_at
        changed = await _rowcount(
            self.session,
            update(AdminRequest)
            .where(condition)
            .values(status=to_status, **values)
            .execution_options(synchronize_session=False),
        )
        return changed == 1

    async def expire_due(self, now: datetime) -> list[str]:
        """Mark every pending request past its expiry as expired; return their ids."""
        due = list(
            await self.session.scalars(
                select(AdminRequest.id).where(
                    AdminRequest.status == "pending", AdminRequest.expires_at <= now
                )
            )
        )
        return [
            request_id
            for request_id in due
            if await self.change_status(request_id, from_status="pending", to_status="expired")
        ]

    async def expired_since(self, since: datetime) -> list[AdminRequest]:
        """Requests marked expired whose expiry came after ``since``, oldest expiry first."""
        return list(
            await self.session.scalars(
                select(AdminRequest)
                .where(AdminRequest.status == "expired", AdminRequest.expires_at > since)
                .order_by(AdminRequest.expires_at)
            )
        )

    async def involving(self, user_id: str, statuses: Collection[str] = ("pending",)) -> list[AdminRequest]:
        """Requests made by or addressed to ``user_id`` in one of ``statuses``, newest first."""
        return list(
            await self.session.scalars(
                select(AdminRequest)
                .where(
                    (AdminRequest.requester_user_id == user_id) | (AdminRequest.admin_user_id == user_id),
                    AdminRequest.status.in_(statuses),
                )
                .order_by(AdminRequest.created_at.desc())
            )
        )


class CatalogCache:
    """Parsed catalogs per draft, so wizard steps do not fetch and parse the metadata again."""

    def __init__(self, session: AsyncSession) -> None:
        self.session = session

    async def put(self, draft_id: str, catalog: bytes) -> None:
        await self.session.merge(CatalogCacheEntry(draft_id=draft_id, catalog=zlib.compress(catalog, 6)))
        await self.session.flush()

    async def get(self, draft_id: str) -> bytes | None:
        entry = await self.session.get(CatalogCacheEntry, draft_id)
        return zlib.decompress(entry.catalog) if entry is not None else None


class PublishJobs:
    """The durable publish state machine's rows; transitions are conditional, so two runners of
    one job (a resumed process next to a live one) never move a finished job again."""

    def __init__(self, session: AsyncSession) -> None:
        self.session = session

    async def create(
        self,
        *,
        team_id: str,
        requested_by: str,
        environment: Environment,
        spec: Mapping[str, Any],
        catalog: bytes,
        dedup_key: str,
        draft_id: str | None = None,
    ) -> PublishJob:
        """A queued job; :class:`AlreadyExists` when ``dedup_key`` was used before."""
        row = PublishJob(
            team_id=team_id,
            requested_by=requested_by,
            target_environment_id=environment.id,
            environment=environment.name,
            spec=dict(spec),
            catalog=zlib.compress(catalog, 6),
            dedup_key=dedup_key,
            draft_id=draft_id,
        )
        return await _insert(self.session, row, "a publish job with this key exists")

    async def get(self, job_id: str) -> PublishJob | None:
        return await self.session.get(PublishJob, job_id, populate_existing=True)

    async def by_dedup_key(self, dedup_key: str) -> PublishJob | None:
        return await self.session.scalar(select(PublishJob).where(PublishJob.dedup_key == dedup_key))

    async def lock(self, job_id: str) -> PublishJob | None:
        """The job, locked until the unit of work ends (a row lock on PostgreSQL; SQLite's
        ``BEGIN IMMEDIATE`` already serialises writers)."""
        return await self.session.scalar(
            select(PublishJob)
            .where(PublishJob.id == job_id)
            .with_for_update()
            .execution_options(populate_existing=True)
        )

    async def catalog(self, job_id: str) -> bytes | None:
        data = await self.session.scalar(select(PublishJob.catalog).where(PublishJob.id == job_id))
        return zlib.decompress(data) if data is not None else None

    async def claim(self, job: PublishJob) -> bool:
        """Count one more attempt at ``job``; False when anyone moved it since ``job`` was read."""
        claimed = await _rowcount(
            self.session,
            update(PublishJob)
            .where(
                PublishJob.id == job.id, PublishJob.state == job.state, PublishJob.attempts == job.attempts
            )
            .values(attempts=job.attempts + 1, started_at=job.started_at or utcnow(), updated_at=utcnow())
            .execution_options(synchronize_session=False),
        )
        return claimed == 1

    async def advance(self, job_id: str, state: str, **values: Any) -> bool:
        """Move an unfinished job to ``state`` (with ``values``); False when it is finished."""
        if state in PUBLISH_FINAL_STATES:
            values.setdefault("finished_at", utcnow())
        moved = await _rowcount(
            self.session,
            update(PublishJob)
            .where(PublishJob.id == job_id, PublishJob.state.not_in(PUBLISH_FINAL_STATES))
            .values(state=state, updated_at=utcnow(), **values)
            .execution_options(synchronize_session=False),
        )
        return moved == 1

    async def unfinished(self) -> list[str]:
        """Ids of every job not published or failed yet, oldest first."""
        return list(
            await self.session.scalars(
                select(PublishJob.id)
                .where(PublishJob.state.not_in(PUBLISH_FINAL_STATES))
                .order_by(PublishJob.created_at)
            )
        )

    async def queued(self) -> list[str]:
        return list(
            await self.session.scalars(
                select(PublishJob.id).where(PublishJob.state == "queued").order_by(PublishJob.created_at)
            )
        )

    async def unnotified(self) -> list[str]:
        """Ids of finished jobs whose final notification was never sent."""
        return list(
            await self.session.scalars(
                select(PublishJob.id)
                .where(PublishJob.state.in_(PUBLISH_FINAL_STATES), PublishJob.notified_at.is_(None))
                .order_by(PublishJob.created_at)
            )
        )

    async def claim_notification(self, job_id: str) -> bool:
        """True for exactly one caller per finished job: that caller sends the final notification."""
        claimed = await _rowcount(
            self.session,
            update(PublishJob)
            .where(
                PublishJob.id == job_id,
                PublishJob.state.in_(PUBLISH_FINAL_STATES),
                PublishJob.notified_at.is_(None),
            )
            .values(notified_at=utcnow())
            .execution_options(synchronize_session=False),
        )
        return claimed == 1

    async def release_notification(self, job_id: str) -> None:
        """Undo a claim whose notification could not be sent, so a later start retries it."""
        await self.session.execute(
            update(PublishJob)
            .where(PublishJob.id == job_id)
            .values(notified_at=None)
            .execution_options(synchronize_session=False)
        )


class AccessGrants:
    """Roles per environment (``developer``, ``deployer``, ``connection_admin``).

    ``admins`` (the service's ``IB_ADMINS``) hold every role everywhere without any row, so
    removing a user from ``IB_ADMINS`` takes their rights away at the next start.
    """

    def __init__(self, session: AsyncSession, admins: Collection[str] = ()) -> None:
        self.session = session
        self.admins = frozenset(admins)

    @staticmethod
    def _check_role(role: str) -> None:
        if role not in ROLES:
            raise InvalidValue(f"role {role!r} is not one of {', '.join(ROLES)}")

    async def grant(self, user_id: str, role: str, environment: str, *, created_by: str) -> AccessGrant:
        """Give ``user_id`` ``role`` in ``environment`` (a name, or ``*`` for all of them)."""
        self._check_role(role)
        if environment != ALL_ENVIRONMENTS:
            await Environments(self.session).require(environment)
        row = AccessGrant(slack_user_id=user_id, role=role, environment=environment, created_by=created_by)
        return await _insert(
            self.session, row, f"{user_id} already has the {role} role in {_environments_label(environment)}"
        )

    async def revoke(self, user_id: str, role: str, environment: str) -> bool:
        """False when there was no such grant."""
        self._check_role(role)
        revoked = await _rowcount(
            self.session,
            delete(AccessGrant)
            .where(
                AccessGrant.slack_user_id == user_id,
                AccessGrant.role == role,
                AccessGrant.environment == environment,
            )
            .execution_options(synchronize_session=False),
        )
        return revoked == 1

    async def all(self) -> list[AccessGrant]:
        return list(
            await self.session.scalars(
                select(AccessGrant).order_by(
                    AccessGrant.slack_user_id, AccessGrant.environment, AccessGrant.role
                )
            )
        )

    async def has_role(self, user_id: str, role: str, environment: str) -> bool:
        """Whether ``user_id`` may act as ``role`` in the environment named ``environment``."""
        self._check_role(role)
        if user_id in self.admins:
            return True
        found = await self.session.scalar(
            select(AccessGrant.id).where(
                AccessGrant.slack_user_id == user_id,
                AccessGrant.role == role,
                AccessGrant.environment.in_((environment, ALL_ENVIRONMENTS)),
            )
        )
        return found is not None


def _environments_label(environment: str) -> str:
    return "every environment" if environment == ALL_ENVIRONMENTS else environment
