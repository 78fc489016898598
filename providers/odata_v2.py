"""OData V2 reader: a safely parsed ``$metadata`` document -> the neutral :class:`Catalog`.

pyodata's ``MetadataBuilder`` builds the model (entity sets, types, associations and the SAP
``sap:*`` annotations), with permissive error policies so that real-world SAP documents with
quirks still parse; a broken part is logged and left out instead of failing the whole document.
What the catalog needs from the SAP annotations:

* entity set: ``sap:creatable/updatable/deletable`` (capabilities), ``sap:addressable`` (can be
  read on its own), ``sap:pageable``/``sap:topable``, ``sap:countable``, ``sap:searchable``,
  ``sap:requires-filter``, ``sap:label``;
* property: ``sap:creatable``/``sap:updatable`` (read-only fields), ``sap:filterable``,
  ``sap:sortable``, ``sap:label``, ``sap:display-format``; ``ConcurrencyMode="Fixed"`` marks the
  ETag property.

Newer SAP Gateway services and SAP CAP's V2 adapter also describe entity sets and properties with
OData vocabulary annotations (Capabilities ``*Restrictions``, ``Core.Computed``, ``Core.Immutable``,
``Common.Label``, ``Core.OptimisticConcurrency``). The V4 reader's :class:`CsdlModel` reads them
the same way for both versions; here they are combined with the ``sap:`` attributes so that what
either forbids is forbidden, and a label or an ETag either gives counts.
"""

from __future__ import annotations

import copy
import logging
import threading
from typing import Any

from lxml import etree  # type: ignore[import-untyped]
from pyodata.exceptions import PyODataException
from pyodata.v2.model import (
    Config,
    EnumType,
    ErrorPolicy,
    MetadataBuilder,
    NullAssociation,
    NullType,
    ParserError,
)

from providers.base import MetadataError
from providers.metadata_source import EdmxDocument
from providers.model import Attribute, Capabilities, Catalog, Navigation, ObjectDef, ValueType
from providers.odata_v4 import (
    CsdlModel,
    EntityTypeInfo,
    PropertyAnnotations,
    SetAnnotations,
    object_capabilities,
)

logger = logging.getLogger(__name__)

_SAP_NAMESPACE = "http://www.sap.com/Protocols/SAPData"
# Parts of a document the catalog does not use and that pyodata either fails on without consulting
# its error policies (function imports with unknown types, sap:text pointing nowhere) or records
# in module-level state on every parse (vocabulary references).
_NOT_FOR_PYODATA = (
    "//*[local-name()='FunctionImport' or local-name()='Annotations' or local-name()='Reference']"
)
_SAP_TEXT = f"{{{_SAP_NAMESPACE}}}text"
_DISPLAY_FORMATS = (("date", "Date"), ("upper_case", "UpperCase"), ("non_negative", "NonNegative"))

# pyodata keeps module-level state (its primitive type registry is built lazily on first use).
_pyodata_lock = threading.Lock()


class _LogAndContinue(ErrorPolicy):
    def resolve(self, ekseption: Exception) -> None:
        logger.warning("OData V2 metadata: left out a broken part: %s", ekseption)


def catalog_from_v2(document: EdmxDocument, *, provider: str) -> Catalog:
    """Read an OData V2 document into a Catalog for ``provider``; objects are its entity sets."""
    model = CsdlModel(document)
    schema = _build_schema(document.root)
    association_targets = _association_targets(schema)
    set_elements: dict[str, tuple[str, etree._Element]] = {}
    for container_fqn, element in model.entity_sets():
        set_elements.setdefault(element.get("Name") or "", (container_fqn, element))
    objects = []
    for entity_set in schema.entity_sets:
        info = model.entity_type(_type_fqn(model, entity_set))
        located = set_elements.get(entity_set.name)
        if isinstance(entity_set.entity_type, NullType) or info is None or located is None:
            logger.warning("entity set %s: its entity type could not be read, skipped", entity_set.name)
            continue
        container_fqn, element = located
        set_rules = model.set_annotations(container_fqn, element, info)
        objects.append(_object_def(model, entity_set, info, set_rules, association_targets))
    service_name, _ = model.service_name_and_title()
    return Catalog(
        provider=provider,
        service_name=service_name,
        title=service_name,
        objects=tuple(sorted(objects, key=lambda o: o.name)),
        runtime={"odata_version": "2.0"},
        source_sha256=document.sha256,
    )


def _build_schema(root: etree._Element) -> Any:
    pyodata_input = copy.deepcopy(root)
    for element in pyodata_input.xpath(_NOT_FOR_PYODATA):
        parent = element.getparent()
        if parent is not None:
            parent.remove(element)
    for element in pyodata_input.iter():
        element.attrib.pop(_SAP_TEXT, None)
    policy = _LogAndContinue()
    config = Config(
        default_error_policy=policy,
        custom_error_policies={error: policy for error in ParserError},
    )
    try:
        with _pyodata_lock:
            return MetadataBuilder(etree.tostring(pyodata_input), config=config).build()
    except (PyODataException, KeyError, TypeError, ValueError, RuntimeError, AttributeError) as exc:
        detail = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise MetadataError(f"the OData V2 metadata is inconsistent: {detail}") from None


