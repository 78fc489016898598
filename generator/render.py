"""The render model: every name, type and source fragment the templates print, computed in Python.

Templates hold no decisions; they lay out what :func:`build_render_model` computed. Names are
handed out through :mod:`generator.names` in one fixed order (models, enums, attribute enums,
descriptor constants; objects in catalog order; renamed attributes, other attributes, expansions)
so the same spec and metadata always give the same identifiers.
"""

from __future__ import annotations

import html
from dataclasses import dataclass, field

from generator import names, pycode
from generator.names import Namespace
from generator.pycode import Code, Group, Node, Pair, Text, call, dictionary, value_node
from generator.selection import Actions, SelectedObject, Selection
from providers.model import Attribute, EnumType, Navigation, ObjectDef, ValueType


@dataclass(frozen=True, slots=True)
class TypeRef:
    """An annotation plus what it needs imported: stdlib imports and generated model classes."""

    annotation: str
    imports: frozenset[tuple[str, str | None]] = frozenset()  # (module, name); name None: ``import module``
    models: frozenset[str] = frozenset()

    def listed(self) -> TypeRef:
        return TypeRef(f"list[{self.annotation}]", self.imports, self.models)


_ANY = TypeRef("Any", frozenset({("typing", "Any")}))
_BASE_TYPES: dict[ValueType, TypeRef] = {
    ValueType.STRING: TypeRef("str"),
    ValueType.INTEGER: TypeRef("int"),
    ValueType.DECIMAL: TypeRef("Decimal", frozenset({("decimal", "Decimal")})),
    ValueType.FLOAT: TypeRef("float"),
    ValueType.BOOLEAN: TypeRef("bool"),
    ValueType.DATETIME: TypeRef("datetime.datetime", frozenset({("datetime", None)})),
    ValueType.DATE: TypeRef("datetime.date", frozenset({("datetime", None)})),
    ValueType.TIME: TypeRef("datetime.time", frozenset({("datetime", None)})),
    ValueType.DURATION: TypeRef("datetime.timedelta", frozenset({("datetime", None)})),
    ValueType.GUID: TypeRef("UUID", frozenset({("uuid", "UUID")})),
    ValueType.BINARY: TypeRef("bytes"),
    ValueType.ENUM: _ANY,  # an enum attribute whose members the system did not describe
    ValueType.JSON: _ANY,
}
_RECORD_DICT = TypeRef("dict[str, Any]", _ANY.imports)
_CONNECTION_EXPORTS = ("ApiKeyAuth", "BasicAuth", "BearerAuth", "Connection")
_QUERY_EXPORTS = ("BasicFilter", "FilterOperator", "OrderBy", "Page", "SortDirection")


@dataclass(frozen=True, slots=True)
class Flavor:
    """What differs between an action and its async twin; the templates write each action once."""

    is_async: bool
    suffix: str
    define: str
    await_: str
    client: str
    open_client: str
    iterator: str
    resolve: str
    call: str  # resolves the connection, calls, and retries once after Unauthorized


FLAVORS = (
    Flavor(
        is_async=False,
        suffix="",
        define="def",
        await_="",
        client="Client",
        open_client="with _client(connection) as client",
        iterator="Iterator",
        resolve="_RESOLVER.resolve()",
        call="_RESOLVER.call",
    ),
    Flavor(
        is_async=True,
        suffix="_async",
        define="async def",
        await_="await ",
        client="AsyncClient",
        open_client="async with _async_client(connection) as client",
        iterator="AsyncIterator",
        resolve="await _RESOLVER.aresolve()",
        call="await _RESOLVER.acall",
    ),
)


@dataclass(slots=True)
class EnumMemberModel:
    assignment: str  # 'RED = "Red"', laid out for indentation 4
    doc: list[str]


@dataclass(slots=True)
class EnumModel:
    name: str
    base: str  # "Enum" or "Flag"
    doc: list[str]
    members: list[EnumMemberModel]


