"""GET /oauth/{provider}/callback: where the external system sends the browser back after the
wizard's "Authorize ..." button (design-time sign-in, see handlers/signin.py).

The page says in plain words what happened; the Slack modal moves on by itself (views.update).
"""

from __future__ import annotations

import html
import re

from aiohttp import web

from bot.slack_app import SLACK_BOT
from handlers.signin import callback_families
from handlers.wizard import Wizard
from providers.base import callback_path

PAGE = (
    '<!doctype html><html><head><meta charset="utf-8"><title>Integration Builder</title></head>'
    "<body><p>{}</p></body></html>"
)


async def oauth_callback(request: web.Request) -> web.Response:
    bot = request.app[SLACK_BOT]
    wizard = Wizard(bot.services)
    result = await wizard.signins.callback(request.match_info["provider"], dict(request.query))
    if result.draft_id:
        bot.services.tasks.spawn(wizard.signed_in(bot.client, result), name="wizard-signed-in")
    status = 200 if result.draft_id else 400
    # Nothing from the query is echoed: the page is one of the service's own sentences.
    return web.Response(
        text=PAGE.format(html.escape(result.page)),
        status=status,
        content_type="text/html",
        headers={"Cache-Control": "no-store", "Referrer-Policy": "no-referrer"},
    )


def install_oauth(app: web.Application) -> None:
    """After install_slack: the callback continues the bot's wizard (one route per sign-in family,
    e.g. /oauth/microsoft/callback)."""
    families = "|".join(re.escape(family) for family in callback_families())
    if families:
        app.router.add_get(callback_path(f"{{provider:{families}}}"), oauth_callback)
