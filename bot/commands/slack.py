"""`ib manifest`: print the Slack app manifest for this service's public URL."""

from __future__ import annotations

import argparse
import json
import os
from typing import Any
from urllib.parse import urlparse

from bot.commands import CommandError
from bot.manifest import build_manifest


def register(sub: Any) -> None:
    parser: argparse.ArgumentParser = sub.add_parser(
        "manifest", help="print the Slack app manifest (JSON) to create the app in one step"
    )
    parser.add_argument("--url", help="public base URL of `ib serve` (default: IB_BASE_URL)")
    parser.add_argument("--name", default="Integration Builder", help="app and bot display name")
    parser.add_argument("--socket-mode", action="store_true", help="manifest for Socket Mode (no public URL)")
    parser.set_defaults(handler=run_manifest)


def run_manifest(args: argparse.Namespace) -> int:
    url = args.url or os.environ.get("IB_BASE_URL", "")
    if not args.socket_mode:
        parsed = urlparse(url)
        if not url:
            raise CommandError("give --url https://... (or set IB_BASE_URL): Slack must reach the service")
        if parsed.scheme != "https" or not parsed.netloc:
            raise CommandError(f"--url must be an https:// URL that Slack can reach, not {url!r}")
    print(
        json.dumps(
            build_manifest(url or "https://example.invalid", name=args.name, socket_mode=args.socket_mode),
            indent=2,
        )
    )
    return 0