@dataclass(slots=True)
class IdTypeModel:
    """``AccountId = NewType("AccountId", str)``: the key of one object's records, as a type."""

    name: str
    assignment: str
    doc: list[str]


@dataclass(slots=True)
class FieldModel:
    declaration: str  # "name: X | None = None": records may be read partially, attributes may be null
    doc: list[str]


def _field(name: str, annotation: str, doc: list[str]) -> FieldModel:
    declaration = f"{name}: {annotation} | None = None"
    if len(declaration) > pycode.LINE_LENGTH - 4:
        declaration = f"{name}: (\n        {annotation} | None\n    ) = None"
    return FieldModel(declaration, doc)


@dataclass(slots=True)
class LinksModel:
    """The ``TypedDict`` of an object's lookups that create/update set (``links=``)."""

    name: str
    doc: list[str]
    fields: list[FieldModel]  # "name: X | None"
    keys: list[str]  # the lookups' names, for the README


def _link_field(name: str, annotation: str, doc: list[str]) -> FieldModel:
    declaration = f"{name}: {annotation} | None"
    if len(declaration) > pycode.LINE_LENGTH - 4:
        declaration = f"{name}: (\n        {annotation} | None\n    )"
    return FieldModel(declaration, doc)


@dataclass(slots=True)
class KeyParameter:
    name: str
    annotation: str


@dataclass(slots=True)
class ActionModel:
    kind: str  # search, count, iter, get, create, update, delete: picks the docstring and the body
    name: str  # without the "_async" suffix of the twin
    parameters: list[str]  # after ``connection``
    arguments: list[str]  # the parameters passed on, after the connection
    keyword_arguments: list[str]  # the same, all by keyword (for functools.partial)
    returns: str
    returns_async: str
    returns_value: bool
    formatted_values: bool = False  # takes ``formatted_values`` (the system formats values)
    links: bool = False  # takes ``links`` (the object has lookups to set)


_FILTER_PARAMETERS = ["filters: Sequence[BasicFilter] = ()", "advanced_filter: str | None = None"]
_ORDER_PARAMETERS = ["order_by: Sequence[OrderBy] = ()", "advanced_order_by: str | None = None"]
_ETAG_PARAMETER = "etag: str | None = None"
_FORMATTED_PARAMETER = "formatted_values: bool = False"


def _action(kind: str, name: str, parameters: list[str], positional: int, returns: str) -> ActionModel:
    """``positional`` leading parameters (the key) are passed on by position, the rest by keyword."""
    names_only = [parameter.split(":", 1)[0] for parameter in parameters]
    arguments = names_only[:positional] + [f"{n}={n}" for n in names_only[positional:]]
    returns_async = returns.replace("Iterator[", "AsyncIterator[", 1) if kind == "iter" else returns
    keyword_arguments = [f"{n}={n}" for n in names_only]
    return ActionModel(
        kind, name, parameters, arguments, keyword_arguments, returns, returns_async, returns != "None"
    )


