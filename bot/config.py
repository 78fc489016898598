"""The service's configuration, read once from environment variables (README, "Configuration").

Secrets stay out of ``repr`` so a logged or printed :class:`Settings` never leaks one.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlsplit

from storage import DEFAULT_DATABASE_URL
from storage.secrets import DEFAULT_KEY_FILE

DEFAULT_SLACK_API_URL = "https://slack.com/api/"
DEFAULT_METADATA_MAX_BYTES = 50 * 1024 * 1024
# How often `ib serve` expires overdue admin requests (telling their requesters) and prunes old
# idempotency keys; every replica sweeps, and each request is told once.
DEFAULT_HOUSEKEEPING_SECONDS = 300
_TRUE = frozenset({"1", "true", "yes", "on"})
_FALSE = frozenset({"0", "false", "no", "off", ""})


class ConfigError(ValueError):
    """An environment variable has a value the service cannot use; one line, names the variable."""


@dataclass(frozen=True, slots=True)
class Settings:
    database_url: str = DEFAULT_DATABASE_URL
    secret_keys: str = field(default="", repr=False)
    key_file: Path = DEFAULT_KEY_FILE
    base_url: str = ""
    admins: tuple[str, ...] = ()
    slack_signing_secret: str = field(default="", repr=False)
    slack_bot_token: str = field(default="", repr=False)
    slack_app_token: str = field(default="", repr=False)
    slack_client_id: str = ""
    slack_client_secret: str = field(default="", repr=False)
    slack_api_url: str = DEFAULT_SLACK_API_URL
    allow_private_urls: bool = False
    metadata_max_bytes: int = DEFAULT_METADATA_MAX_BYTES
    host: str = "127.0.0.1"
    port: int = 8080
    log_level: str = "INFO"
    microsoft_authority_host: str = "login.microsoftonline.com"
    salesforce_login_url: str = "https://login.salesforce.com"
    housekeeping_seconds: int = DEFAULT_HOUSEKEEPING_SECONDS

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> Settings:
        env = os.environ if environ is None else environ

        def text(name: str, default: str = "") -> str:
            return env.get(name, "").strip() or default

        return cls(
            database_url=text("IB_DATABASE_URL", DEFAULT_DATABASE_URL),
            secret_keys=text("IB_SECRET_KEYS"),
            key_file=Path(text("IB_KEY_FILE", str(DEFAULT_KEY_FILE))),
            base_url=_url(env, "IB_BASE_URL", "").rstrip("/"),
            admins=tuple(user for user in text("IB_ADMINS").replace(" ", ",").split(",") if user),
            slack_signing_secret=text("SLACK_SIGNING_SECRET"),
            slack_bot_token=text("SLACK_BOT_TOKEN"),
            slack_app_token=text("SLACK_APP_TOKEN"),
            slack_client_id=text("SLACK_CLIENT_ID"),
            slack_client_secret=text("SLACK_CLIENT_SECRET"),
            slack_api_url=_slack_api_url(env),
            allow_private_urls=_flag(env, "IB_ALLOW_PRIVATE_URLS"),
            metadata_max_bytes=_positive_int(env, "IB_METADATA_MAX_BYTES", DEFAULT_METADATA_MAX_BYTES),
            host=text("IB_HOST", "127.0.0.1"),
            port=_port(env, "IB_PORT", 8080),
            log_level=_log_level(env),
            microsoft_authority_host=text("IB_MICROSOFT_AUTHORITY_HOST", "login.microsoftonline.com"),
            housekeeping_seconds=_positive_int(env, "IB_HOUSEKEEPING_SECONDS", DEFAULT_HOUSEKEEPING_SECONDS),
            salesforce_login_url=_url(env, "IB_SALESFORCE_LOGIN_URL", "https://login.salesforce.com").rstrip(
                "/"
            ),
        )

    @property
    def public_base_url(self) -> str:
        """Where Slack, browsers and pip reach this service (callbacks, index lines)."""
        return self.base_url or f"http://{self.host}:{self.port}"

    @property
    def slack_install_enabled(self) -> bool:
        """Multi-workspace install (/slack/install) is configured."""
        return bool(self.slack_client_id and self.slack_client_secret)

    def missing_for_slack(self, socket_mode: bool = False) -> tuple[str, ...]:
        """What still has to be set before Slack can reach the bot; empty when nothing is missing.

        HTTP mode needs the signing secret plus either a bot token (one workspace) or the client
        id and secret (install into any workspace); Socket Mode needs an app and a bot token.
        """
        missing: list[str] = []
        if socket_mode:
            if not self.slack_app_token:
                missing.append("SLACK_APP_TOKEN")
            if not self.slack_bot_token:
                missing.append("SLACK_BOT_TOKEN")
            return tuple(missing)
        if not self.slack_signing_secret:
            missing.append("SLACK_SIGNING_SECRET")
        if self.slack_bot_token or self.slack_install_enabled:
            return tuple(missing)
        if self.slack_client_id:
            missing.append("SLACK_CLIENT_SECRET")
        elif self.slack_client_secret:
            missing.append("SLACK_CLIENT_ID")
        else:
            missing.append(
                "SLACK_BOT_TOKEN (or SLACK_CLIENT_ID/SLACK_CLIENT_SECRET for multi-workspace install)"
            )
        return tuple(missing)

    def secret_values(self) -> tuple[str, ...]:
        """Every configured secret, for log redaction."""
        values = (
            *self.secret_keys.replace(",", " ").split(),
            self.slack_signing_secret,
            self.slack_bot_token,
            self.slack_app_token,
            self.slack_client_secret,
        )
        return tuple(value for value in values if value)


def _flag(env: Mapping[str, str], name: str) -> bool:
    value = env.get(name, "").strip().lower()
    if value in _TRUE:
        return True
    if value in _FALSE:
        return False
    raise ConfigError(f"{name} must be true or false (1/0, yes/no, on/off), not {value!r}")


def _positive_int(env: Mapping[str, str], name: str, default: int) -> int:
    value = env.get(name, "").strip()
    if not value:
        return default
    if not value.isdigit() or int(value) == 0:
        raise ConfigError(f"{name} must be a positive whole number, not {value!r}")
    return int(value)


def _port(env: Mapping[str, str], name: str, default: int) -> int:
    port = _positive_int(env, name, default)
    if port > 65535:
        raise ConfigError(f"{name} must be a TCP port (1-65535), not {port}")
    return port


def _url(env: Mapping[str, str], name: str, default: str) -> str:
    value = env.get(name, "").strip() or default
    if value:
        parts = urlsplit(value)
        if parts.scheme not in ("http", "https") or not parts.netloc:
            raise ConfigError(f"{name} must be an http(s) URL such as https://ib.example.com, not {value!r}")
    return value


def _slack_api_url(env: Mapping[str, str]) -> str:
    # slack_sdk joins method names onto the base, so the trailing slash is required.
    value = _url(env, "IB_SLACK_API_URL", DEFAULT_SLACK_API_URL)
    return value if value.endswith("/") else value + "/"


def _log_level(env: Mapping[str, str]) -> str:
    value = env.get("IB_LOG_LEVEL", "").strip().upper() or "INFO"
    if value not in logging.getLevelNamesMapping():
        raise ConfigError(f"IB_LOG_LEVEL must be DEBUG, INFO, WARNING or ERROR, not {value!r}")
    return value
