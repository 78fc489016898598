"""OData V4 CSDL reader: a safely parsed ``$metadata`` document -> the neutral :class:`Catalog`.

Generic OData V4, no system specifics, so every OData V4 provider (SAP, Dataverse, ...) reads its
metadata here and adjusts the result. It reads entity containers and entity sets, entity types
with ``BaseType`` inheritance, keys, properties and their facets, enum, complex and type-definition
types, collections, navigation properties with their ``NavigationPropertyBinding`` targets, and the
Core/Capabilities vocabulary annotations that decide what a user may do with an object, inline or
targeted from ``Annotations`` elements, with vocabulary aliases resolved.

The Edm-type mapping (:func:`edm_value_type`) covers the V2 type names too, and V2 documents may
carry the same vocabulary annotations: the V2 reader uses :class:`CsdlModel` for both and combines
what :meth:`CsdlModel.set_annotations` and :meth:`CsdlModel.property_annotations` say with the
``sap:`` attributes through :func:`object_capabilities`.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field, fields

from lxml import etree  # type: ignore[import-untyped]

from providers.metadata_source import EdmxDocument
from providers.model import (
    Attribute,
    Capabilities,
    Catalog,
    EnumMember,
    EnumType,
    Navigation,
    ObjectDef,
    ValueType,
)

logger = logging.getLogger(__name__)

CORE = "Org.OData.Core.V1."
CAPABILITIES = "Org.OData.Capabilities.V1."
SAP_COMMON = "com.sap.vocabularies.Common.v1."

EDM_VALUE_TYPES: Mapping[str, ValueType] = {
    "Edm.String": ValueType.STRING,
    "Edm.Boolean": ValueType.BOOLEAN,
    "Edm.Byte": ValueType.INTEGER,
    "Edm.SByte": ValueType.INTEGER,
    "Edm.Int16": ValueType.INTEGER,
    "Edm.Int32": ValueType.INTEGER,
    "Edm.Int64": ValueType.INTEGER,
    "Edm.Decimal": ValueType.DECIMAL,
    "Edm.Double": ValueType.FLOAT,
    "Edm.Single": ValueType.FLOAT,
    "Edm.Float": ValueType.FLOAT,
    "Edm.DateTime": ValueType.DATETIME,  # V2
    "Edm.DateTimeOffset": ValueType.DATETIME,
    "Edm.Date": ValueType.DATE,
    "Edm.Time": ValueType.TIME,  # V2
    "Edm.TimeOfDay": ValueType.TIME,
    "Edm.Duration": ValueType.DURATION,
    "Edm.Guid": ValueType.GUID,
    "Edm.Binary": ValueType.BINARY,
}


def edm_value_type(type_name: str) -> ValueType:
    """The neutral type of a primitive Edm type; streams, geo types and the unknown pass as JSON."""
    return EDM_VALUE_TYPES.get(type_name, ValueType.JSON)


def int_facet(value: str | None) -> int | None:
    """A numeric facet (MaxLength, Precision, Scale); ``max``, ``variable`` and junk mean "none"."""
    if value is None or not value.strip().isdigit():
        return None
    return int(value)


def catalog_from_v4(document: EdmxDocument, *, provider: str) -> Catalog:
    """Read an OData V4 document into a Catalog for ``provider``; objects are its entity sets."""
    model = CsdlModel(document)
    objects: list[ObjectDef] = []
    for container_fqn, entity_set in model.entity_sets():
        object_def = model.object_def(container_fqn, entity_set)
        if object_def is not None:
            objects.append(object_def)
    service_name, title = model.service_name_and_title()
    return Catalog(
        provider=provider,
        service_name=service_name,
        title=title,
        objects=tuple(sorted(objects, key=lambda o: o.name)),
        runtime={"odata_version": "4.0"},
        source_sha256=document.sha256,
    )


@dataclass(slots=True)
class EntityTypeInfo:
    fqn: str
    name: str
    element: etree._Element
    chain: tuple[str, ...]  # own fqn first, then the base types
    properties: list[tuple[str, etree._Element]] = field(default_factory=list)  # (declaring fqn, Property)
    keys: tuple[str, ...] = ()
    navigations: list[etree._Element] = field(default_factory=list)


@dataclass(frozen=True, slots=True)
class SetAnnotations:
    """What an entity set's vocabulary annotations say; a missing annotation allows everything.

    ``capabilities`` leaves keys aside (see :func:`object_capabilities`). ``label`` and
    ``description`` fall back to the entity type's annotations; ``etag`` is true when writes need
    an ETag (``Core.OptimisticConcurrency``), even when it names no property.
    """

    capabilities: Capabilities
    label: str
    description: str
    etag: bool
    searchable: bool
    requires_filter: bool
    non_filterable: frozenset[str]
    non_sortable: frozenset[str]
    etag_properties: frozenset[str]


@dataclass(frozen=True, slots=True)
class PropertyAnnotations:
    """What a property's annotations, and those of its entity set, say; keys aside."""

    label: str = ""
    creatable: bool = True
    updatable: bool = True
    filterable: bool = True
    sortable: bool = True
    etag: bool = False


