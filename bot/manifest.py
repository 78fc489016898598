"""The Slack app manifest, so an admin creates the app in one step (`ib manifest`)."""

from __future__ import annotations

from typing import Any

BOT_SCOPES: tuple[str, ...] = (
    "commands",
    "chat:write",
    "im:write",
    "im:history",
    "users:read",
    "files:read",
    "files:write",
)


def build_manifest(
    base_url: str, *, name: str = "Integration Builder", socket_mode: bool = False
) -> dict[str, Any]:
    """The manifest for an app served at ``base_url`` (ignored for URLs in Socket Mode)."""
    base = base_url.rstrip("/")
    events_url = f"{base}/slack/events"
    command: dict[str, Any] = {
        "command": "/ib",
        "description": "Create, publish, connect and deploy integrations",
        "usage_hint": "new | list | connections | deploy <integration> <env> | help",
        "should_escape": False,
    }
    interactivity: dict[str, Any] = {"is_enabled": True}
    settings: dict[str, Any] = {
        "org_deploy_enabled": False,
        "socket_mode_enabled": socket_mode,
        "token_rotation_enabled": False,
        "interactivity": interactivity,
        "event_subscriptions": {"bot_events": ["app_home_opened"]},
    }
    if not socket_mode:
        command["url"] = events_url
        interactivity["request_url"] = events_url
        interactivity["message_menu_options_url"] = events_url
        settings["event_subscriptions"]["request_url"] = events_url
    return {
        "_metadata": {"major_version": 1, "minor_version": 1},
        "display_information": {
            "name": name,
            "description": "Typed integrations to SAP, Salesforce, SharePoint, Dataverse and Dynamics 365",
            "background_color": "#1d3a5f",
        },
        "features": {
            "app_home": {
                "home_tab_enabled": True,
                "messages_tab_enabled": True,
                "messages_tab_read_only_enabled": False,
            },
            "bot_user": {"display_name": name, "always_online": True},
            "shortcuts": [
                {
                    "name": "Create integration",
                    "type": "global",
                    "callback_id": "create_integration",
                    "description": "Start the integration wizard",
                }
            ],
            "slash_commands": [command],
        },
        "oauth_config": {
            "redirect_urls": [f"{base}/slack/oauth_redirect"],
            "scopes": {"bot": list(BOT_SCOPES)},
        },
        "settings": settings,
    }