def _type_fqn(model: CsdlModel, entity_set: Any) -> str:
    namespace, name = entity_set.entity_type_info.namespace, entity_set.entity_type_info.name
    if namespace:
        return model.qualify(f"{namespace}.{name}")
    # An unqualified EntityType="Name" (seen in the wild) is looked up in every schema, as pyodata does.
    return next((fqn for fqn in model.entity_types if fqn.rpartition(".")[2] == name), name)


def _association_targets(schema: Any) -> dict[tuple[str, str, str], str]:
    """(association name, from role, from entity set) -> the entity set at the other end."""
    targets: dict[tuple[str, str, str], str] = {}
    for association_set in schema.association_sets:
        if isinstance(association_set, NullAssociation):
            continue
        ends = association_set.end_roles
        for here in ends:
            for there in ends:
                if here is not there:
                    key = (association_set.association_type_name, here.role, here.entity_set_name)
                    targets[key] = there.entity_set_name
    return targets


def _object_def(
    model: CsdlModel,
    entity_set: Any,
    info: EntityTypeInfo,
    set_rules: SetAnnotations,
    association_targets: dict[tuple[str, str, str], str],
) -> ObjectDef:
    entity_type = entity_set.entity_type
    declared = {prop.get("Name"): (declaring, prop) for declaring, prop in info.properties}
    keys = {prop.name for prop in entity_type.key_proprties}
    attributes = []
    for prop in entity_type.proprties():
        found = declared.get(prop.name)
        # pyodata and CsdlModel pick the same type elements, so ``found`` is None only if that ever
        # changes: the property then goes without vocabulary annotations instead of failing the read.
        rules = PropertyAnnotations() if found is None else model.property_annotations(*found, set_rules)
        fixed = found is not None and found[1].get("ConcurrencyMode") == "Fixed"
        attributes.append(_attribute(model, prop, prop.name in keys, rules, etag=fixed or rules.etag))
    addressable = entity_set.addressable
    sap_capabilities = Capabilities(
        queryable=addressable,
        countable=entity_set.countable,
        creatable=entity_set.creatable,
        updatable=entity_set.updatable,
        deletable=entity_set.deletable,
        pageable=entity_set.pageable and entity_set.topable,
        filterable=any(a.filterable for a in attributes),
        sortable=any(a.sortable for a in attributes),
        readable_by_key=addressable,
    )
    return ObjectDef(
        name=entity_set.name,
        entity_name=entity_type.name,
        label=entity_set.label or set_rules.label or entity_type.label or entity_set.name,
        attributes=tuple(attributes),
        navigations=tuple(
            navigation
            for nav in entity_type.nav_proprties
            if (navigation := _navigation(nav, entity_set.name, association_targets)) is not None
        ),
        capabilities=object_capabilities(sap_capabilities, set_rules.capabilities, has_keys=bool(keys)),
        description=set_rules.description,
        runtime={
            "entity_type": info.fqn,
            "etag": set_rules.etag or any(a.runtime.get("etag") for a in attributes),
            "searchable": entity_set.searchable and set_rules.searchable,
            "requires_filter": entity_set.requires_filter or set_rules.requires_filter,
        },
    )


def _attribute(
    model: CsdlModel, prop: Any, key: bool, rules: PropertyAnnotations, *, etag: bool
) -> Attribute:
    type_info = prop.type_info
    if isinstance(prop.typ, EnumType):
        # pyodata found the enum even when the property names it without a namespace.
        type_name = f"{prop.typ.namespace}.{prop.typ.name}"
    elif type_info.namespace is None:
        type_name = type_info.name
    else:
        type_name = f"{type_info.namespace}.{type_info.name}"
    value_type, wire_type, enum, _ = model.value_type(type_name)
    precision = prop.precision or None  # pyodata reads a missing Precision as 0
    runtime: dict[str, Any] = {"etag": True} if etag else {}
    display_format = next((fmt for flag, fmt in _DISPLAY_FORMATS if getattr(prop, flag)), None)
    if display_format:
        runtime["display_format"] = display_format
    return Attribute(
        name=prop.name,
        type=value_type,
        wire_type=wire_type,
        label=prop.label or rules.label,
        key=key,
        nullable=not key and prop.nullable,
        creatable=prop.creatable and rules.creatable,
        updatable=prop.updatable and rules.updatable and not key,
        filterable=prop.filterable and rules.filterable,
        sortable=prop.sortable and rules.sortable,
        max_length=prop.max_length if prop.max_length and prop.max_length > 0 else None,  # -1 is "max"
        precision=precision,
        scale=prop.scale if value_type is ValueType.DECIMAL and precision is not None else None,
        enum=enum,
        collection=type_info.is_collection,
        runtime=runtime,
    )


def _navigation(
    nav: Any, set_name: str, association_targets: dict[tuple[str, str, str], str]
) -> Navigation | None:
    if isinstance(nav.association, NullAssociation):
        return None
    try:
        to_role = nav.to_role
    except KeyError:
        logger.warning("navigation %s: its association has no role %s, skipped", nav.name, nav.to_role_name)
        return None
    return Navigation(
        name=nav.name,
        target=association_targets.get((nav.association_info.name, nav.from_role_name, set_name), ""),
        many=to_role.multiplicity == "*",
    )
