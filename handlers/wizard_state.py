"""The wizard's server-side state, kept as JSON in the draft row.

Modals carry only the draft id; everything typed so far lives here, so Back never loses input
and a restart of ``ib serve`` resumes where the user was. No secret is ever stored here: a
metadata password is used once to fetch the document and then dropped.
"""

from __future__ import annotations

import copy
from dataclasses import asdict, dataclass, field, fields
from typing import Any, TypeVar

_Part = TypeVar("_Part")

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
    """Where the loaded catalog came from, and what the source step shows again (never a password)."""

    kind: str = ""  # url | file | text: the source of the loaded catalog
    url: str = ""
    user: str = ""
    file_name: str = ""
    text: str = ""  # pasted metadata (at most 3000 characters, Slack's input limit)
    options: dict[str, str] = field(default_factory=dict)  # e.g. {"odata_version": "4.0"}
    error: str = ""  # why the last load failed, shown on the source step


@dataclass(slots=True)
class CatalogSummary:
    service_name: str = ""
    title: str = ""
    object_count: int = 0
    sha256: str = ""
    protocol: str = ""  # e.g. "OData 2.0"
    digest: str = ""  # of the parsed catalog kept for the draft (handlers/catalogs.py)


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
    # Among read_write, those the system lets nobody change: published read only.
    made_read_only: list[str] = field(default_factory=list)
    customizations: str = ""  # attribute choice and renames, one line per instruction (handlers/customize.py)
    settings: SettingsState = field(default_factory=SettingsState)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any] | None) -> WizardState:
        # A deep copy: the state is changed freely, and ``data`` may be a draft row kept in memory.
        data = copy.deepcopy(dict(data or {}))
        catalog = data.get("catalog")
        step = str(data.get("step", "provider"))
        return cls(
            step=step if step in STEPS else "provider",
            provider=str(data.get("provider", "")),
            source=_part(SourceState, data.get("source")),
            catalog=_part(CatalogSummary, catalog) if catalog else None,
            read_write=[str(name) for name in data.get("read_write", [])],
            read_only=[str(name) for name in data.get("read_only", [])],
            made_read_only=[str(name) for name in data.get("made_read_only", [])],
            customizations=str(data.get("customizations", "")),
            settings=_part(SettingsState, data.get("settings")),
        )

    @property
    def selected_objects(self) -> list[str]:
        return [*self.read_write, *self.read_only]

    @property
    def writable_objects(self) -> list[str]:
        """What the package may change: chosen to read and write, and changeable in the system."""
        return [name for name in self.read_write if name not in self.made_read_only]

    @property
    def read_only_objects(self) -> list[str]:
        return [*(name for name in self.read_write if name in self.made_read_only), *self.read_only]


def _part(kind: type[_Part], data: Any) -> _Part:
    """A nested part from its stored dict; keys this version does not know are ignored, so drafts
    written by an older or newer release still open."""
    known = {f.name for f in fields(kind)}  # type: ignore[arg-type]
    return kind(**{key: value for key, value in dict(data or {}).items() if key in known})