def _action_models(
    actions: Actions,
    plural: str,
    singular: str,
    model: str,
    attribute_enum: str,
    keys: list[KeyParameter],
    formatted_values: bool,
    links: str | None,
) -> list[ActionModel]:
    """``formatted_values``: reads may ask for formatted values; ``links``: the TypedDict of the
    lookups create/update may set."""
    key_parameters = [f"{key.name}: {key.annotation}" for key in keys]
    record_parameters = [
        f"obj: {model}",
        f"attributes_to_send: Sequence[{attribute_enum} | str] | None = None",
    ]
    link_parameters = [f"links: {links} | None = None"] if links else []
    formatted_parameters = [_FORMATTED_PARAMETER] if formatted_values else []
    search_parameters = [
        *_FILTER_PARAMETERS,
        *_ORDER_PARAMETERS,
        "skip: int = 0",
        "top: int = 50",
        *formatted_parameters,
    ]
    iter_parameters = [*_FILTER_PARAMETERS, *_ORDER_PARAMETERS, "page_size: int = 500", *formatted_parameters]
    update_parameters = [*key_parameters, *record_parameters, _ETAG_PARAMETER, *link_parameters]
    wanted = [
        (actions.search, "search", plural, search_parameters, 0, f"Page[{model}]"),
        (actions.count, "count", plural, _FILTER_PARAMETERS, 0, "int"),
        (actions.search, "iter", plural, iter_parameters, 0, f"Iterator[{model}]"),
        (actions.get, "get", singular, [*key_parameters, *formatted_parameters], len(keys), model),
        (actions.create, "create", singular, [*record_parameters, *link_parameters], 0, model),
        (actions.update, "update", singular, update_parameters, len(keys), "None"),
        (actions.delete, "delete", singular, [*key_parameters, _ETAG_PARAMETER], len(keys), "None"),
    ]
    models = []
    for enabled, kind, stem, parameters, positional, returns in wanted:
        if enabled:
            action = _action(kind, f"{kind}_{stem}", parameters, positional, returns)
            action.formatted_values = _FORMATTED_PARAMETER in parameters
            action.links = bool(link_parameters) and link_parameters[0] in parameters
            models.append(action)
    return models


@dataclass(slots=True)
class ReadmeField:
    name: str
    wire: str
    annotation: str


@dataclass(slots=True)
class ObjectModel:
    title: str  # the object's label, for the README
    wire_name: str  # docstring-safe
    model: str
    attribute_enum: str
    constant: str
    plural: str  # stem of search_ / count_ / iter_
    singular: str  # stem of get_ / create_ / update_ / delete_
    actions: Actions
    action_models: list[ActionModel]
    read_only: bool
    model_doc: list[str]
    fields: list[FieldModel]
    attribute_members: list[EnumMemberModel]
    first_member: str  # an attribute enum member for README examples
    key_parameters: list[KeyParameter]
    key_argument: str  # the key mapping as the ``key=`` argument at indentation 12
    descriptor: str  # "CONSTANT = ObjectDescriptor(...)"
    readme_fields: list[ReadmeField]
    links: LinksModel | None  # lookups create/update set, when the system binds navigations
    formatted_values: bool  # reads may ask for formatted values


@dataclass(slots=True)
class RenderModel:
    module: str
    version: str
    version_literal: str
    module_literal: str
    title: str  # application name, for the README
    description: list[str]  # README paragraphs
    extra_requirements: list[str]
    enums: list[EnumModel]
    id_types: list[IdTypeModel]
    objects: list[ObjectModel]
    service_descriptor: str
    has_search: bool
    has_writes: bool
    has_links: bool
    formatted_values: bool
    models_imports: str
    driver_imports: str
    service_imports: str
    init_imports: str
    exports: list[str] = field(default_factory=list)
    flavors: tuple[Flavor, ...] = FLAVORS


class _Imports:
    """Import lines of one generated module, written in the order ruff's isort expects."""

    def __init__(self, models_module: str = ".models") -> None:
        self._plain: set[str] = set()
        self._from: dict[str, set[str]] = {}
        self._models_module = models_module

    def add(self, module: str, *members: str) -> None:
        if members:
            self._from.setdefault(module, set()).update(members)
        else:
            self._plain.add(module)

    def add_type(self, ref: TypeRef) -> None:
        for module, member in ref.imports:
            self.add(module, *([member] if member else []))
        if ref.models:
            self.add(self._models_module, *ref.models)

    def render(self) -> str:
        stdlib = [f"import {module}" for module in sorted(self._plain)]
        stdlib += [
            pycode.from_import(module, sorted(members))
            for module, members in sorted(self._from.items())
            if not module.startswith(".")
        ]
        local = [
            pycode.from_import(module, sorted(members))
            for module, members in sorted(self._from.items(), key=lambda item: (item[0] != ".", item[0]))
            if module.startswith(".")
        ]
        sections = ["from __future__ import annotations", "\n".join(stdlib), "\n".join(local)]
        return "\n\n".join(section for section in sections if section)


