"""What an admin does to connect Slack: create the app from `ib manifest`, start `ib serve`, install."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import time
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

import aiohttp
import pytest
from sqlalchemy import text

from bot.cli import main
from storage import Database
from tests.bot.test_serve import STARTUP_LIMIT_S, free_port, serve_env
from tests.journeys.service import running_service, slack_settings
from tests.slack import FakeSlack

REQUIRED_SCOPES = {"commands", "files:read", "files:write", "im:write", "chat:write", "users:read"}


def test_the_manifest_is_valid_json_with_every_endpoint_and_scope(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["manifest", "--url", "https://ib.example.com/"]) == 0
    manifest = json.loads(capsys.readouterr().out)

    events = "https://ib.example.com/slack/events"
    [command] = manifest["features"]["slash_commands"]
    [shortcut] = manifest["features"]["shortcuts"]
    interactivity = manifest["settings"]["interactivity"]
    assert (command["command"], command["url"]) == ("/ib", events)
    assert (shortcut["callback_id"], shortcut["type"]) == ("create_integration", "global")
    assert interactivity == {
        "is_enabled": True,
        "request_url": events,
        "message_menu_options_url": events,
    }
    assert manifest["features"]["app_home"]["home_tab_enabled"] is True
    assert REQUIRED_SCOPES <= set(manifest["oauth_config"]["scopes"]["bot"])
    assert manifest["oauth_config"]["redirect_urls"] == ["https://ib.example.com/slack/oauth_redirect"]


async def test_with_client_credentials_any_workspace_can_install_the_app(
    database: Database, database_url: str, fake_slack: FakeSlack, slack_signing_secret: str
) -> None:
    settings = slack_settings(
        database_url,
        fake_slack,
        slack_signing_secret,
        slack_bot_token="",
        slack_client_id="1111.2222",
        slack_client_secret="an-oauth-client-secret",
    )
    async with running_service(settings, database) as service, aiohttp.ClientSession() as http:
        async with http.get(service.url + "/slack/install") as install:
            page = await install.text()
        async with http.get(service.url + "/slack/oauth_redirect?code=guessed&state=forged") as forged:
            forged_status = forged.status

    assert install.status == 200
    link = next(part for part in page.split('"') if part.startswith("https://slack.com/oauth/v2/authorize?"))
    query = parse_qs(urlsplit(link.replace("&amp;", "&")).query)
    assert query["client_id"] == ["1111.2222"]
    assert REQUIRED_SCOPES <= set(query["scope"][0].split(","))
    assert query["redirect_uri"] == ["https://ib.example.test/slack/oauth_redirect"]
    assert forged_status == 400
    async with database.session() as session:
        states = await session.scalar(text("SELECT count(*) FROM slack_oauth_states"))
        installations = await session.scalar(text("SELECT count(*) FROM slack_installations"))
    assert (states, installations) == (1, 0)  # the state handed out; nothing installed by the forgery
    assert fake_slack.calls() == []


def test_serve_in_socket_mode_says_what_is_missing(tmp_path: Path) -> None:
    port = free_port()
    log_path = tmp_path / "serve.log"
    with log_path.open("wb") as log_file:
        process = subprocess.Popen(
            [sys.executable, "-m", "bot.cli", "serve", "--socket-mode", "--port", str(port)],
            cwd=tmp_path,
            env=serve_env(tmp_path, {"SLACK_BOT_TOKEN": "xoxb-1-2-abcdefabcdef"}),
            stdout=log_file,
            stderr=subprocess.STDOUT,
        )
    try:
        deadline = time.monotonic() + STARTUP_LIMIT_S
        while "listening on" not in log_path.read_text() and process.poll() is None:
            assert time.monotonic() < deadline, log_path.read_text()
            time.sleep(0.1)
    finally:
        process.send_signal(signal.SIGTERM)
        process.wait(timeout=STARTUP_LIMIT_S)
    log = log_path.read_text()
    assert "Slack not connected for Socket Mode: set SLACK_APP_TOKEN; see README" in log
    assert process.returncode == 0, log
