"""The generated package as its user sees it: models, enums, actions, signatures, lint and types."""

from __future__ import annotations

import dataclasses
import datetime
import inspect
import io
import typing
import zipfile
from collections.abc import Callable, Iterator
from decimal import Decimal
from enum import Enum, Flag
from pathlib import Path
from types import ModuleType
from typing import Any
from uuid import UUID

import pytest

from generator import GeneratedPackage, build_wheel, generate_package
from generator.names import MAX_IDENTIFIER_LENGTH
from generator.spec import IntegrationSpec, ObjectSelection
from providers.base import RuntimeSupport, get_provider
from providers.model import Attribute, Catalog, EnumMember, EnumType, Navigation, ObjectDef, ValueType
from tests.fixtures.generated import (
    imported,
    mypy_problems,
    ruff_problems,
    shop_catalog,
    shop_spec,
    write_package,
)

SHOP_ACTIONS = {
    "products": ["search_products", "count_products", "iter_products", "get_product", "create_product",
                 "update_product", "delete_product"],
    "order_items": ["search_order_items", "count_order_items", "iter_order_items", "get_order_item",
                    "create_order_item", "update_order_item", "delete_order_item"],
    # read-only by the spec
    "categories": ["search_categories", "count_categories", "iter_categories", "get_category"],
    # read-only by the system's capabilities
    "suppliers": ["search_suppliers", "count_suppliers", "iter_suppliers", "get_supplier"],
    # no key, not countable
    "logs": ["search_logs", "iter_logs", "create_log"],
    # not queryable, create only
    "events": ["create_event"],
}
ACTION_PREFIXES = ("search_", "count_", "iter_", "get_", "create_", "update_", "delete_")


@pytest.fixture(scope="module")
def packages_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("generated")


@pytest.fixture(scope="module")
def shop_dir(packages_dir: Path) -> Path:
    return write_package(generate_package(shop_catalog(), shop_spec()), packages_dir)


@pytest.fixture
def shop(shop_dir: Path) -> Iterator[ModuleType]:
    with imported(shop_dir.parent, "shop") as package:
        yield package


def _actions(module: ModuleType) -> set[str]:
    return {
        name
        for name, value in vars(module).items()
        if callable(value) and name.startswith(ACTION_PREFIXES) and not name.endswith("_async")
    }


def test_models_are_slotted_dataclasses_with_precise_optional_types(shop: ModuleType) -> None:
    product: Any = shop.Product
    color: Any = shop.Color
    assert dataclasses.is_dataclass(shop.Product) and hasattr(shop.Product, "__slots__")
    hints = typing.get_type_hints(product)
    assert hints == {
        "product_id": int | None,
        "name": str | None,
        "price": Decimal | None,
        "weight": float | None,
        "discontinued": bool | None,
        "modified_at": datetime.datetime | None,
        "release_date": datetime.date | None,
        "opens_at": datetime.time | None,
        "warranty": datetime.timedelta | None,
        "reference": UUID | None,
        "picture": bytes | None,
        "color": color | None,
        "access": shop.Permissions | None,
        "dimensions": Any | None,
        "tags": list[str] | None,
        "palette": list[color] | None,
        "to_category": shop.Category | None,
        "to_reviews": list[dict[str, Any]] | None,
    }
    record = product(name="Chair")
    assert record.price is None and record.etag is None and record.null_attributes == frozenset()


def test_labels_become_docstrings(shop: ModuleType) -> None:
    assert "Everything the shop sells." in (shop.Product.__doc__ or "")
    source = inspect.getsource(shop.models)
    assert '"""Product name (``Name``, Edm.String, at most 80 characters)."""' in source


def test_attribute_enums_name_python_attributes_and_hold_wire_names(shop: ModuleType) -> None:
    assert issubclass(shop.ProductAttribute, Enum)
    assert shop.ProductAttribute.PRODUCT_ID.value == "ProductID"
    assert shop.ProductAttribute.MODIFIED_AT.value == "ModifiedAt"
    assert [m.value for m in shop.OrderItemAttribute] == ["OrderID", "ItemNo", "Quantity"]
    # navigations are not attributes
    assert "TO_CATEGORY" not in shop.ProductAttribute.__members__


def test_enum_types_become_enums_and_flags(shop: ModuleType) -> None:
    assert [(m.name, m.value) for m in shop.Color] == [("RED", 0), ("GREEN", 1), ("BLUE", 2)]
    assert issubclass(shop.Permissions, Flag)
    assert shop.Permissions.READ | shop.Permissions.WRITE == shop.Permissions(3)


def test_actions_follow_capabilities_and_access(shop: ModuleType) -> None:
    expected = {name for names in SHOP_ACTIONS.values() for name in names}
    assert _actions(shop.driver) == expected
    assert _actions(shop.service) == expected
    for name in expected:
        twin = getattr(shop.driver, f"{name}_async")
        assert inspect.iscoroutinefunction(twin) or inspect.isasyncgenfunction(twin)


