"""The database schema as typed SQLAlchemy 2 models (DESIGN.md section 1).

Portable on purpose: only types that SQLite and PostgreSQL both have (no native enums, no JSONB,
no arrays), so one migration history serves both. Timestamps are always timezone-aware UTC.
Columns whose ``info`` has ``encrypted=True`` hold Fernet tokens; ``ib keys rotate`` finds them
through :func:`encrypted_columns`, so a new secret column is rotated without further code.
Large blobs (wheels, sdists) are deferred and raise on implicit load: read them on purpose with
``undefer`` or the repositories' artifact methods, never by accident in a listing.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any, Final

from sqlalchemy import (
    JSON,
    Boolean,
    CheckConstraint,
    Column,
    DateTime,
    Dialect,
    ForeignKey,
    Index,
    Integer,
    LargeBinary,
    MetaData,
    String,
    Text,
    TypeDecorator,
    UniqueConstraint,
    event,
)
from sqlalchemy.ext.asyncio import AsyncAttrs
from sqlalchemy.orm import DeclarativeBase, Mapped, Mapper, mapped_column, relationship

from storage.errors import ImmutableVersion

# Stable constraint names make later migrations (and SQLite batch mode) deterministic.
NAMING_CONVENTION: Final = {
    "ix": "ix_%(table_name)s_%(column_0_N_name)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}

ROLES: Final = ("developer", "deployer", "connection_admin")
ALL_ENVIRONMENTS: Final = "*"
DRAFT_STATUSES: Final = ("open", "published", "abandoned")
PUBLISH_STATES: Final = ("queued", "generating", "building", "publishing", "published", "failed")
PUBLISH_FINAL_STATES: Final = ("published", "failed")
ADMIN_REQUEST_STATUSES: Final = ("pending", "completed", "cancelled", "expired")

SLACK_ID = 64  # Slack user/team/channel ids are short; enterprise ids stay well below this
NAME = 200


def utcnow() -> datetime:
    return datetime.now(UTC)


def new_id() -> str:
    return str(uuid.uuid4())


class UtcDateTime(TypeDecorator[datetime]):
    """Aware UTC datetimes on every backend (SQLite would otherwise hand back naive values)."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetime given to the database; use storage.models.utcnow()")
        return value.astimezone(UTC)

    def process_result_value(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


def _one_of(column: str, values: tuple[str, ...]) -> CheckConstraint:
    allowed = ", ".join(f"'{value}'" for value in values)
    return CheckConstraint(f"{column} IN ({allowed})", name=column)


class Base(AsyncAttrs, DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING_CONVENTION)
    type_annotation_map = {
        datetime: UtcDateTime(),
        dict[str, Any]: JSON(),
        bytes: LargeBinary(),
    }


class Environment(Base):
    __tablename__ = "environments"

    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(String(64), unique=True)
    development: Mapped[bool] = mapped_column(Boolean, default=False)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


class RuntimeToken(Base):
    """A bearer token for generated packages and pip; only its sha256 is stored."""

    __tablename__ = "runtime_tokens"

    id: Mapped[int] = mapped_column(primary_key=True)
    environment_id: Mapped[int] = mapped_column(ForeignKey("environments.id"), index=True)
    token_hash: Mapped[str] = mapped_column(String(64), unique=True)
    label: Mapped[str] = mapped_column(String(NAME), default="")
    created_by: Mapped[str] = mapped_column(String(SLACK_ID))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    revoked_at: Mapped[datetime | None]

    environment: Mapped[Environment] = relationship(lazy="joined")


class Integration(Base):
    __tablename__ = "integrations"
    __table_args__ = (UniqueConstraint("team_id", "module_name"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    team_id: Mapped[str] = mapped_column(String(SLACK_ID))
    module_name: Mapped[str] = mapped_column(String(100))
    application_name: Mapped[str] = mapped_column(String(NAME))
    provider: Mapped[str] = mapped_column(String(40))
    owner_user_id: Mapped[str] = mapped_column(String(SLACK_ID), index=True)
    open: Mapped[bool] = mapped_column(Boolean, default=False)
    spec: Mapped[dict[str, Any]]
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow, onupdate=utcnow)


class IntegrationVersion(Base):
    """One immutable build; see :func:`_refuse_version_update`."""

    __tablename__ = "integration_versions"
    __table_args__ = (UniqueConstraint("integration_id", "version"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    integration_id: Mapped[int] = mapped_column(ForeignKey("integrations.id"))
    version: Mapped[str] = mapped_column(String(64))
    wheel_filename: Mapped[str] = mapped_column(String(255))
    wheel: Mapped[bytes] = mapped_column(deferred=True, deferred_raiseload=True)
    sha256: Mapped[str] = mapped_column(String(64))
    sdist_filename: Mapped[str | None] = mapped_column(String(255))
    sdist: Mapped[bytes | None] = mapped_column(deferred=True, deferred_raiseload=True)
    sdist_sha256: Mapped[str | None] = mapped_column(String(64))
    spec: Mapped[dict[str, Any]]
    created_by: Mapped[str] = mapped_column(String(SLACK_ID))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)

    integration: Mapped[Integration] = relationship(lazy="joined")


@event.listens_for(IntegrationVersion, "before_update")
def _refuse_version_update(mapper: Mapper[Any], connection: Any, target: IntegrationVersion) -> None:
    raise ImmutableVersion(f"version {target.version} is published and cannot be changed")


class Deployment(Base):
    """Which version of an integration runs in an environment now."""

    __tablename__ = "deployments"
    __table_args__ = (UniqueConstraint("integration_id", "environment_id"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    integration_id: Mapped[int] = mapped_column(ForeignKey("integrations.id"))
    environment_id: Mapped[int] = mapped_column(ForeignKey("environments.id"), index=True)
    version_id: Mapped[int] = mapped_column(ForeignKey("integration_versions.id"), index=True)
    deployed_by: Mapped[str] = mapped_column(String(SLACK_ID))
    deployed_at: Mapped[datetime] = mapped_column(default=utcnow)

    environment: Mapped[Environment] = relationship(lazy="joined")
    version: Mapped[IntegrationVersion] = relationship(lazy="joined")


class DeploymentHistory(Base):
    """Every deployment ever made, newest last; never updated."""

    __tablename__ = "deployment_history"
    __table_args__ = (Index(None, "integration_id", "environment_id"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    integration_id: Mapped[int] = mapped_column(ForeignKey("integrations.id"))
    environment_id: Mapped[int] = mapped_column(ForeignKey("environments.id"))
    version_id: Mapped[int] = mapped_column(ForeignKey("integration_versions.id"))
    deployed_by: Mapped[str] = mapped_column(String(SLACK_ID))
    deployed_at: Mapped[datetime] = mapped_column(default=utcnow)


class Draft(Base):
    """The wizard's state; ``version`` grows by one on every save (optimistic concurrency)."""

    __tablename__ = "drafts"
    __table_args__ = (
        Index(None, "owner_user_id", "status"),
        _one_of("status", DRAFT_STATUSES),
    )

    id: Mapped[str] = mapped_column(String(36), primary_key=True, default=new_id)
    owner_user_id: Mapped[str] = mapped_column(String(SLACK_ID))
    team_id: Mapped[str] = mapped_column(String(SLACK_ID))
    integration_id: Mapped[int | None] = mapped_column(ForeignKey("integrations.id"))
    step: Mapped[str] = mapped_column(String(32))
    state: Mapped[dict[str, Any]]
    version: Mapped[int] = mapped_column(Integer, default=1)
    status: Mapped[str] = mapped_column(String(16), default="open")
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow)


class ExternalConnection(Base):
    """Credentials for one external system in one environment.

    ``settings`` holds the non-secret fields in clear; ``secret`` is the Fernet token of a JSON
    object with the secret fields (see :class:`storage.secrets.SecretBox`).
    """

    __tablename__ = "connections"
    __table_args__ = (UniqueConstraint("environment_id", "name"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    environment_id: Mapped[int] = mapped_column(ForeignKey("environments.id"))
    provider: Mapped[str] = mapped_column(String(40))
    name: Mapped[str] = mapped_column(String(NAME))
    settings: Mapped[dict[str, Any]]
    secret: Mapped[bytes] = mapped_column(info={"encrypted": True})
    created_by: Mapped[str] = mapped_column(String(SLACK_ID))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow, onupdate=utcnow)
    last_test_ok: Mapped[bool | None] = mapped_column(Boolean)
    last_test_at: Mapped[datetime | None]
    last_test_message: Mapped[str | None] = mapped_column(Text)

    environment: Mapped[Environment] = relationship(lazy="joined")


class Association(Base):
    """(integration, environment) -> connection; empty after a promotion until someone picks one."""

    __tablename__ = "associations"
    __table_args__ = (UniqueConstraint("integration_id", "environment_id"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    integration_id: Mapped[int] = mapped_column(ForeignKey("integrations.id"))
    environment_id: Mapped[int] = mapped_column(ForeignKey("environments.id"))
    connection_id: Mapped[int | None] = mapped_column(
        ForeignKey("connections.id", ondelete="SET NULL"), index=True
    )
    updated_by: Mapped[str] = mapped_column(String(SLACK_ID))
    updated_at: Mapped[datetime] = mapped_column(default=utcnow, onupdate=utcnow)

    connection: Mapped[ExternalConnection | None] = relationship(lazy="joined")


class PublishJob(Base):
    """The durable publish state machine (queued -> ... -> published | failed)."""

    __tablename__ = "publish_jobs"
    __table_args__ = (_one_of("state", PUBLISH_STATES),)

    id: Mapped[str] = mapped_column(String(36), primary_key=True, default=new_id)
    team_id: Mapped[str] = mapped_column(String(SLACK_ID))
    integration_id: Mapped[int | None] = mapped_column(ForeignKey("integrations.id"), index=True)
    draft_id: Mapped[str | None] = mapped_column(ForeignKey("drafts.id", ondelete="SET NULL"), index=True)
    # Removing an environment must not be blocked by its job history; a job still running then
    # finds no target and fails, naming the environment it kept in ``environment``.
    target_environment_id: Mapped[int | None] = mapped_column(
        ForeignKey("environments.id", ondelete="SET NULL")
    )
    environment: Mapped[str] = mapped_column(String(64))
    spec: Mapped[dict[str, Any]]
    # zlib-compressed catalog JSON, so a restarted process resumes without fetching the metadata
    catalog: Mapped[bytes | None] = mapped_column(deferred=True, deferred_raiseload=True)
    version: Mapped[str | None] = mapped_column(String(64))  # the version being built
    state: Mapped[str] = mapped_column(String(16), default="queued", index=True)
    error: Mapped[str | None] = mapped_column(Text)
    dedup_key: Mapped[str] = mapped_column(String(255), unique=True)
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    requested_by: Mapped[str] = mapped_column(String(SLACK_ID))
    result_version_id: Mapped[int | None] = mapped_column(ForeignKey("integration_versions.id"))
    slack_channel: Mapped[str | None] = mapped_column(String(SLACK_ID))
    slack_ts: Mapped[str | None] = mapped_column(String(32))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow, onupdate=utcnow)
    started_at: Mapped[datetime | None]
    finished_at: Mapped[datetime | None]
    notified_at: Mapped[datetime | None]  # the final notification was sent (at most once)


class AdminRequest(Base):
    """A developer asks an external system's administrator (a Slack user) for a connection."""

    __tablename__ = "admin_requests"
    __table_args__ = (
        Index(None, "admin_user_id", "status"),
        _one_of("status", ADMIN_REQUEST_STATUSES),
    )

    id: Mapped[str] = mapped_column(String(36), primary_key=True, default=new_id)
    requester_user_id: Mapped[str] = mapped_column(String(SLACK_ID), index=True)
    admin_user_id: Mapped[str] = mapped_column(String(SLACK_ID))
    integration_id: Mapped[int | None] = mapped_column(ForeignKey("integrations.id"))
    environment_id: Mapped[int] = mapped_column(ForeignKey("environments.id"))
    provider: Mapped[str] = mapped_column(String(40))
    note: Mapped[str] = mapped_column(Text, default="")
    status: Mapped[str] = mapped_column(String(16), default="pending")
    expires_at: Mapped[datetime]
    certificate_pem: Mapped[str | None] = mapped_column(Text)
    private_key: Mapped[bytes | None] = mapped_column(info={"encrypted": True})
    connection_id: Mapped[int | None] = mapped_column(ForeignKey("connections.id", ondelete="SET NULL"))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    completed_at: Mapped[datetime | None]


class AccessGrant(Base):
    """A role for a Slack user in one environment, or in all of them with ``environment='*'``."""

    __tablename__ = "access_grants"
    __table_args__ = (
        UniqueConstraint("slack_user_id", "role", "environment"),
        _one_of("role", ROLES),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    slack_user_id: Mapped[str] = mapped_column(String(SLACK_ID))
    role: Mapped[str] = mapped_column(String(32))
    environment: Mapped[str] = mapped_column(String(64), default=ALL_ENVIRONMENTS)
    created_by: Mapped[str] = mapped_column(String(SLACK_ID))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


class DedupKey(Base):
    """A claimed idempotency key (Slack retries, double clicks); see ``DedupKeys.claim``."""

    __tablename__ = "dedup_keys"

    key: Mapped[str] = mapped_column(String(255), primary_key=True)
    created_at: Mapped[datetime] = mapped_column(default=utcnow, index=True)


class AuditEntry(Base):
    """Who did what to which subject; ``details`` never holds a secret (see ``AuditLog.record``)."""

    __tablename__ = "audit_log"
    __table_args__ = (Index(None, "subject_type", "subject_id"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    at: Mapped[datetime] = mapped_column(default=utcnow, index=True)
    actor: Mapped[str] = mapped_column(String(SLACK_ID))
    action: Mapped[str] = mapped_column(String(64))
    subject_type: Mapped[str] = mapped_column(String(40))
    subject_id: Mapped[str] = mapped_column(String(64))
    details: Mapped[dict[str, Any]] = mapped_column(default=dict)


class OAuthState(Base):
    """A pending design-time authorization of an external system (PKCE verifier encrypted)."""

    __tablename__ = "oauth_states"

    state: Mapped[str] = mapped_column(String(128), primary_key=True)
    provider: Mapped[str] = mapped_column(String(40))
    user_id: Mapped[str] = mapped_column(String(SLACK_ID))
    draft_id: Mapped[str | None] = mapped_column(ForeignKey("drafts.id", ondelete="CASCADE"), index=True)
    code_verifier: Mapped[bytes] = mapped_column(info={"encrypted": True})
    expires_at: Mapped[datetime] = mapped_column(index=True)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


class CatalogCacheEntry(Base):
    """A parsed catalog of a draft's metadata, serialised by the caller and zlib-compressed."""

    __tablename__ = "catalog_cache"

    draft_id: Mapped[str] = mapped_column(ForeignKey("drafts.id", ondelete="CASCADE"), primary_key=True)
    catalog: Mapped[bytes]
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


def encrypted_columns() -> Iterator[Column[Any]]:
    """Every column that holds Fernet tokens, found by ``info={"encrypted": True}``."""
    for table in Base.metadata.sorted_tables:
        for column in table.columns:
            if column.info.get("encrypted"):
                yield column
