"""Metadata is untrusted: hostile names, labels and values must give harmless, compiling code."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from generator import generate_package
from generator.spec import IntegrationSpec, ObjectSelection
from providers.model import Attribute, Catalog, EnumMember, EnumType, Navigation, ObjectDef, ValueType
from tests.fixtures.generated import imported, mypy_problems, ruff_problems, write_package

PAYLOAD = 'x"); import os; os.system("touch /tmp/ib-pwned")#'
HOSTILE_TEXTS = [
    PAYLOAD,
    "'''\"\"\"\\",
    'a"""\nimport os\n"""',
    "line\nbreak\r\n\tand\x00null\x0bvt",
    "\\N{BULLET} \\u0041 \\x41",
    "名前",
    "",
    "0",
    "__class__",
    "__init__",
    "etag",
    "null_attributes",
    "_ib_etag",
    "connection",
    "filters",
    "obj",
    "client",
    "record",
    "to_send",
    "partial",
    "SERVICE",
    "Record",
    "True",
    "import",
    "self",
]
ALLOWED_IMPORTS = {
    "__future__",
    "collections.abc",
    "contextlib",
    "dataclasses",
    "datetime",
    "decimal",
    "enum",
    "functools",
    "typing",
    "uuid",
    "",
    "_runtime.connection",
    "_runtime.errors",
    "_runtime.odata",
    "_runtime.query",
    "_runtime.records",
    "models",
}
FORBIDDEN_NAMES = {"os", "system", "eval", "exec", "__import__", "subprocess", "open", "compile", "getattr"}


def _hostile_catalog() -> Catalog:
    attributes = tuple(
        Attribute(
            name=text or "",
            type=list(ValueType)[index % len(ValueType)],
            wire_type=PAYLOAD,
            label=HOSTILE_TEXTS[-index - 1],
            key=index == 0,
            enum=EnumType(PAYLOAD, (EnumMember(PAYLOAD, PAYLOAD, PAYLOAD), EnumMember("", 3, '"""')))
            if list(ValueType)[index % len(ValueType)] is ValueType.ENUM
            else None,
        )
        for index, text in enumerate(HOSTILE_TEXTS)
    )
    hostile = ObjectDef(
        name=PAYLOAD,
        entity_name='"""; import os',
        label='"""\\',
        description=PAYLOAD,
        attributes=attributes,
        navigations=(Navigation(PAYLOAD, "Other", many=True, label=PAYLOAD),),
        runtime={PAYLOAD: [PAYLOAD, {"k\n": '"""'}], "n": float("nan")},
    )
    other = ObjectDef(
        name="Other",
        entity_name=PAYLOAD,
        label="",
        attributes=(Attribute(PAYLOAD, ValueType.STRING, "Edm.String", key=True),),
    )
    runtime = {"odata_version": "2.0", PAYLOAD: PAYLOAD}
    return Catalog("sap-odata", PAYLOAD, PAYLOAD, (hostile, other), runtime=runtime)


ALLOWED_CALLS = {
    "ObjectDescriptor", "FieldDescriptor", "NavigationDescriptor", "ServiceDescriptor", "TypeVar",
    "ManagerResolver", "dataclass", "Client", "AsyncClient", "isinstance", "_client", "_async_client",
    "_items", "_items_async", "_attribute_names", "float", "partial",
}
ALLOWED_CALL_PREFIXES = ("client.", "driver.", "_RESOLVER.")


def _check_tree(tree: ast.AST, where: str) -> None:
    """Only the imports and calls the templates write: nothing else can run at import or call time."""
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            assert [alias.name for alias in node.names] == ["datetime"], f"{where}: {ast.unparse(node)}"
        if isinstance(node, ast.ImportFrom):
            assert (node.module or "") in ALLOWED_IMPORTS, f"{where}: {ast.unparse(node)}"
        if isinstance(node, ast.Call):
            function = ast.unparse(node.func)
            allowed = function in ALLOWED_CALLS or function.startswith(ALLOWED_CALL_PREFIXES)
            assert allowed, f"{where}: {function}"


def _check_source(path: Path) -> None:
    tree = ast.parse(compile(path.read_text(), str(path), "exec", flags=ast.PyCF_ONLY_AST, dont_inherit=True))
    _check_tree(tree, path.name)
    for node in ast.walk(tree):
        if isinstance(node, ast.Name):
            assert node.id not in FORBIDDEN_NAMES, f"{path.name}: {node.id}"
        if isinstance(node, ast.Attribute):
            assert node.attr not in FORBIDDEN_NAMES, f"{path.name}: {ast.unparse(node)}"


def _generated_sources(directory: Path) -> list[Path]:
    return sorted(directory.glob("*.py"))


