"""The wizard's server-side state, kept as JSON in the draft row.

Modals carry only the draft id; everything typed so far lives here, so Back never loses input
and a restart of ``ib serve`` resumes where the user was. No secret is ever stored here: a
metadata password is used once to fetch the document and then dropped.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

STEPS: tuple[str, ...] = ("provider", "source", "objects", "settings", "review")
STEP_TITLES: dict[str, str] = {
    "provider": "Provider",
    "source": "Source",
    "objects": "Objects",
    "settings": "Settings",
    "review": "Review",
}


@dataclass(slots=True)
class SourceState:
    kind: str = ""  # url | file | text
    url: str = ""
    user: str = ""
    file_name: str = ""
    odata_version: str = ""  # "", "2.0" or "4.0": asked when the document is unclear
    pasted_chars: int = 0
    error: str = ""  # why the last load failed, shown on the source step
    loading: bool = False


@dataclass(slots=True)
class CatalogSummary:
    service_name: str = ""
    title: str = ""
    object_count: int = 0
    sha256: str = ""
    protocol: str = ""  # e.g. "OData 2.0"


@dataclass(slots=True)
class SettingsState:
    application_name: str = ""
    module_name: str = ""
    description: str = ""
    icon: str = ""
    open: bool = False


@dataclass(slots=True)
class WizardState:
    step: str = "provider"
    provider: str = ""
    source: SourceState = field(default_factory=SourceState)
    catalog: CatalogSummary | None = None
    read_write: list[str] = field(default_factory=list)
    read_only: list[str] = field(default_factory=list)
    customizations: str = ""  # attribute choice and renames, one line per object (see views)
    settings: SettingsState = field(default_factory=SettingsState)
    view_id: str = ""
    view_hash: str = ""

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any] | None) -> WizardState:
        data = dict(data or {})
        catalog = data.pop("catalog", None)
        return cls(
            step=str(data.get("step", "provider")),
            provider=str(data.get("provider", "")),
            source=SourceState(**data.get("source", {})),
            catalog=CatalogSummary(**catalog) if catalog else None,
            read_write=list(data.get("read_write", [])),
            read_only=list(data.get("read_only", [])),
            customizations=str(data.get("customizations", "")),
            settings=SettingsState(**data.get("settings", {})),
            view_id=str(data.get("view_id", "")),
            view_hash=str(data.get("view_hash", "")),
        )

    @property
    def selected_objects(self) -> list[str]:
        return [*self.read_write, *self.read_only]
