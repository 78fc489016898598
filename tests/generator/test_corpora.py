"""Real metadata (../shared/corpora) through the sap-odata provider into packages that lint and type-check."""

from __future__ import annotations

import inspect
from pathlib import Path

import pytest

from generator import GeneratedPackage, generate_package
from generator.names import suggest_module_name
from generator.spec import IntegrationSpec, ObjectSelection
from tests.fixtures.corpora import corpus_file, corpus_files
from tests.fixtures.generated import discover_file, imported, mypy_problems, ruff_problems, write_package

CORPUS = corpus_files("sap-v2", "odata-v4")


def _everything(path: Path) -> GeneratedPackage:
    """Every object of the document, every navigation expanded."""
    catalog = discover_file(path)
    spec = IntegrationSpec(
        provider="sap-odata",
        application_name=path.name,
        module_name=suggest_module_name(f"{path.parent.name}_{path.stem}"),
        objects=[ObjectSelection(o.name, expand=[n.name for n in o.navigations]) for o in catalog.objects],
    )
    return generate_package(catalog, spec)


@pytest.fixture(scope="module")
def corpus_packages(tmp_path_factory: pytest.TempPathFactory) -> dict[Path, Path]:
    if not CORPUS:
        pytest.skip("../shared/corpora is absent")
    directory = tmp_path_factory.mktemp("corpora")
    return {path: write_package(_everything(path), directory) for path in CORPUS}


@pytest.mark.parametrize("path", CORPUS, ids=lambda p: f"{p.parent.name}/{p.name}")
def test_corpus_document_generates_a_compiling_package(path: Path, corpus_packages: dict[Path, Path]) -> None:
    package = corpus_packages[path]
    catalog = discover_file(path)
    for source in sorted(package.glob("*.py")):
        compile(source.read_text(), str(source), "exec", dont_inherit=True)
    driver = (package / "driver.py").read_text()
    assert driver.count(" = ObjectDescriptor(") == len(catalog.objects)


def test_corpus_packages_pass_ruff_and_mypy_strict(corpus_packages: dict[Path, Path]) -> None:
    packages = list(corpus_packages.values())
    assert ruff_problems(*packages) == ""
    assert mypy_problems(*packages) == ""


def test_dataverse_document_generates_a_lint_clean_package(tmp_path: Path) -> None:
    package = write_package(_everything(corpus_file("dataverse/dynamics-crm-v9.1.xml")), tmp_path)
    assert ruff_problems(package) == ""


def test_property_and_navigation_with_clashing_names_stay_distinct(tmp_path: Path) -> None:
    path = corpus_file("sap-v2/name-clash.edmx")
    first, second = _everything(path), _everything(path)
    assert first.files == second.files
    directory = write_package(first, tmp_path)
    with imported(tmp_path, directory.name) as package:
        fields = {f.wire: f.attr for f in package.driver.A_TEST_ENTITY.fields}
        assert fields == {"KeyPropertyGuid": "key_property_guid", "MultiLink": "multi_link",
                          "toMultiLink": "to_multi_link"}
        assert [(n.wire, n.attr) for n in package.driver.A_TEST_ENTITY.navigations] == [
            ("to_MultiLink", "to_multi_link_2")
        ]
        assert list(inspect.signature(package.ATestEntityV2).parameters) == [
            "key_property_guid", "multi_link", "to_multi_link", "to_multi_link_2"
        ]


def test_function_imports_do_not_clash_with_actions(tmp_path: Path) -> None:
    package = _everything(corpus_file("sap-v2/FunctionImportNameClash.edmx"))
    directory = write_package(package, tmp_path)
    with imported(tmp_path, directory.name) as generated:
        verbs = {"search", "count", "iter", "get", "create", "update", "delete"}
        actions = sorted(name for name in vars(generated.driver) if name.split("_")[0] in verbs)
    assert actions == [
        "count_bp", "count_bp_async", "create_bp_type", "create_bp_type_async", "delete_bp_type",
        "delete_bp_type_async", "get_bp_type", "get_bp_type_async", "iter_bp", "iter_bp_async", "search_bp",
        "search_bp_async", "update_bp_type", "update_bp_type_async",
    ]