def object_capabilities(*sources: Capabilities, has_keys: bool) -> Capabilities:
    """What every source allows; without a key nothing can be updated, deleted or read by key."""
    allowed = {f.name: all(getattr(source, f.name) for source in sources) for f in fields(Capabilities)}
    if not has_keys:
        allowed.update(updatable=False, deletable=False, readable_by_key=False)
    return Capabilities(**allowed)


class CsdlModel:
    """The types, containers and annotations of a CSDL document, indexed by qualified name.

    Providers reading system-specific annotations (or V2 documents, for their types and
    vocabulary annotations) use :meth:`qualify`, :meth:`annotations`, :meth:`entity_sets`,
    :meth:`entity_type`, :meth:`enum_type`, :meth:`value_type`, :meth:`set_annotations` and
    :meth:`property_annotations`; :func:`catalog_from_v4` uses :meth:`object_def` per entity set.
    """

    def __init__(self, document: EdmxDocument) -> None:
        self.aliases: dict[str, str] = {}
        self.entity_types: dict[str, etree._Element] = {}
        self.enum_elements: dict[str, etree._Element] = {}
        self.type_definitions: dict[str, str] = {}
        self.containers: list[tuple[str, etree._Element]] = []
        self.external: dict[str, dict[str, etree._Element]] = {}
        self._resolved: dict[str, EntityTypeInfo | None] = {}
        self._enums: dict[str, EnumType] = {}
        schemas = document.schemas()
        self._read_aliases(document.root, schemas)
        for schema in schemas:
            self._index_schema(schema)

    # --- indexing -------------------------------------------------------------------------

    def _read_aliases(self, root: etree._Element, schemas: list[etree._Element]) -> None:
        for reference in _children(root, "Reference"):
            for include in _children(reference, "Include"):
                namespace, alias = include.get("Namespace"), include.get("Alias")
                if namespace and alias:
                    self.aliases[alias] = namespace
        for schema in schemas:
            namespace, alias = schema.get("Namespace"), schema.get("Alias")
            if namespace and alias:
                self.aliases[alias] = namespace

    def _index_schema(self, schema: etree._Element) -> None:
        namespace = schema.get("Namespace") or ""
        for child in schema:
            kind, name = _local(child), child.get("Name")
            if kind == "Annotations":
                self._index_external(child)
                continue
            if not name:
                continue
            fqn = f"{namespace}.{name}"
            if kind == "EntityType":
                self.entity_types[fqn] = child
            elif kind == "EnumType":
                self.enum_elements[fqn] = child
            elif kind == "TypeDefinition":
                self.type_definitions[fqn] = self.qualify(child.get("UnderlyingType") or "")
            elif kind == "EntityContainer":
                self.containers.append((fqn, child))

    def _index_external(self, annotations: etree._Element) -> None:
        # Qualified annotations apply to one client context (a UI variant, ...), not to the data.
        if annotations.get("Qualifier") is not None:
            return
        target = self._normalize_target(annotations.get("Target") or "")
        terms = self.external.setdefault(target, {})
        for annotation in _children(annotations, "Annotation"):
            if annotation.get("Qualifier") is None:
                terms[self.qualify(annotation.get("Term") or "")] = annotation

    def qualify(self, name: str) -> str:
        """``Alias.Name`` -> ``Namespace.Name``; other names unchanged."""
        prefix, dot, rest = name.rpartition(".")
        if dot and prefix in self.aliases:
            return f"{self.aliases[prefix]}.{rest}"
        return name

    def _normalize_target(self, target: str) -> str:
        head, slash, rest = target.partition("/")
        return self.qualify(head) + slash + rest

    def annotations(self, element: etree._Element, *targets: str) -> dict[str, etree._Element]:
        """Unqualified annotations of ``element``, inline and targeted at any of ``targets``."""
        found = {
            self.qualify(child.get("Term") or ""): child
            for child in _children(element, "Annotation")
            if child.get("Qualifier") is None
        }
        for target in targets:
            found.update(self.external.get(target, {}))
        return found

    def entity_sets(self) -> Iterator[tuple[str, etree._Element]]:
        """(qualified container name, EntitySet element) of every container, in document order."""
        for container_fqn, container in self.containers:
            for entity_set in _children(container, "EntitySet"):
                yield container_fqn, entity_set

    # --- types ----------------------------------------------------------------------------

    def entity_type(self, fqn: str) -> EntityTypeInfo | None:
        if fqn not in self._resolved:
            self._resolved[fqn] = None  # a BaseType cycle ends here instead of recursing forever
            self._resolved[fqn] = self._resolve_entity_type(fqn)
        return self._resolved[fqn]

    def _resolve_entity_type(self, fqn: str) -> EntityTypeInfo | None:
        element = self.entity_types.get(fqn)
        if element is None:
            return None
        base_name = element.get("BaseType")
        base = self.entity_type(self.qualify(base_name)) if base_name else None
        if base_name and base is None:
            logger.warning("entity type %s: base type %s is missing or cyclic, ignored", fqn, base_name)
        info = EntityTypeInfo(
            fqn=fqn,
            name=element.get("Name") or fqn.rpartition(".")[2],
            element=element,
            chain=(fqn, *(base.chain if base else ())),
            properties=list(base.properties) if base else [],
            keys=base.keys if base else (),
            navigations=list(base.navigations) if base else [],
        )
        for child in element:
            kind = _local(child)
            if kind == "Property":
                info.properties.append((fqn, child))
            elif kind == "NavigationProperty":
                info.navigations.append(child)
            elif kind == "Key":
                info.keys = tuple(ref.get("Name") or "" for ref in _children(child, "PropertyRef"))
        return info

    def enum_type(self, fqn: str) -> EnumType | None:
        if fqn in self._enums:
            return self._enums[fqn]
        element = self.enum_elements.get(fqn)
        if element is None:
            return None
        members: list[EnumMember] = []
        next_value = 0
        for member in _children(element, "Member"):
            raw = member.get("Value")
            value: str | int = next_value if raw is None else _int_or_text(raw)
            if isinstance(value, int):
                next_value = value + 1
            label = _string(self.annotations(member).get(SAP_COMMON + "Label"))
            members.append(EnumMember(name=member.get("Name") or "", value=value, label=label or ""))
        enum = EnumType(
            name=fqn, members=tuple(members), flags=(element.get("IsFlags") or "").lower() == "true"
        )
        self._enums[fqn] = enum
        return enum

    def value_type(self, type_name: str) -> tuple[ValueType, str, EnumType | None, bool]:
        """(neutral type, wire type, enum, collection) of a property's ``Type``."""
        collection = type_name.startswith("Collection(") and type_name.endswith(")")
        fqn = self.qualify(type_name[len("Collection(") : -1] if collection else type_name)
        if fqn.startswith("Edm."):
            return edm_value_type(fqn), fqn, None, collection
        enum = self.enum_type(fqn)
        if enum is not None:
            return ValueType.ENUM, fqn, enum, collection
        underlying = self.type_definitions.get(fqn)
        if underlying is not None:
            return edm_value_type(underlying), underlying, None, collection
        return ValueType.JSON, fqn, None, collection

    # --- objects --------------------------------------------------------------------------

    def object_def(self, container_fqn: str, entity_set: etree._Element) -> ObjectDef | None:
        set_name = entity_set.get("Name") or ""
        type_name = self.qualify(entity_set.get("EntityType") or "")
        info = self.entity_type(type_name)
        if info is None:
            logger.warning("entity set %s: entity type %s is not defined, skipped", set_name, type_name)
            return None
        set_rules = self.set_annotations(container_fqn, entity_set, info)
        attributes = tuple(
            self._attribute(info, declaring, prop, set_rules) for declaring, prop in info.properties
        )
        return ObjectDef(
            name=set_name,
            entity_name=info.name,
            label=set_rules.label or set_name,
            attributes=attributes,
            navigations=self._navigations(info, entity_set),
            capabilities=object_capabilities(set_rules.capabilities, has_keys=any(a.key for a in attributes)),
            description=set_rules.description,
            runtime={
                "entity_type": info.fqn,
                "etag": set_rules.etag,
                "searchable": set_rules.searchable,
                "requires_filter": set_rules.requires_filter,
            },
        )

    def set_annotations(
        self, container_fqn: str, entity_set: etree._Element, info: EntityTypeInfo
    ) -> SetAnnotations:
        """What the annotations of ``entity_set`` (inline or targeted) and of its type say."""
        container_name = container_fqn.rpartition(".")[2]
        set_name = entity_set.get("Name") or ""
        set_terms = self.annotations(
            entity_set, f"{container_fqn}/{set_name}", f"{container_name}/{set_name}"
        )
        type_terms = self.annotations(info.element, info.fqn)
        filter_rules = _record(set_terms.get(CAPABILITIES + "FilterRestrictions"))
        sort_rules = _record(set_terms.get(CAPABILITIES + "SortRestrictions"))
        concurrency = set_terms.get(CORE + "OptimisticConcurrency")

        def allowed(restrictions: str, permission: str) -> bool:
            return _bool(_record(set_terms.get(CAPABILITIES + restrictions)).get(permission), True)

        readable = allowed("ReadRestrictions", "Readable")
        capabilities = Capabilities(
            queryable=readable,
            countable=allowed("CountRestrictions", "Countable"),
            creatable=allowed("InsertRestrictions", "Insertable"),
            updatable=allowed("UpdateRestrictions", "Updatable"),
            deletable=allowed("DeleteRestrictions", "Deletable"),
            pageable=_bool(set_terms.get(CAPABILITIES + "TopSupported"), True)
            and _bool(set_terms.get(CAPABILITIES + "SkipSupported"), True),
            filterable=allowed("FilterRestrictions", "Filterable"),
            sortable=allowed("SortRestrictions", "Sortable"),
            readable_by_key=readable,
        )
        return SetAnnotations(
            capabilities=capabilities,
            label=_string(set_terms.get(SAP_COMMON + "Label"))
            or _string(type_terms.get(SAP_COMMON + "Label"))
            or "",
            description=_string(set_terms.get(CORE + "Description"))
            or _string(type_terms.get(CORE + "Description"))
            or "",
            etag=concurrency is not None,
            searchable=allowed("SearchRestrictions", "Searchable"),
            requires_filter=_bool(filter_rules.get("RequiresFilter"), False),
            non_filterable=frozenset(_paths(filter_rules.get("NonFilterableProperties"))),
            non_sortable=frozenset(_paths(sort_rules.get("NonSortableProperties"))),
            etag_properties=frozenset(_paths(concurrency)),
        )

    def property_annotations(
        self, declaring_fqn: str, prop: etree._Element, set_rules: SetAnnotations
    ) -> PropertyAnnotations:
        """What the annotations of ``prop`` (declared on ``declaring_fqn``) and its set say."""
        name = prop.get("Name") or ""
        terms = self.annotations(prop, f"{declaring_fqn}/{name}")
        computed = _bool(terms.get(CORE + "Computed"), False)
        immutable = _bool(terms.get(CORE + "Immutable"), False)
        permissions = _enum_members(terms.get(CORE + "Permissions"))
        read_only = computed or (bool(permissions) and not permissions & {"Write", "ReadWrite"})
        return PropertyAnnotations(
            label=_string(terms.get(SAP_COMMON + "Label")) or "",
            creatable=not read_only,
            updatable=not (read_only or immutable),
            filterable=name not in set_rules.non_filterable,
            sortable=name not in set_rules.non_sortable,
            etag=name in set_rules.etag_properties,
        )

    def _attribute(
        self, info: EntityTypeInfo, declaring_fqn: str, prop: etree._Element, set_rules: SetAnnotations
    ) -> Attribute:
        name = prop.get("Name") or ""
        value_type, wire_type, enum, collection = self.value_type(prop.get("Type") or "")
        rules = self.property_annotations(declaring_fqn, prop, set_rules)
        key = name in info.keys
        return Attribute(
            name=name,
            type=value_type,
            wire_type=wire_type,
            label=rules.label,
            key=key,
            nullable=not key and prop.get("Nullable", "true") != "false",
            creatable=rules.creatable,
            updatable=rules.updatable and not key,
            filterable=rules.filterable,
            sortable=rules.sortable,
            max_length=int_facet(prop.get("MaxLength")),
            precision=int_facet(prop.get("Precision")),
            scale=int_facet(prop.get("Scale")),
            enum=enum,
            collection=collection,
            runtime={"etag": True} if rules.etag else {},
        )

    def _navigations(self, info: EntityTypeInfo, entity_set: etree._Element) -> tuple[Navigation, ...]:
        bindings: dict[str, str] = {}
        for binding in _children(entity_set, "NavigationPropertyBinding"):
            path, target = binding.get("Path") or "", binding.get("Target") or ""
            head, slash, rest = path.partition("/")
            # "Namespace.DerivedType/Nav" binds a navigation declared on a type in the hierarchy.
            if slash and self.qualify(head) in info.chain:
                path = rest
            bindings[path] = target.rpartition("/")[2]
        return tuple(
            Navigation(
                name=nav.get("Name") or "",
                target=bindings.get(nav.get("Name") or "", ""),
                many=(nav.get("Type") or "").startswith("Collection("),
            )
            for nav in info.navigations
        )

    def service_name_and_title(self) -> tuple[str, str]:
        if not self.containers:
            return "", ""
        container_fqn, container = self.containers[0]
        namespace = container_fqn.rpartition(".")[0]
        terms = self.annotations(container, container_fqn)
        title = _string(terms.get(SAP_COMMON + "Label")) or _string(terms.get(CORE + "Description"))
        return namespace, title or namespace