def _doc(text: str) -> list[str]:
    return names.docstring_lines(text)


def _markdown(text: str) -> str:
    """Text for a Markdown code span or table cell: one line, no backticks or pipes."""
    return " ".join(text.split()).replace("`", "'").replace("|", "/")


def _markdown_text(text: str) -> str:
    """Prose for the README (which indexes may render as HTML): :func:`_markdown`, HTML-escaped."""
    return html.escape(_markdown(text), quote=False)


def _field_doc(attribute: Attribute) -> list[str]:
    facts = [f"``{attribute.name}``", attribute.wire_type]
    if attribute.key:
        facts.append("key")
    if attribute.read_only:
        facts.append("read-only")
    elif not attribute.creatable:
        facts.append("not sent on create")
    elif not attribute.updatable:
        facts.append("not sent on update")
    if attribute.max_length:
        facts.append(f"at most {attribute.max_length} characters")
    described = ", ".join(fact for fact in facts if fact)
    label = attribute.label.strip()
    return _doc(f"{label} ({described})." if label else f"{described}.")


def _model_doc(definition: ObjectDef) -> list[str]:
    parts = [f"A record of ``{definition.name}``.", definition.description]
    label = definition.label.strip()
    if label and label != definition.name:
        parts.insert(0, f"{label}.")
    return _doc(" ".join(part for part in parts if part))


def _member(name: str, value: Node, doc: str = "") -> EnumMemberModel:
    prefix = f"{name} = "
    return EnumMemberModel(prefix + value.render(4 + len(prefix), 4, 0), _doc(doc))


