"""Providers: one module per external system, plus the neutral model they produce.

Importing this package registers the built-in providers (see :mod:`providers.base`).
"""

from providers import dataverse, salesforce, sap_odata, sharepoint
from providers.planned import register_planned

register_planned()  # last: only for systems no provider module above implements

__all__ = ["dataverse", "salesforce", "sap_odata", "sharepoint"]
