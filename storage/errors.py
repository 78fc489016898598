"""Errors raised by ``storage``; every message is one line, safe to show, never a secret.

StorageError
├── NotFound            a row the caller named does not exist
├── AlreadyExists       a unique name or version is taken
├── InvalidValue        a value the schema cannot hold (e.g. an environment name unfit for URLs)
├── InUse               a row still has dependants the caller did not agree to delete
├── StaleDraft          the draft changed since the caller read it (optimistic concurrency)
├── ImmutableVersion    a published version was about to be modified
├── SchemaOutOfDate     the database is not migrated to the code's head revision
└── SecretError
    ├── SecretKeyError         the configured keys are missing or malformed
    └── SecretDecryptionError  a stored secret does not open with the configured keys
"""

from __future__ import annotations


class StorageError(Exception):
    """Base class of everything ``storage`` raises on purpose."""


class NotFound(StorageError):
    pass


class AlreadyExists(StorageError):
    pass


class InvalidValue(StorageError):
    pass


class InUse(StorageError):
    pass


class StaleDraft(StorageError):
    pass


class ImmutableVersion(StorageError):
    pass


class SchemaOutOfDate(StorageError):
    pass


class SecretError(StorageError):
    pass


class SecretKeyError(SecretError):
    pass


class SecretDecryptionError(SecretError):
    pass