class _Builder:
    def __init__(self, selection: Selection) -> None:
        self.selection = selection
        self.classes = Namespace(names.PYTHON_RESERVED | names.PACKAGE_NAMES)
        self.plurals = Namespace()
        self.singulars = Namespace()
        self.enum_names: dict[EnumType, str] = {}
        self.model_names: dict[str, str] = {}  # ObjectDef.name -> model class
        # ObjectDef.name of a referenced object -> (its id type, the type it is a NewType of)
        self.id_types: dict[str, tuple[str, TypeRef]] = {}

    def value_type(self, attribute: Attribute) -> TypeRef:
        if attribute.type is ValueType.ENUM and attribute.enum is not None:
            name = self.enum_names[attribute.enum]
            ref = TypeRef(name, models=frozenset({name}))
        else:
            ref = _BASE_TYPES[attribute.type]
        return ref.listed() if attribute.collection else ref

    def field_type(self, definition: ObjectDef, attribute: Attribute) -> TypeRef:
        """The model field's type: the referenced object's id type for a lookup (and for the key
        of an object that is referenced), else :meth:`value_type`."""
        base = self.value_type(attribute)
        sole_key = attribute.key and len(definition.keys) == 1
        target = attribute.reference_to or (definition.name if sole_key else None)
        found = self.id_types.get(target) if target else None
        if found is None or found[1] != base:
            return base
        return TypeRef(found[0], models=frozenset({found[0]}))

    def name_id_types(self) -> None:
        """An id type per object that single-target lookups of the selected attributes point at,
        named after everything else so that adding one renames nothing (``Product`` -> ``ProductId``)."""
        catalog = {o.name: o for o in self.selection.catalog.objects}
        for selected in self.selection.objects:
            for attribute in selected.attributes:
                target = attribute.reference_to
                base = self.value_type(attribute)
                if target and target not in self.id_types and not attribute.collection and not base.models:
                    known = catalog.get(target)
                    singular = known.entity_name if known is not None else target
                    name = self.classes.add(f"{singular} Id", "pascal", "RecordId")
                    self.id_types[target] = (name, base)

    def id_type_model(self, target: str, name: str, base: TypeRef) -> IdTypeModel:
        assignment = pycode.assignment(name, call("NewType", Text(name), Code(base.annotation)))
        return IdTypeModel(
            name, assignment, _doc(f"The key of ``{target}`` records (a ``{base.annotation}``).")
        )

    def build(self) -> RenderModel:
        selection = self.selection
        for selected in selection.objects:
            definition = selected.definition
            self.model_names[definition.name] = self.classes.add(definition.entity_name, "pascal", "Model")
        for selected in selection.objects:
            for attribute in selected.attributes:
                if attribute.type is ValueType.ENUM and attribute.enum is not None:
                    if attribute.enum not in self.enum_names:
                        short = attribute.enum.name.rsplit(".", 1)[-1]
                        self.enum_names[attribute.enum] = self.classes.add(short, "pascal", "Choice")
        attribute_enums = {
            selected.definition.name: self.classes.claim(
                self.model_names[selected.definition.name][: names.MAX_IDENTIFIER_LENGTH - 9] + "Attribute"
            )
            for selected in selection.objects
        }
        stems = {
            selected.definition.name: (
                self.plurals.claim(names.stem(selected.definition.name, "objects")),
                self.singulars.claim(names.stem(selected.definition.entity_name, "object")),
            )
            for selected in selection.objects
        }
        constants = {name: self.classes.claim(plural.upper()) for name, (plural, _) in stems.items()}
        links = {
            selected.definition.name: self.classes.claim(
                self.model_names[selected.definition.name][: names.MAX_IDENTIFIER_LENGTH - 5] + "Links"
            )
            for selected in selection.objects
            if self.lookups(selected)
        }
        self.name_id_types()

        models_imports = _Imports()
        models_imports.add("dataclasses", "dataclass")
        models_imports.add("enum", "Enum")
        models_imports.add("._runtime.records", "Record")
        if self.id_types:
            models_imports.add("typing", "NewType")
            for _, base in self.id_types.values():
                models_imports.add_type(base)
        driver_imports = _Imports()
        service_imports = _Imports()
        objects = [
            self.object_model(
                selected,
                attribute_enum=attribute_enums[selected.definition.name],
                constant=constants[selected.definition.name],
                plural=stems[selected.definition.name][0],
                singular=stems[selected.definition.name][1],
                links=links.get(selected.definition.name),
                models_imports=models_imports,
                action_imports=(driver_imports, service_imports),
            )
            for selected in selection.objects
        ]
        enums = [self.enum_model(enum, name) for enum, name in self.enum_names.items()]
        if any(enum.flags for enum in self.enum_names):
            models_imports.add("enum", "Flag")
        has_search = any(o.actions.search for o in objects)
        has_writes = any(o.actions.create or o.actions.update for o in objects)
        if links:
            models_imports.add("typing", "TypedDict")
        self.common_imports(driver_imports, service_imports, has_search, has_writes)

        catalog, spec = selection.catalog, selection.spec
        service_descriptor = pycode.assignment(
            "SERVICE",
            call(
                "ServiceDescriptor",
                integration=Text(spec.module_name),
                version=Text(spec.version),
                runtime=value_node(dict(catalog.runtime)),
                objects=dictionary([(name, Code(constant)) for name, constant in constants.items()]),
            ),
        )
        exported_classes = [
            *(o.model for o in objects),
            *(o.attribute_enum for o in objects),
            *(e.name for e in enums),
            *links.values(),
            *(name for name, _ in self.id_types.values()),
        ]
        init_imports = _Imports()
        init_imports.add(".", "errors")
        init_imports.add("._runtime.connection", *_CONNECTION_EXPORTS)
        init_imports.add("._runtime.query", *_QUERY_EXPORTS)
        init_imports.add(".models", *exported_classes)
        exports = sorted([*exported_classes, *_CONNECTION_EXPORTS, *_QUERY_EXPORTS, "errors", "__version__"])
        return RenderModel(
            module=spec.module_name,
            version=spec.version,
            version_literal=pycode.string_literal(spec.version),
            module_literal=pycode.string_literal(spec.module_name),
            title=_markdown_text(spec.application_name) or spec.module_name,
            description=[_markdown_text(line) for line in spec.description.splitlines() if line.strip()],
            extra_requirements=[_markdown(r) for r in selection.runtime.dependencies],
            enums=enums,
            id_types=[self.id_type_model(target, *found) for target, found in self.id_types.items()],
            objects=objects,
            service_descriptor=service_descriptor,
            has_search=has_search,
            has_writes=has_writes,
            has_links=bool(links),
            formatted_values=self.formats_values() and has_search,
            models_imports=models_imports.render(),
            driver_imports=driver_imports.render(),
            service_imports=service_imports.render(),
            init_imports=init_imports.render(),
            exports=exports,
        )

    def common_imports(self, driver: _Imports, service: _Imports, has_search: bool, has_writes: bool) -> None:
        runtime = f"._runtime.{self.selection.runtime.module}"
        driver.add("collections.abc", "AsyncIterator", "Iterator")
        driver.add("contextlib", "asynccontextmanager", "contextmanager")
        driver.add("._runtime.connection", "Connection")
        driver.add(runtime, "AsyncClient", "Client")
        driver.add("._runtime.records", "ObjectDescriptor", "ServiceDescriptor")
        service.add(".", "driver")
        service.add("._runtime.connection", "ManagerResolver")
        if has_search:
            driver.add("typing", "Any", "TypeVar")
            service.add("typing", "TypeVar")
            for imports in (driver, service):
                imports.add("collections.abc", "AsyncIterator", "Iterator", "Sequence")
                imports.add("._runtime.query", "BasicFilter", "OrderBy", "Page")
        if has_writes:
            driver.add("enum", "Enum")
            for imports in (driver, service):
                imports.add("collections.abc", "Sequence")

    def formats_values(self) -> bool:
        """Whether the system formats values for display on request (the provider says so)."""
        return bool(self.selection.catalog.runtime.get("formatted_values"))

    def lookups(self, selected: SelectedObject) -> list[tuple[Navigation, Attribute]]:
        """The navigations create/update may set (the provider marks them ``settable``), with their
        target's key: for targets in the catalog with one plain key."""
        actions = selected.actions
        if not (actions.create or actions.update):
            return []
        found: list[tuple[Navigation, Attribute]] = []
        targets = {o.name: o for o in self.selection.catalog.objects}
        for navigation in selected.definition.navigations:
            target = targets.get(navigation.target)
            if not navigation.settable or navigation.many or target is None or len(target.keys) != 1:
                continue
            key = target.keys[0]
            if key.type not in (ValueType.ENUM, ValueType.JSON) and not key.collection:
                found.append((navigation, key))
        return found

    def enum_model(self, enum: EnumType, name: str) -> EnumModel:
        members = Namespace(names.PYTHON_RESERVED)
        flags = enum.flags and all(isinstance(m.value, int) for m in enum.members)
        return EnumModel(
            name=name,
            base="Flag" if flags else "Enum",
            doc=_doc(f"{enum.name.rsplit('.', 1)[-1]} (``{enum.name}``)."),
            members=[
                _member(members.add(member.name, "upper", "MEMBER"), value_node(member.value), member.label)
                for member in enum.members
            ],
        )

    def object_model(
        self,
        selected: SelectedObject,
        *,
        attribute_enum: str,
        constant: str,
        plural: str,
        singular: str,
        links: str | None,
        models_imports: _Imports,
        action_imports: tuple[_Imports, _Imports],
    ) -> ObjectModel:
        definition = selected.definition
        model = self.model_names[definition.name]
        field_names = Namespace(names.PYTHON_RESERVED | names.RECORD_MEMBERS)
        # By position, not wire name: a navigation may share its wire name with an attribute.
        wires = [a.name for a in selected.attributes] + [n.name for n in selected.expand]
        chosen: dict[int, str] = {}
        for wire, python in selected.renames.items():
            chosen[wires.index(wire)] = field_names.claim(python)
        for index, wire in enumerate(wires):
            if index not in chosen:
                chosen[index] = field_names.add(wire, "snake", "field", names.RECORD_MEMBERS)
        attribute_names = [chosen[index] for index in range(len(selected.attributes))]
        navigation_names = [chosen[index] for index in range(len(selected.attributes), len(wires))]

        fields: list[FieldModel] = []
        enum_members: list[EnumMemberModel] = []
        field_nodes: list[Node] = []
        readme_fields: list[ReadmeField] = []
        for attribute, name in zip(selected.attributes, attribute_names, strict=True):
            ref = self.value_type(attribute)
            typed = self.field_type(definition, attribute)
            models_imports.add_type(TypeRef(typed.annotation, typed.imports))
            fields.append(_field(name, typed.annotation, _field_doc(attribute)))
            enum_members.append(_member(name.upper(), Text(attribute.name)))
            readme_fields.append(ReadmeField(name, _markdown(attribute.name), typed.annotation))
            options: dict[str, Node] = {}
            if attribute.key:
                options["key"] = Code("True")
            if not attribute.creatable:
                options["creatable"] = Code("False")
            if not attribute.updatable:
                options["updatable"] = Code("False")
            if attribute.collection:
                options["collection"] = Code("True")
            if ref.models:
                options["enum"] = Code(next(iter(ref.models)))
                action_imports[0].add(".models", *ref.models)
            field_nodes.append(
                call(
                    "FieldDescriptor",
                    attr=Text(name),
                    wire=Text(attribute.name),
                    wire_type=Text(attribute.wire_type),
                    value_type=Text(attribute.type.value),
                    **options,
                )
            )
        lookups = {navigation.name: key for navigation, key in self.lookups(selected)}
        # lookups that are not expanded get names after everything else, so adding them changed none
        link_names = dict(zip([n.name for n in selected.expand], navigation_names, strict=True))
        for navigation, _ in self.lookups(selected):
            if navigation.name not in link_names:
                link_names[navigation.name] = field_names.add(
                    navigation.name, "snake", "field", names.RECORD_MEMBERS
                )
        navigation_nodes: list[Node] = []

        def navigation_node(navigation: Navigation, name: str, in_package: bool) -> Node:
            options = {"target": Text(navigation.target)} if in_package else {}
            key = lookups.get(navigation.name)
            if key is not None:
                options.update(bind_to=Text(navigation.target), bind_key_type=Text(key.wire_type))
            return call(
                "NavigationDescriptor",
                attr=Text(name),
                wire=Text(navigation.name),
                many=Code(repr(navigation.many)),
                **options,
            )

        for navigation, name in zip(selected.expand, navigation_names, strict=True):
            target = self.model_names.get(navigation.target)
            ref = TypeRef(target, models=frozenset({target})) if target else _RECORD_DICT
            if navigation.many:
                ref = ref.listed()
            models_imports.add_type(TypeRef(ref.annotation, ref.imports))
            label = navigation.label.strip()
            described = f"``{navigation.name}``, expanded"
            doc = _doc(f"{label} ({described})." if label else f"{described}.")
            fields.append(_field(name, ref.annotation, doc))
            navigation_nodes.append(navigation_node(navigation, name, bool(target)))
        link_fields: list[FieldModel] = []
        link_keys: list[str] = []
        for navigation, key in self.lookups(selected):
            name = link_names[navigation.name]
            if navigation not in selected.expand:
                in_package = navigation.target in self.model_names
                navigation_nodes.append(navigation_node(navigation, name, in_package))
            ref = self.value_type(key)
            models_imports.add_type(ref)
            label = navigation.label.strip()
            described = f"``{navigation.name}``: the ``{key.name}`` of a ``{navigation.target}`` record"
            doc = _doc(f"{label} ({described})." if label else f"{described}.")
            link_fields.append(_link_field(name, ref.annotation, doc))
            link_keys.append(name)
        links_doc = (
            f"Lookups of :class:`{model}` that create and update set: for each, the key of the record it "
            "points at, or None to clear it."
        )
        links_model = None
        if links and link_fields:
            links_model = LinksModel(links, _doc(links_doc), link_fields, link_keys)

        descriptor_parts: dict[str, Node] = {
            "name": Text(definition.name),
            "entity_name": Text(definition.entity_name),
            "model": Code(model),
            "fields": Group("(", field_nodes, ")", one_tuple=True),
        }
        driver_imports = action_imports[0]
        driver_imports.add(".models", model)
        if field_nodes:
            driver_imports.add("._runtime.records", "FieldDescriptor")
        if navigation_nodes:
            descriptor_parts["navigations"] = Group("(", navigation_nodes, ")", one_tuple=True)
            if selected.expand:
                descriptor_parts["expand"] = value_node(tuple(n.name for n in selected.expand))
            driver_imports.add("._runtime.records", "NavigationDescriptor")
        if definition.runtime:
            descriptor_parts["runtime"] = value_node(dict(definition.runtime))
        descriptor = pycode.assignment(constant, call("ObjectDescriptor", **descriptor_parts))

        actions = selected.actions
        key_parameters: list[KeyParameter] = []
        key_items: list[tuple[str, Node]] = []
        if actions.get or actions.update or actions.delete:
            parameters = Namespace(names.PYTHON_RESERVED | names.ACTION_PARAMETERS)
            key_names = [n for a, n in zip(selected.attributes, attribute_names, strict=True) if a.key]
            for attribute, field_name in zip(definition.keys, key_names, strict=True):
                parameter = parameters.claim(
                    field_name + "_" if field_name in names.ACTION_PARAMETERS else field_name
                )
                ref = self.value_type(attribute)
                for imports in action_imports:
                    imports.add_type(ref)
                key_parameters.append(KeyParameter(parameter, ref.annotation))
                key_items.append((attribute.name, Code(parameter)))
        if any((actions.search, actions.count, actions.get, actions.create, actions.update, actions.delete)):
            action_imports[1].add("functools", "partial")
        for imports in action_imports:
            if actions.search or actions.get or actions.create:
                imports.add(".models", model)
            if actions.create or actions.update:
                imports.add(".models", model, attribute_enum)
            if links_model is not None:
                imports.add(".models", links_model.name)
        return ObjectModel(
            title=_markdown_text(definition.label or definition.name),
            wire_name=_markdown(definition.name),
            model=model,
            attribute_enum=attribute_enum,
            constant=constant,
            plural=plural,
            singular=singular,
            actions=actions,
            action_models=_action_models(
                actions,
                plural,
                singular,
                model,
                attribute_enum,
                key_parameters,
                formatted_values=self.formats_values(),
                links=links_model.name if links_model else None,
            ),
            read_only=not (actions.create or actions.update or actions.delete),
            model_doc=_model_doc(definition),
            fields=fields,
            attribute_members=enum_members,
            first_member=_first_member(selected, attribute_names),
            key_parameters=key_parameters,
            key_argument=Pair(Code("key"), "=", dictionary(key_items)).render(12, 12, 1),
            descriptor=descriptor,
            readme_fields=readme_fields,
            links=links_model,
            formatted_values=self.formats_values() and actions.search,
        )


def _first_member(selected: SelectedObject, attribute_names: list[str]) -> str:
    """The attribute a README example filters on: the first key, else the first attribute."""
    pairs = list(zip(selected.attributes, attribute_names, strict=True))
    keys = [name for attribute, name in pairs if attribute.key]
    return (keys or attribute_names or [""])[0].upper()


def build_render_model(selection: Selection) -> RenderModel:
    """Name everything and lay out every source fragment the templates print."""
    return _Builder(selection).build()
