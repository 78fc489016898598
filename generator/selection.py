"""Apply an integration spec to a catalog: which objects, attributes, actions and expansions.

Everything the user chose is validated here, before any code is rendered, so a bad spec fails
with one line naming the object and attribute at fault.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from generator.errors import GenerationError
from generator.names import RECORD_MEMBERS, python_name_problem, validate_module_name
from generator.spec import Access, IntegrationSpec, ObjectSelection
from providers.base import ProviderError, RuntimeSupport, get_provider
from providers.model import Attribute, Catalog, Navigation, ObjectDef

# Canonical PEP 440 public versions: what the wheel filename and the package index need.
_NUMBER = "(0|[1-9][0-9]*)"
_VERSION = re.compile(rf"{_NUMBER}(\.{_NUMBER})*((a|b|rc){_NUMBER})?(\.post{_NUMBER})?(\.dev{_NUMBER})?")


@dataclass(frozen=True, slots=True)
class Actions:
    """The actions generated for one object."""

    search: bool
    count: bool
    get: bool
    create: bool
    update: bool
    delete: bool


@dataclass(frozen=True, slots=True)
class SelectedObject:
    definition: ObjectDef
    access: Access
    attributes: tuple[Attribute, ...]  # in catalog order, keys always included
    renames: dict[str, str]  # wire name -> Python name chosen by the user
    expand: tuple[Navigation, ...]
    actions: Actions


@dataclass(frozen=True, slots=True)
class Selection:
    catalog: Catalog
    spec: IntegrationSpec
    runtime: RuntimeSupport
    objects: tuple[SelectedObject, ...]  # in catalog order, so names do not depend on spec order


def runtime_support(provider_key: str) -> RuntimeSupport:
    try:
        support = get_provider(provider_key).runtime
    except ProviderError as exc:
        raise GenerationError(str(exc)) from None
    for module in (support.module, *support.modules):
        if not module.isidentifier():
            raise GenerationError(f"provider {provider_key!r} names an invalid runtime module {module!r}")
    return support


def select(catalog: Catalog, spec: IntegrationSpec) -> Selection:
    """Check ``spec`` against ``catalog`` and resolve what the package will contain.

    Raises :class:`GenerationError` (one line) for an invalid module name, a provider mismatch,
    unknown objects, attributes, renames or navigations, and duplicate selections.
    """
    if spec.provider != catalog.provider:
        raise GenerationError(
            f"the spec is for provider {spec.provider!r} but the metadata was read by {catalog.provider!r}"
        )
    support = runtime_support(catalog.provider)
    validate_module_name(spec.module_name, reserved=[_requirement_name(d) for d in support.dependencies])
    if not _VERSION.fullmatch(spec.version):
        raise GenerationError(f"version {spec.version!a} is not a release version like 1.2.0")
    if not spec.objects:
        raise GenerationError("select at least one object")
    chosen: dict[str, ObjectSelection] = {}
    for selection in spec.objects:
        if selection.name in chosen:
            raise GenerationError(f"object {selection.name!r} is selected twice")
        chosen[selection.name] = selection
    known = {obj.name for obj in catalog.objects}
    for name in chosen:
        if name not in known:
            where = catalog.service_name or "the metadata"
            raise GenerationError(f"object {name!r} does not exist in {where}")
    outlined = catalog.outlined(chosen)
    if outlined:
        # a provider bug, or a catalog cached before completion: never generate empty models
        raise GenerationError(f"object {outlined[0]!r} was listed but not described: read the metadata again")
    objects = tuple(
        _select_object(obj, chosen[obj.name], support) for obj in catalog.objects if obj.name in chosen
    )
    return Selection(catalog=catalog, spec=spec, runtime=support, objects=objects)


def _requirement_name(requirement: str) -> str:
    for index, char in enumerate(requirement):
        if not (char.isalnum() or char in "-_."):
            return requirement[:index]
    return requirement


def _select_object(obj: ObjectDef, selection: ObjectSelection, support: RuntimeSupport) -> SelectedObject:
    where = f"object {obj.name!r}"
    wire_names = [a.name for a in obj.attributes]
    if selection.attributes is None:
        attributes = obj.attributes
    else:
        wanted = set(selection.attributes)
        for name in selection.attributes:
            if name not in wire_names:
                raise GenerationError(f"{where} has no attribute {name!r}")
        attributes = tuple(a for a in obj.attributes if a.name in wanted or a.key)
        if not attributes:
            raise GenerationError(f"{where}: select at least one attribute")
    navigations = {n.name: n for n in obj.navigations}
    expand: list[Navigation] = []
    for name in selection.expand:
        if name not in navigations:
            raise GenerationError(f"{where} has no navigation {name!r} to expand")
        if navigations[name] not in expand:
            expand.append(navigations[name])
    selected_names = {a.name for a in attributes} | {n.name for n in expand}
    renamed_to: dict[str, str] = {}
    for wire, python in selection.renames.items():
        if wire not in selected_names:
            raise GenerationError(f"{where}: cannot rename {wire!r}, it is not a selected attribute")
        problem = python_name_problem(python, RECORD_MEMBERS)
        if problem:
            raise GenerationError(f"{where}: rename of {wire!r}: {problem}")
        if python in renamed_to:
            raise GenerationError(f"{where}: {renamed_to[python]!r} and {wire!r} are renamed to {python!r}")
        renamed_to[python] = wire
    return SelectedObject(
        definition=obj,
        access=selection.access,
        attributes=attributes,
        renames=dict(selection.renames),
        expand=tuple(expand),
        actions=_actions(obj, selection.access, support),
    )


def _actions(obj: ObjectDef, access: Access, support: RuntimeSupport) -> Actions:
    capabilities = obj.capabilities
    writable = access == "read-write"
    by_key = bool(obj.keys)
    return Actions(
        search=capabilities.queryable,
        count=capabilities.queryable and capabilities.countable and support.supports_count,
        get=capabilities.queryable and capabilities.readable_by_key and by_key,
        create=writable and capabilities.creatable,
        update=writable and capabilities.updatable and by_key,
        delete=writable and capabilities.deletable and by_key,
    )
