"""Command modules of the ``ib`` CLI; each exposes ``register(subparsers)``.

A handler returns an exit code or raises :class:`CommandError` with one line for the user.
"""

from __future__ import annotations

COMMAND_MODULES: tuple[str, ...] = (
    "generate",
    "db",
    "serve",
    "worker",
    "keys",
    "slack",
    "env",
    "access",
    "publish",
    "jobs",
    "connections",
)


class CommandError(Exception):
    """A user error: the message is printed as one line and the command exits with 2."""
