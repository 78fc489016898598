"""What `ib serve` reads from the environment, and what it keeps out of its logs."""

from __future__ import annotations

import io
import logging
from collections.abc import Callable, Iterator

import pytest

from bot.config import ConfigError, Settings
from bot.log import QUIET_LOGGERS, RedactingFilter, configure_logging

SLACK_HINT = "SLACK_BOT_TOKEN (or SLACK_CLIENT_ID/SLACK_CLIENT_SECRET for multi-workspace install)"


def test_defaults_are_the_embedded_local_setup() -> None:
    settings = Settings.from_env({})
    assert settings.database_url == "sqlite+aiosqlite:///./ib.db"
    assert (settings.host, settings.port, settings.public_base_url) == (
        "127.0.0.1",
        8080,
        "http://127.0.0.1:8080",
    )
    assert settings.slack_api_url == "https://slack.com/api/"
    assert settings.allow_private_urls is False
    assert settings.metadata_max_bytes == 50 * 1024 * 1024
    assert settings.microsoft_authority_host == "login.microsoftonline.com"
    assert settings.salesforce_login_url == "https://login.salesforce.com"


def test_values_are_read_and_normalised() -> None:
    settings = Settings.from_env(
        {
            "IB_ADMINS": "U1, U2,,U3",
            "IB_ALLOW_PRIVATE_URLS": "yes",
            "IB_SLACK_API_URL": "http://127.0.0.1:9999/api",
            "IB_BASE_URL": "https://ib.example.com/",
            "IB_PORT": "9000",
            "IB_LOG_LEVEL": "debug",
        }
    )
    assert settings.admins == ("U1", "U2", "U3")
    assert settings.allow_private_urls is True
    assert settings.slack_api_url == "http://127.0.0.1:9999/api/"
    assert settings.public_base_url == "https://ib.example.com"
    assert (settings.port, settings.log_level) == (9000, "DEBUG")


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("IB_PORT", "http"),
        ("IB_PORT", "70000"),
        ("IB_ALLOW_PRIVATE_URLS", "maybe"),
        ("IB_METADATA_MAX_BYTES", "-5"),
        ("IB_BASE_URL", "ib.example.com"),
        ("IB_SLACK_API_URL", "ftp://slack"),
        ("IB_LOG_LEVEL", "LOUD"),
    ],
)
def test_bad_values_name_the_variable_in_one_line(name: str, value: str) -> None:
    with pytest.raises(ConfigError) as caught:
        Settings.from_env({name: value})
    assert str(caught.value).startswith(name)
    assert "\n" not in str(caught.value)


@pytest.mark.parametrize(
    ("env", "missing"),
    [
        ({}, ("SLACK_SIGNING_SECRET", SLACK_HINT)),
        ({"SLACK_BOT_TOKEN": "xoxb-1"}, ("SLACK_SIGNING_SECRET",)),
        ({"SLACK_SIGNING_SECRET": "s"}, (SLACK_HINT,)),
        ({"SLACK_SIGNING_SECRET": "s", "SLACK_BOT_TOKEN": "xoxb-1"}, ()),
        ({"SLACK_SIGNING_SECRET": "s", "SLACK_CLIENT_ID": "1.2"}, ("SLACK_CLIENT_SECRET",)),
        ({"SLACK_SIGNING_SECRET": "s", "SLACK_CLIENT_ID": "1.2", "SLACK_CLIENT_SECRET": "c"}, ()),
    ],
)
def test_missing_for_slack_http_mode(env: dict[str, str], missing: tuple[str, ...]) -> None:
    assert Settings.from_env(env).missing_for_slack() == missing


def test_missing_for_slack_socket_mode() -> None:
    assert Settings.from_env({"SLACK_BOT_TOKEN": "xoxb-1"}).missing_for_slack(socket_mode=True) == (
        "SLACK_APP_TOKEN",
    )


def test_repr_never_shows_secrets() -> None:
    settings = Settings.from_env(
        {
            "SLACK_BOT_TOKEN": "xoxb-token-value",
            "SLACK_SIGNING_SECRET": "signing-secret-value",
            "SLACK_CLIENT_SECRET": "client-secret-value",
            "SLACK_APP_TOKEN": "xapp-token-value",
            "IB_SECRET_KEYS": "fernet-key-value",
        }
    )
    shown = repr(settings)
    for value in settings.secret_values():
        assert value not in shown


def logged(filter_: RedactingFilter, emit: Callable[[logging.Logger], None]) -> str:
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.addFilter(filter_)
    logger = logging.getLogger("tests.redaction")
    logger.addHandler(handler)
    logger.propagate = False
    try:
        emit(logger)
    finally:
        logger.removeHandler(handler)
        logger.propagate = True
    return stream.getvalue()


def test_redaction_masks_tokens_headers_and_configured_secrets() -> None:
    fernet_token = "gAAAAABnQ2v" + "x" * 80 + "=="
    text = logged(
        RedactingFilter(["my-signing-secret-123"]),
        lambda log: log.warning(
            "calling %s with %s, body %s, sig %s, stored %s, callback %s",
            "xoxb-123456-7890-AbCdEf",
            {"Authorization": "Bearer eyJhbGciOiJSUzI1NiJ9.payload.sig"},
            '{"client_secret": "shh-value", "user": "alice"}',
            "my-signing-secret-123",
            fernet_token,
            "/oauth/salesforce/callback?code=aPrxSECRETcode&state=abc",
        ),
    )
    for secret in (
        "123456-7890-AbCdEf",
        "eyJhbGci",
        "shh-value",
        "my-signing-secret-123",
        fernet_token,
        "aPrxSECRET",
    ):
        assert secret not in text
    assert "xoxb-***" in text and "Bearer ***" in text and "alice" in text and "state=abc" in text


def test_redaction_reaches_tracebacks() -> None:
    def emit(log: logging.Logger) -> None:
        try:
            raise RuntimeError("auth failed for token xapp-1-A0123-secretpart")
        except RuntimeError:
            log.exception("request failed")

    text = logged(RedactingFilter(), emit)
    assert "Traceback" in text and "RuntimeError" in text
    assert "secretpart" not in text


@pytest.fixture
def restore_logging() -> Iterator[None]:
    root = logging.getLogger()
    saved = (list(root.handlers), root.level, {n: logging.getLogger(n).level for n in QUIET_LOGGERS})
    yield
    for handler in list(root.handlers):
        root.removeHandler(handler)
    for handler in saved[0]:
        root.addHandler(handler)
    root.setLevel(saved[1])
    for name, level in saved[2].items():
        logging.getLogger(name).setLevel(level)


@pytest.mark.usefixtures("restore_logging")
def test_slack_sdk_debug_logs_stay_off_even_at_debug_level() -> None:
    configure_logging("DEBUG")
    assert logging.getLogger().isEnabledFor(logging.DEBUG)
    for name in ("slack_sdk", "slack_bolt", "slack_sdk.socket_mode", "slack_sdk.web.async_base_client"):
        assert not logging.getLogger(name).isEnabledFor(logging.DEBUG), name