def test_keys_become_typed_parameters(shop: ModuleType) -> None:
    def parameters(function: Callable[..., object]) -> list[tuple[str, object]]:
        return [(p.name, p.annotation) for p in inspect.signature(function).parameters.values()]

    assert parameters(shop.driver.get_order_item) == [
        ("connection", "Connection | Client"),
        ("order_id", "UUID"),
        ("item_no", "int"),
    ]
    assert parameters(shop.driver.get_category)[1:] == [("code", "str")]
    assert parameters(shop.driver.update_product)[1:] == [
        ("product_id", "int"),
        ("obj", "Product"),
        ("attributes_to_send", "Sequence[ProductAttribute | str] | None"),
        ("etag", "str | None"),
    ]
    assert parameters(shop.driver.search_products)[1:] == [
        ("filters", "Sequence[BasicFilter]"),
        ("advanced_filter", "str | None"),
        ("order_by", "Sequence[OrderBy]"),
        ("advanced_order_by", "str | None"),
        ("skip", "int"),
        ("top", "int"),
    ]
    assert inspect.signature(shop.driver.search_products).parameters["top"].default == 50


def test_service_actions_take_no_connection(shop: ModuleType) -> None:
    def parameters(module: ModuleType, name: str) -> list[inspect.Parameter]:
        return list(inspect.signature(getattr(module, name)).parameters.values())

    for name in _actions(shop.driver):
        for twin in (name, f"{name}_async"):
            driver_parameters = parameters(shop.driver, twin)
            assert driver_parameters[0].name == "connection"
            assert parameters(shop.service, twin) == driver_parameters[1:], twin


def test_descriptors_describe_fields_keys_and_expansions(shop: ModuleType) -> None:
    products = shop.driver.PRODUCTS
    assert products.name == "Products" and products.model is shop.Product
    assert [f.wire for f in products.keys] == ["ProductID"]
    assert products.expand == ("to_Category", "to_Reviews")
    assert [(n.attr, n.many, n.target) for n in products.navigations] == [
        ("to_category", False, "Categories"),
        ("to_reviews", True, None),
    ]
    by_attr = {f.attr: f for f in products.fields}
    assert by_attr["color"].enum is shop.Color and by_attr["palette"].collection
    assert not by_attr["modified_at"].creatable and not by_attr["modified_at"].updatable
    assert by_attr["reference"].creatable and not by_attr["reference"].updatable
    assert [f.wire for f in shop.driver.ORDER_ITEMS.keys] == ["OrderID", "ItemNo"]
    service = shop.driver.SERVICE
    assert service.integration == "shop" and service.runtime == {"odata_version": "4.0"}
    assert list(service.objects) == ["Products", "OrderItems", "Categories", "Suppliers", "Logs", "Events"]


def test_public_surface(shop: ModuleType) -> None:
    assert shop.__version__ == "0.1.0"
    for name in ("Product", "ProductAttribute", "Color", "BasicFilter", "FilterOperator", "OrderBy",
                 "SortDirection", "Page", "Connection", "BasicAuth", "ApiKeyAuth", "BearerAuth", "errors"):
        assert name in shop.__all__, name
        assert hasattr(shop, name)
    assert issubclass(shop.errors.NotFound, shop.errors.IntegrationError)


def test_package_carries_its_spec_readme_and_typing_marker(shop_dir: Path) -> None:
    spec = IntegrationSpec.from_json((shop_dir / "integration.json").read_text())
    assert spec.module_name == "shop" and spec.source.sha256 == "0" * 64
    assert [o.name for o in spec.objects] == [o.name for o in shop_spec().objects]
    assert (shop_dir / "py.typed").exists()
    readme = (shop_dir / "README.md").read_text()
    assert "pip install shop" in readme
    assert "`search_products`" in readme and "`create_event`" in readme
    assert "ProductAttribute" in readme


def test_runtime_modules_are_copied_verbatim(shop_dir: Path) -> None:
    runtime = get_provider("sap-odata").runtime
    root = Path(__file__).resolve().parents[2] / "providers" / "runtime"
    for name in runtime.modules:
        assert (shop_dir / "_runtime" / f"{name}.py").read_bytes() == (root / f"{name}.py").read_bytes()
    assert (shop_dir / "_runtime" / "__init__.py").read_bytes() == b""


def test_selected_attributes_renames_and_keys(packages_dir: Path) -> None:
    spec = IntegrationSpec(
        provider="sap-odata",
        application_name="Slim",
        module_name="slim_shop",
        objects=[ObjectSelection("Products", attributes=["Name", "Price"], renames={"Price": "list_price"})],
    )
    directory = write_package(generate_package(shop_catalog(), spec), packages_dir)
    with imported(packages_dir, "slim_shop") as slim:
        assert [f.name for f in dataclasses.fields(slim.Product)] == ["product_id", "name", "list_price"]
        assert slim.ProductAttribute.LIST_PRICE.value == "Price"
    assert directory.is_dir()


