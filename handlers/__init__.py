"""Slack listeners and Block Kit views (views are pure functions of state; see handlers/views).

Each module in :data:`HANDLER_MODULES` exposes ``register(app, services)``: it adds `/ib`
subcommands with ``services.subcommands.add(name, handler, summary=...)`` and any other listener
with bolt's decorators on ``app``. ``bot/slack_app.py`` calls them in this order, so a later module
may replace a subcommand of an earlier one.
"""

HANDLER_MODULES: tuple[str, ...] = (
    "handlers.commands",
    "handlers.wizard",
    "handlers.signin",
    "handlers.connections",
    "handlers.publish_progress",
    "handlers.integrations",
    "handlers.deploy",
)