# --- annotation values (attribute or child element notation) -------------------------------


def _record(annotation: etree._Element | None) -> dict[str, etree._Element]:
    """The PropertyValues of an annotation's Record, by property name."""
    if annotation is None:
        return {}
    record = next(_children(annotation, "Record"), None)
    if record is None:
        return {}
    return {pv.get("Property") or "": pv for pv in _children(record, "PropertyValue")}


def _bool(holder: etree._Element | None, default: bool) -> bool:
    """A Bool value; a bare Annotation means true (the vocabularies' default for tag terms)."""
    if holder is None:
        return default
    value = holder.get("Bool")
    if value is None:
        child = next(_children(holder, "Bool"), None)
        if child is None:
            return True if _local(holder) == "Annotation" else default
        value = child.text or ""
    return value.strip() == "true"


def _string(holder: etree._Element | None) -> str | None:
    if holder is None:
        return None
    value = holder.get("String")
    if value is None:
        child = next(_children(holder, "String"), None)
        value = None if child is None else child.text
    return value.strip() if value else None


def _paths(holder: etree._Element | None) -> Iterator[str]:
    """The property paths of a Collection of PropertyPath (as in NonFilterableProperties)."""
    if holder is None:
        return
    for collection in _children(holder, "Collection"):
        for path in collection:
            if _local(path) in {"PropertyPath", "NavigationPropertyPath"} and path.text:
                yield path.text.strip()


def _enum_members(holder: etree._Element | None) -> frozenset[str]:
    """Member names of an EnumMember value such as ``Org.OData.Core.V1.Permission/Read``."""
    if holder is None:
        return frozenset()
    value = holder.get("EnumMember")
    if value is None:
        child = next(_children(holder, "EnumMember"), None)
        value = None if child is None else child.text
    return frozenset(part.rpartition("/")[2] for part in (value or "").split())


def _int_or_text(value: str) -> str | int:
    try:
        return int(value)
    except ValueError:
        return value


def _local(element: etree._Element) -> str:
    tag = element.tag
    return tag.rpartition("}")[2] if isinstance(tag, str) else ""


def _children(element: etree._Element, localname: str) -> Iterator[etree._Element]:
    return (child for child in element if _local(child) == localname)