def test_provider_runtime_support_shapes_the_package(
    packages_dir: Path, register_provider: Callable[[str, RuntimeSupport], None]
) -> None:
    sap = get_provider("sap-odata").runtime
    register_provider("no-count", RuntimeSupport(sap.module, sap.modules, ("tzdata>=2024.1",), False))
    catalog = dataclasses.replace(shop_catalog(), provider="no-count")
    package = generate_package(catalog, shop_spec("no_count_shop", provider="no-count"))
    write_package(package, packages_dir)
    with imported(packages_dir, "no_count_shop") as no_count:
        actions = _actions(no_count.driver)
        assert "search_products" in actions
        assert not [name for name in actions if name.startswith("count_")]
    with zipfile.ZipFile(io.BytesIO(build_wheel(package).data)) as wheel:
        metadata = wheel.read("no_count_shop-0.1.0.dist-info/METADATA").decode()
    assert "Requires-Dist: httpx>=0.27,<1\nRequires-Dist: tzdata>=2024.1\n" in metadata


def _linked_shop_catalog() -> Catalog:
    """The shop as a system that formats values and lets writes set two of Products' lookups."""
    catalog = shop_catalog()
    products = catalog.object("Products")
    settable = {"to_Category", "to_Supplier"}
    navigations = tuple(dataclasses.replace(n, settable=n.name in settable) for n in products.navigations)
    objects = tuple(
        dataclasses.replace(o, navigations=navigations) if o is products else o for o in catalog.objects
    )
    return dataclasses.replace(
        catalog, objects=objects, runtime={**catalog.runtime, "formatted_values": True}
    )


def test_formatted_values_and_links_come_only_from_what_the_provider_says(
    shop: ModuleType, shop_dir: Path, packages_dir: Path
) -> None:
    def parameter_names(module: ModuleType) -> set[str]:
        return {
            parameter
            for name in _actions(module.driver)
            for parameter in inspect.signature(getattr(module.driver, name)).parameters
        }

    assert not {"formatted_values", "links"} & parameter_names(shop)
    assert not [name for name in shop.__all__ if name.endswith("Links")]
    plain_readme = (shop_dir / "README.md").read_text()
    assert "## Formatted values" not in plain_readme and "## Lookups" not in plain_readme

    write_package(generate_package(_linked_shop_catalog(), shop_spec("linked_shop")), packages_dir)
    with imported(packages_dir, "linked_shop") as linked:
        driver = linked.driver
        for action in ("search_products", "iter_products", "get_product", "search_categories"):
            for twin in (action, f"{action}_async"):
                parameter = inspect.signature(getattr(driver, twin)).parameters["formatted_values"]
                assert parameter.default is False, twin
                assert "formatted_values" in inspect.signature(getattr(linked.service, twin)).parameters
        assert "formatted_values" not in inspect.signature(driver.count_products).parameters
        for action in ("create_product", "update_product", "create_product_async", "update_product_async"):
            parameter = inspect.signature(getattr(driver, action)).parameters["links"]
            assert (parameter.annotation, parameter.default) == ("ProductLinks | None", None)
        # only Products has settable lookups; read-only Categories would get none anyway
        assert [name for name in linked.__all__ if name.endswith("Links")] == ["ProductLinks"]
        assert typing.get_type_hints(linked.ProductLinks) == {
            "to_category": str | None,
            "to_supplier": UUID | None,
        }
        navigations = {n.attr: n for n in driver.PRODUCTS.navigations}
        assert (navigations["to_category"].bind_to, navigations["to_category"].bind_key_type) == (
            "Categories",
            "Edm.String",
        )
        # a lookup that is set but not expanded still gets a descriptor, and is not expanded
        assert navigations["to_supplier"].bind_to == "Suppliers"
        assert "to_Supplier" not in driver.PRODUCTS.expand
        assert navigations["to_reviews"].bind_to is None
        readme = (packages_dir / "linked_shop" / "README.md").read_text()
        assert "## Formatted values" in readme and "search_products(top=10, formatted_values=True)" in readme
        assert "create_product(..., links=links)" in readme
        assert "Lookups set through `links` (`ProductLinks`): `to_category`, `to_supplier`." in readme


