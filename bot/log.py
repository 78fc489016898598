"""Logging for ``ib``: one line per record on stderr, with secrets masked in every record.

slack_sdk and slack_bolt log request bodies and tokens at DEBUG, so their loggers stay at WARNING
whatever ``IB_LOG_LEVEL`` says. The :class:`RedactingFilter` sits on the handler, so it sees the
records of every logger, including formatted tracebacks.
"""

from __future__ import annotations

import logging
import re
import sys
from collections.abc import Callable, Iterable

from aiohttp.web_log import AccessLogger
from aiohttp.web_request import BaseRequest
from aiohttp.web_response import StreamResponse

from storage.repositories import RUNTIME_TOKEN_PREFIX

# Alembic's INFO lines describe its internals ("non-transactional DDL", "Context impl") in ways
# that mislead readers; storage.migrate logs the revision change itself.
# msal and simple_salesforce log authorization codes and PKCE verifiers at DEBUG
QUIET_LOGGERS = ("slack_sdk", "slack_bolt", "slack_sdk.socket_mode", "alembic", "msal", "simple_salesforce")
MASK = "***"
_FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"


def _mask_authorization(match: re.Match[str]) -> str:
    scheme = f"{match['scheme']} " if match["scheme"] else ""
    return f"{match['name']}{scheme}{MASK}"


# Each pattern keeps what helps a reader (token kind, header or field name) and masks the rest.
_PATTERNS: tuple[tuple[re.Pattern[str], str | Callable[[re.Match[str]], str]], ...] = (
    (re.compile(r"\b(xox[abepors]|xapp)-[A-Za-z0-9-]+"), rf"\1-{MASK}"),
    (re.compile(rf"\b{RUNTIME_TOKEN_PREFIX}[A-Za-z0-9_-]+"), f"{RUNTIME_TOKEN_PREFIX}{MASK}"),
    (
        re.compile(
            r"(?i)(?P<name>\bauthorization['\"]?\s*[:=]\s*['\"]?)(?:(?P<scheme>bearer|basic|token)\s+)?"
            r"[^\s'\",;}]+"
        ),
        _mask_authorization,
    ),
    (re.compile(r"\bgAAAAA[A-Za-z0-9_-]{20,}={0,2}"), f"<fernet {MASK}>"),
    (
        re.compile(
            r"(?i)\b(client_secret|password|access_token|refresh_token|id_token|code_verifier)"
            r"(=|['\"]?\s*:\s*['\"]?)[^\s&'\",;}]+"
        ),
        rf"\1\2{MASK}",
    ),
    # OAuth authorization codes arrive in callback query strings.
    (re.compile(r"([?&]code=)[^\s&'\"]+"), rf"\1{MASK}"),
)


def redact(text: str, known_secrets: Iterable[str] = ()) -> str:
    """``text`` with every configured secret and every recognisable credential masked."""
    for secret in known_secrets:
        text = text.replace(secret, MASK)
    for pattern, replacement in _PATTERNS:
        text = pattern.sub(replacement, text)
    return text


class RedactingFilter(logging.Filter):
    """Masks Slack tokens, runtime tokens, Authorization values, Fernet tokens, credentials in
    query strings and forms, and the configured secrets (``known_secrets``) in every record."""

    def __init__(self, known_secrets: Iterable[str] = ()) -> None:
        super().__init__()
        # Longest first, so a secret that contains another is masked whole.
        self.known_secrets = tuple(sorted((s for s in known_secrets if len(s) >= 6), key=len, reverse=True))

    def filter(self, record: logging.LogRecord) -> bool:
        try:
            message = record.getMessage()
        except (TypeError, ValueError):
            # Arguments that do not fit the format: keep the template, never the raw arguments.
            message = str(record.msg)
        record.msg = redact(message, self.known_secrets)
        record.args = None
        if record.exc_info and not record.exc_text:
            record.exc_text = logging.Formatter().formatException(record.exc_info)
        if record.exc_text:
            record.exc_text = redact(record.exc_text, self.known_secrets)
        if record.stack_info:
            record.stack_info = redact(record.stack_info, self.known_secrets)
        return True


def configure_logging(level: str = "INFO", known_secrets: Iterable[str] = ()) -> None:
    """Send every record to stderr through the redaction filter; replaces earlier configuration."""
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(logging.Formatter(_FORMAT))
    handler.addFilter(RedactingFilter(known_secrets))
    root = logging.getLogger()
    for existing in list(root.handlers):
        root.removeHandler(existing)
    root.addHandler(handler)
    root.setLevel(level)
    for name in QUIET_LOGGERS:
        logging.getLogger(name).setLevel(logging.WARNING)


class QuietAccessLogger(AccessLogger):
    """aiohttp's access log, without the successful calls of machine endpoints.

    Generated packages (/manager/), pip (/envs/) and probes (/healthz, /readyz) call far more
    often than people do; logging each success costs more server CPU than answering it. Their
    failures are still logged, and everything is logged at DEBUG.
    """

    QUIET_PREFIXES: tuple[str, ...] = ("/manager/", "/healthz", "/readyz", "/metrics")

    def log(self, request: BaseRequest, response: StreamResponse, time: float) -> None:
        if (
            response.status < 400
            and request.path.startswith(self.QUIET_PREFIXES)
            and not self.logger.isEnabledFor(logging.DEBUG)
        ):
            return
        super().log(request, response, time)
