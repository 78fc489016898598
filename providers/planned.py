"""Providers the wizard lists but this installation cannot build yet.

They are registered only for keys no real provider module has claimed, so the wizard shows
all five systems and says plainly which ones are not available instead of failing.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from providers.base import (
    AdminInstructions,
    ConnectionField,
    ConnectionTestResult,
    MetadataSource,
    ProviderError,
    RuntimeSupport,
    SourceField,
    all_registered_keys,
    register,
)
from providers.model import Catalog

PLANNED: tuple[tuple[str, str], ...] = (
    ("salesforce", "Salesforce"),
    ("sharepoint", "SharePoint Online"),
    ("dataverse", "Microsoft Dataverse"),
    ("dynamics365", "Microsoft Dynamics 365"),
)


class PlannedProvider:
    implemented = False
    needs_certificate = False

    def __init__(self, key: str, title: str) -> None:
        self.key = key
        self.title = title
        self.runtime = RuntimeSupport(module="", modules=())

    def _unavailable(self) -> ProviderError:
        return ProviderError(f"{self.title} is not available yet in this installation of Integration Builder")

    def source_fields(self) -> Sequence[SourceField]:
        return ()

    async def discover(self, source: MetadataSource) -> Catalog:
        raise self._unavailable()

    def connection_schema(self) -> Sequence[ConnectionField]:
        return ()

    def admin_instructions(self, context: Mapping[str, str]) -> AdminInstructions:
        raise self._unavailable()

    async def test_connection(
        self, values: Mapping[str, str], secrets: Mapping[str, str]
    ) -> ConnectionTestResult:
        raise self._unavailable()

    async def connection_answer(
        self, values: Mapping[str, str], secrets: Mapping[str, str]
    ) -> dict[str, Any]:
        raise self._unavailable()


def register_planned() -> None:
    claimed = all_registered_keys()
    for key, title in PLANNED:
        if key not in claimed:
            register(PlannedProvider(key, title))
