"""The one exception hierarchy of generated packages.

IntegrationError
 +-- NotFound              404: the record does not exist (or is not visible)
 +-- Conflict              409 / 412: stale ETag or duplicate
 +-- Unauthorized          401: credentials missing or wrong
 +-- Forbidden             403: authenticated but not allowed
 +-- InvalidRequest        400 / 405 / 422: the request was rejected as malformed
 +-- RateLimited           429: too many requests; ``retry_after`` in seconds when the server said
 +-- ServiceUnavailable    5xx, timeouts and transport failures
 +-- ConfigurationError    no connection could be resolved for this integration / environment
"""

from __future__ import annotations


class IntegrationError(Exception):
    """Base class; carries what the remote system said."""

    def __init__(
        self,
        message: str,
        *,
        status: int | None = None,
        code: str | None = None,
        request_id: str | None = None,
    ) -> None:
        super().__init__(message)
        self.message = message
        self.status = status
        self.code = code
        self.request_id = request_id

    def __str__(self) -> str:
        parts = [self.message]
        if self.code:
            parts.append(f"code={self.code}")
        if self.status is not None:
            parts.append(f"status={self.status}")
        if self.request_id:
            parts.append(f"request_id={self.request_id}")
        return " ".join(parts) if len(parts) > 1 else self.message


class NotFound(IntegrationError):
    """The record does not exist."""


class Conflict(IntegrationError):
    """The record changed meanwhile (ETag mismatch) or conflicts with an existing one."""


class Unauthorized(IntegrationError):
    """Credentials are missing, wrong or expired."""


class Forbidden(IntegrationError):
    """The credentials are valid but not allowed to do this."""


class InvalidRequest(IntegrationError):
    """The external system rejected the request as invalid."""


class RateLimited(IntegrationError):
    """Too many requests; wait ``retry_after`` seconds (when known) before trying again."""

    def __init__(self, message: str, *, retry_after: float | None = None, **kwargs: object) -> None:
        super().__init__(message, **kwargs)  # type: ignore[arg-type]
        self.retry_after = retry_after


class ServiceUnavailable(IntegrationError):
    """The external system is down, overloaded or unreachable."""


class ConfigurationError(IntegrationError):
    """No usable connection: say which integration, which environment and how to fix it."""


def error_for_status(status: int) -> type[IntegrationError]:
    if status == 404:
        return NotFound
    if status in (409, 412):
        return Conflict
    if status == 401:
        return Unauthorized
    if status == 403:
        return Forbidden
    if status == 429:
        return RateLimited
    if status >= 500:
        return ServiceUnavailable
    return InvalidRequest