def _long_names_package() -> GeneratedPackage:
    """Names at and past every length limit, to check that generated lines stay within 120 columns."""
    long = "VeryLongBusinessObjectNameThatKeepsGoingAndGoingForeverAndEver" * 2
    enum = EnumType(long, (EnumMember(long, long, long),))
    attributes = tuple(
        Attribute(f"{long}{index}", kind, long, key=index == 0, label=long * 3, enum=enum, collection=True)
        for index, kind in enumerate(ValueType)
    )
    target = ObjectDef(long + "Target", long + "Target", long, attributes)
    source = ObjectDef(long, long, long, attributes, navigations=(Navigation(long, target.name, many=True),))
    catalog = Catalog("sap-odata", long, long, (source, target), runtime={long: [long, long, long]})
    module = "m" * MAX_IDENTIFIER_LENGTH
    spec = IntegrationSpec(
        "sap-odata", long, module, [ObjectSelection(long, expand=[long]), ObjectSelection(target.name)]
    )
    return generate_package(catalog, spec)


def test_generated_packages_pass_ruff_and_mypy_strict(packages_dir: Path, shop_dir: Path) -> None:
    catalog = shop_catalog()
    variants = {
        # no write actions at all
        "read_only_shop": [ObjectSelection(o.name, access="read-only") for o in catalog.objects],
        # no read actions at all
        "events_only": [ObjectSelection("Events")],
    }
    packages = [shop_dir]
    for module, objects in variants.items():
        spec = IntegrationSpec("sap-odata", application_name=module, module_name=module, objects=objects)
        packages.append(write_package(generate_package(catalog, spec), packages_dir))
    packages.append(write_package(_long_names_package(), packages_dir))
    linked = generate_package(_linked_shop_catalog(), shop_spec("typed_links"))
    packages.append(write_package(linked, packages_dir))
    # an object the system describes without any attribute (only a navigation)
    bare = ObjectDef("Bare", "Bare", "", (), navigations=(Navigation("to_Products", "Products", many=True),))
    bare_catalog = dataclasses.replace(catalog, objects=(bare,))
    bare_selection = [ObjectSelection("Bare", expand=["to_Products"])]
    bare_spec = IntegrationSpec("sap-odata", "Bare", "bare_object", bare_selection)
    packages.append(write_package(generate_package(bare_catalog, bare_spec), packages_dir))
    assert ruff_problems(*packages) == ""
    assert mypy_problems(*packages) == ""


def _referencing_shop_catalog() -> Catalog:
    """The shop as a system that says which object some of Products' attributes point at."""
    catalog = shop_catalog()
    products = catalog.object("Products")
    references = (
        Attribute("SupplierRef", ValueType.GUID, "Edm.Guid", reference_to="Suppliers"),
        Attribute("CategoryCode", ValueType.STRING, "Edm.String", reference_to="Categories"),
        Attribute("Successor", ValueType.INTEGER, "Edm.Int32", reference_to="Products"),
        Attribute(
            "Related", ValueType.INTEGER, "Collection(Edm.Int32)", collection=True, reference_to="Products"
        ),
        Attribute("Warehouse", ValueType.STRING, "Edm.String", reference_to="class"),
    )
    changed = dataclasses.replace(products, attributes=products.attributes + references)
    return catalog.with_objects([changed])


def test_references_get_id_types_from_any_provider(packages_dir: Path) -> None:
    write_package(generate_package(_referencing_shop_catalog(), shop_spec("referencing_shop")), packages_dir)
    with imported(packages_dir, "referencing_shop") as shop:
        hints = typing.get_type_hints(shop.Product)
        assert hints["supplier_ref"] == shop.SupplierId | None
        assert shop.SupplierId.__supertype__ is UUID
        assert hints["category_code"] == shop.CategoryId | None and shop.CategoryId.__supertype__ is str
        assert hints["successor"] == shop.ProductId | None and shop.ProductId.__supertype__ is int
        assert hints["product_id"] == shop.ProductId | None  # the key of a referenced object
        assert hints["related"] == list[int] | None  # a collection of ids stays plain
        assert hints["warehouse"] == shop.ClassId | None  # a target outside the catalog, a keyword
        # keys of objects nothing points at, and composite keys, keep their plain types
        assert typing.get_type_hints(shop.OrderItem)["order_id"] == UUID | None
        assert {"SupplierId", "CategoryId", "ProductId", "ClassId"} <= set(shop.__all__)
        # decoding stays as it was: the id types are the plain values at run time
        assert shop.ProductId(7) == 7
    readme = (packages_dir / "referencing_shop" / "README.md").read_text()
    assert "## Typed ids" in readme and "`ProductId`" in readme
    assert ruff_problems(packages_dir / "referencing_shop") == ""
    assert mypy_problems(packages_dir / "referencing_shop") == ""


def test_catalogs_without_references_get_no_id_types(shop: ModuleType, shop_dir: Path) -> None:
    assert not [name for name in shop.__all__ if name.endswith("Id")]
    assert "NewType" not in (shop_dir / "models.py").read_text()
    assert "## Typed ids" not in (shop_dir / "README.md").read_text()
