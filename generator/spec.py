"""The integration spec: what the user chose, kept as ``integration.json``.

The same document travels in the wizard's draft, in every published version and inside the
generated package, so an integration can be kept in git and regenerated with
``ib generate --spec integration.json``.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from typing import Any, Literal

SPEC_VERSION = 1
Access = Literal["read-only", "read-write"]


class SpecError(ValueError):
    """The spec document is invalid; the message is one line, safe to show."""


@dataclass(slots=True)
class SourceRef:
    kind: Literal["url", "file", "text", "authorized"] = "file"
    location: str = ""  # URL or file name; never credentials
    sha256: str = ""  # of the metadata document the package was built from
    options: dict[str, str] = field(default_factory=dict)  # e.g. {"odata_version": "2.0"}


@dataclass(slots=True)
class ObjectSelection:
    name: str  # ObjectDef.name (entity set, sObject, list)
    access: Access = "read-write"
    attributes: list[str] | None = None  # wire names; None means all attributes
    renames: dict[str, str] = field(default_factory=dict)  # wire name -> Python name
    expand: list[str] = field(default_factory=list)  # navigation wire names to expand on read


@dataclass(slots=True)
class IntegrationSpec:
    provider: str
    application_name: str
    module_name: str
    objects: list[ObjectSelection]
    source: SourceRef = field(default_factory=SourceRef)
    description: str = ""
    icon: str = ""
    open: bool = False
    version: str = "0.1.0"
    spec_version: int = SPEC_VERSION

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), indent=2, sort_keys=True, ensure_ascii=False) + "\n"

    @classmethod
    def from_dict(cls, data: Any) -> IntegrationSpec:
        if not isinstance(data, dict):
            raise SpecError("integration spec must be a JSON object")
        version = data.get("spec_version", SPEC_VERSION)
        if version != SPEC_VERSION:
            raise SpecError(f"unsupported spec_version {version!r} (this tool reads {SPEC_VERSION})")
        for required in ("provider", "application_name", "module_name", "objects"):
            if required not in data:
                raise SpecError(f"integration spec is missing {required!r}")
        objects_data = data["objects"]
        if not isinstance(objects_data, list) or not objects_data:
            raise SpecError("integration spec must select at least one object")
        objects: list[ObjectSelection] = []
        for item in objects_data:
            if isinstance(item, str):
                objects.append(ObjectSelection(name=item))
                continue
            if not isinstance(item, dict) or not isinstance(item.get("name"), str):
                raise SpecError("each object in the spec needs a 'name'")
            access = item.get("access", "read-write")
            if access not in ("read-only", "read-write"):
                raise SpecError(f"object {item['name']!r}: access must be read-only or read-write")
            attributes = item.get("attributes")
            if attributes is not None and not (
                isinstance(attributes, list) and all(isinstance(a, str) for a in attributes)
            ):
                raise SpecError(f"object {item['name']!r}: attributes must be a list of names")
            renames = item.get("renames") or {}
            if not isinstance(renames, dict) or not all(
                isinstance(k, str) and isinstance(v, str) for k, v in renames.items()
            ):
                raise SpecError(f"object {item['name']!r}: renames must map names to names")
            expand = item.get("expand") or []
            if not isinstance(expand, list) or not all(isinstance(e, str) for e in expand):
                raise SpecError(f"object {item['name']!r}: expand must be a list of names")
            objects.append(
                ObjectSelection(
                    name=item["name"],
                    access=access,
                    attributes=attributes,
                    renames=dict(renames),
                    expand=list(expand),
                )
            )
        source_data = data.get("source") or {}
        if not isinstance(source_data, dict):
            raise SpecError("'source' must be an object")
        source = SourceRef(
            kind=source_data.get("kind", "file"),
            location=str(source_data.get("location", "")),
            sha256=str(source_data.get("sha256", "")),
            options={str(k): str(v) for k, v in (source_data.get("options") or {}).items()},
        )
        return cls(
            provider=str(data["provider"]),
            application_name=str(data["application_name"]),
            module_name=str(data["module_name"]),
            objects=objects,
            source=source,
            description=str(data.get("description", "")),
            icon=str(data.get("icon", "")),
            open=bool(data.get("open", False)),
            version=str(data.get("version", "0.1.0")),
        )

    @classmethod
    def from_json(cls, text: str) -> IntegrationSpec:
        try:
            data = json.loads(text)
        except json.JSONDecodeError as exc:
            raise SpecError(f"integration spec is not valid JSON: {exc.msg} (line {exc.lineno})") from None
        return cls.from_dict(data)
