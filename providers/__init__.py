"""Providers: one module per external system, plus the neutral model they produce.

Importing this package registers the built-in providers (see :mod:`providers.base`).
"""

from providers import sap_odata

__all__ = ["sap_odata"]