def test_hostile_metadata_gives_harmless_code(tmp_path: Path) -> None:
    catalog = _hostile_catalog()
    spec = IntegrationSpec(
        provider="sap-odata",
        application_name=PAYLOAD + "<script>alert(1)</script>",
        module_name="hostile",
        description=PAYLOAD + "\n<img src=x onerror=alert(1)>",
        objects=[ObjectSelection(PAYLOAD, expand=[PAYLOAD]), ObjectSelection("Other")],
    )
    directory = write_package(generate_package(catalog, spec), tmp_path)
    for path in _generated_sources(directory):
        _check_source(path)
    with imported(tmp_path, "hostile") as hostile:
        descriptor = hostile.driver.SERVICE.objects[PAYLOAD]
        # the wire names survive exactly; the Python names are tame
        assert [f.wire for f in descriptor.fields] == HOSTILE_TEXTS
        attrs = [f.attr for f in descriptor.fields]
        assert len(set(attrs)) == len(attrs)
        assert all(a.isidentifier() and a.isascii() and not a.startswith("_") for a in attrs)
        assert "etag" not in attrs and "null_attributes" not in attrs and "import" not in attrs
        assert descriptor.runtime[PAYLOAD] == [PAYLOAD, {"k\n": '"""'}]
        assert hostile.driver.SERVICE.runtime[PAYLOAD] == PAYLOAD
        key = [f.attr for f in descriptor.keys]
        assert key == ["x_import_os_os_system_touch_tmp_ib_pwned"]
    assert not Path("/tmp/ib-pwned").exists()
    readme = (directory / "README.md").read_text()
    assert "<script>" not in readme and "<img" not in readme and "&lt;script&gt;" in readme
    assert ruff_problems(directory) == ""
    assert mypy_problems(directory) == ""


_names = st.text(max_size=24)
_attributes = st.lists(
    st.builds(
        Attribute,
        name=_names,
        type=st.sampled_from([t for t in ValueType if t is not ValueType.ENUM]),
        wire_type=_names,
        label=st.text(max_size=60),
        key=st.booleans(),
        collection=st.booleans(),
    ),
    min_size=1,
    max_size=5,
    unique_by=lambda a: a.name,
)
_enum_attributes = st.builds(
    Attribute,
    name=_names,
    type=st.just(ValueType.ENUM),
    wire_type=_names,
    enum=st.builds(
        EnumType,
        name=_names,
        members=st.lists(
            st.builds(EnumMember, name=_names, value=st.one_of(_names, st.integers()), label=_names),
            max_size=4,
        ).map(tuple),
        flags=st.booleans(),
    ),
)
_objects = st.lists(
    st.builds(
        ObjectDef,
        name=_names,
        entity_name=_names,
        label=st.text(max_size=40),
        attributes=st.tuples(_attributes, st.lists(_enum_attributes, max_size=1)).map(
            lambda parts: tuple({a.name: a for a in [*parts[0], *parts[1]]}.values())
        ),
        navigations=st.lists(
            st.builds(Navigation, name=_names, target=_names, many=st.booleans(), label=st.text(max_size=20)),
            max_size=2,
            unique_by=lambda n: n.name,
        ).map(tuple),
    ),
    min_size=1,
    max_size=3,
    unique_by=lambda o: o.name,
)


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(objects=_objects)
def test_any_metadata_gives_compiling_code_with_only_expected_names(
    objects: list[ObjectDef], tmp_path_factory: pytest.TempPathFactory
) -> None:
    catalog = Catalog("sap-odata", "S", "S", tuple(objects), runtime={"odata_version": "4.0"})
    spec = IntegrationSpec(
        provider="sap-odata",
        application_name="Any",
        module_name="anything",
        objects=[ObjectSelection(o.name, expand=[n.name for n in o.navigations]) for o in objects],
    )
    package = generate_package(catalog, spec)
    enums = {a.enum for o in objects for a in o.attributes if a.enum is not None}
    for relative, data in package.package_files().items():
        if not relative.endswith(".py") or "/_runtime/" in relative:
            continue
        tree = ast.parse(data.decode("utf-8"))
        _check_tree(tree, relative)
        if relative.endswith("models.py"):
            classes = [n.name for n in tree.body if isinstance(n, ast.ClassDef)]
            assert len(classes) == len(set(classes)) == 2 * len(objects) + len(enums)
            assert all(c.isascii() and c.isidentifier() for c in classes)
    directory = tmp_path_factory.mktemp("any")
    write_package(package, directory)
    for path in _generated_sources(directory / "anything"):
        compile(path.read_text(), str(path), "exec", dont_inherit=True)
