"""The `/ib` slash command: one router, subcommands registered by the handlers modules.

Unknown subcommands get the help text, never silence. Subcommands the product has but this
installation has not registered yet answer that they are coming.
"""

from __future__ import annotations

from typing import Any

from slack_bolt.async_app import AsyncAck, AsyncApp, AsyncBoltContext
from slack_sdk.web.async_client import AsyncWebClient

from handlers.services import CommandRequest, Services

COMMAND = "/ib"

# Every subcommand the product offers, in the order help lists them (DESIGN.md section 6).
PRODUCT_SUBCOMMANDS: tuple[tuple[str, str, str], ...] = (
    ("new", "", "create an integration with the wizard"),
    ("list", "", "your integrations, their versions and connections"),
    ("connections", "", "connections per environment: new, test, edit, associate"),
    ("deploy", "<integration> <env>", "promote a published version to another environment"),
    ("help", "", "this help"),
)


def help_text(services: Services, unknown: str = "") -> str:
    lines = [f"Sorry, `{COMMAND} {_inline(unknown)}` is not something I know." if unknown else ""]
    lines.append(f"*{COMMAND}* builds typed integrations to business systems. Try:")
    listed: set[str] = set()
    for name, usage, summary in PRODUCT_SUBCOMMANDS:
        registered = services.subcommands.get(name)
        if registered is not None:
            usage, summary = registered.usage or usage, registered.summary
        coming = "" if registered is not None or name == "help" else " _(coming soon)_"
        lines.append(f"• `{COMMAND} {name}{' ' + usage if usage else ''}`: {summary}{coming}")
        listed.add(name)
    for extra in services.subcommands:
        if extra.name not in listed:
            usage = f" {extra.usage}" if extra.usage else ""
            lines.append(f"• `{COMMAND} {extra.name}{usage}`: {extra.summary}")
    lines.append("The *Create integration* shortcut starts the wizard too.")
    return "\n".join(line for line in lines if line)


def _inline(text: str) -> str:
    """User text inside inline code: no backticks to break out, no mrkdwn control characters."""
    cleaned = text.replace("`", "'").replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")
    return cleaned[:60] + ("…" if len(cleaned) > 60 else "")


async def route(request: CommandRequest) -> None:
    services = request.services
    if request.subcommand in ("", "help"):
        await request.ack(text=help_text(services))
        return
    registered = services.subcommands.get(request.subcommand)
    if registered is not None:
        await registered.handler(request)
        return
    if any(name == request.subcommand for name, _, _ in PRODUCT_SUBCOMMANDS):
        await request.ack(
            text=f"`{COMMAND} {request.subcommand}` is coming soon. `{COMMAND} help` lists what works today."
        )
        return
    await request.ack(text=help_text(services, unknown=request.subcommand))


def register(app: AsyncApp, services: Services) -> None:
    @app.command(COMMAND)
    async def ib_command(
        ack: AsyncAck, body: dict[str, Any], client: AsyncWebClient, context: AsyncBoltContext
    ) -> None:
        words = str(body.get("text", "")).split()
        subcommand = words[0].lower() if words else ""
        await route(
            CommandRequest(
                ack=ack,
                client=client,
                context=context,
                body=body,
                subcommand=subcommand,
                args=tuple(words[1:]),
                services=services,
            )
        )
