"""The keys under which the web application holds its shared objects.

Apart from ``bot/web.py`` so that route installers can import them while ``bot/web.py`` imports
the installers.
"""

from __future__ import annotations

from aiohttp import web

from bot.config import Settings
from generator.publisher import Publisher
from storage import Database, SecretBox

SETTINGS = web.AppKey("settings", Settings)
DATABASE = web.AppKey("database", Database)
SECRET_BOX = web.AppKey("secret_box", SecretBox)
PUBLISHER = web.AppKey("publisher", Publisher)
