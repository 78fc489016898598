"""Persistence: SQLAlchemy 2 async models, repositories, Alembic migrations, secret encryption.

``storage`` imports nothing else of the project. Typical use::

    database = Database(settings.database_url)
    await database.migrate()
    async with database.session() as session:
        dev = await Environments(session).require("dev")
"""

from storage.database import Database
from storage.engine import DEFAULT_DATABASE_URL
from storage.errors import (
    AlreadyExists,
    ImmutableVersion,
    InUse,
    InvalidValue,
    NotFound,
    SchemaOutOfDate,
    SecretDecryptionError,
    SecretError,
    SecretKeyError,
    StaleDraft,
    StorageError,
)
from storage.repositories import (
    AccessGrants,
    AdminRequests,
    Associations,
    AuditLog,
    CatalogCache,
    Connections,
    DedupKeys,
    Deployments,
    Drafts,
    Environments,
    EnvironmentUsage,
    Integrations,
    PublishJobs,
    RuntimeTokens,
)
from storage.rotation import rotate_secrets
from storage.secrets import SecretBox, generate_key

__all__ = [
    "DEFAULT_DATABASE_URL",
    "AccessGrants",
    "AdminRequests",
    "AlreadyExists",
    "Associations",
    "AuditLog",
    "CatalogCache",
    "Connections",
    "Database",
    "DedupKeys",
    "Deployments",
    "Drafts",
    "EnvironmentUsage",
    "Environments",
    "ImmutableVersion",
    "InUse",
    "Integrations",
    "InvalidValue",
    "NotFound",
    "PublishJobs",
    "RuntimeTokens",
    "SchemaOutOfDate",
    "SecretBox",
    "SecretDecryptionError",
    "SecretError",
    "SecretKeyError",
    "StaleDraft",
    "StorageError",
    "generate_key",
    "rotate_secrets",
]
