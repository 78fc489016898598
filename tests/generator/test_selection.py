"""A spec that does not fit the catalog fails with one line that names what is wrong."""

from __future__ import annotations

import pytest

from generator import GenerationError, generate_package, select
from generator.spec import IntegrationSpec, ObjectSelection
from tests.fixtures.generated import shop_catalog


def _spec(*objects: ObjectSelection, module: str = "shop", version: str = "0.1.0") -> IntegrationSpec:
    return IntegrationSpec("sap-odata", "Shop", module, list(objects), version=version)


def _products(
    attributes: list[str] | None = None,
    renames: dict[str, str] | None = None,
    expand: list[str] | None = None,
) -> ObjectSelection:
    return ObjectSelection("Products", attributes=attributes, renames=renames or {}, expand=expand or [])


@pytest.mark.parametrize(
    ("spec", "message"),
    [
        (_spec(ObjectSelection("Orders")), "object 'Orders' does not exist in SHOP_SRV"),
        (_spec(_products(), _products()), "object 'Products' is selected twice"),
        (_spec(), "select at least one object"),
        (_spec(_products(["Nope"])), "object 'Products' has no attribute 'Nope'"),
        (_spec(_products(expand=["to_Nowhere"])), "has no navigation 'to_Nowhere' to expand"),
        (
            _spec(_products(["Name"], {"Price": "cost"})),
            "cannot rename 'Price', it is not a selected attribute",
        ),
        (_spec(_products(renames={"Price": "class"})), "'class' is reserved (try 'class_')"),
        (_spec(_products(renames={"Price": "etag"})), "'etag' is reserved"),
        (_spec(_products(renames={"Price": "List Price"})), "is not a Python identifier"),
        (_spec(_products(renames={"Price": "ListPrice"})), "is not snake_case"),
        (
            _spec(_products(renames={"Price": "cost", "Weight": "cost"})),
            "'Price' and 'Weight' are renamed to 'cost'",
        ),
        (_spec(_products(), module="json"), "module name 'json' would shadow"),
        (_spec(_products(), module="Shop"), "module name 'Shop' is not valid"),
        (_spec(_products(), version="1.0-beta"), "version '1.0-beta' is not a release version"),
    ],
)
def test_bad_specs_fail_with_one_line(spec: IntegrationSpec, message: str) -> None:
    with pytest.raises(GenerationError) as error:
        generate_package(shop_catalog(), spec)
    assert message in str(error.value)
    assert "\n" not in str(error.value)


def test_spec_for_another_provider_is_refused() -> None:
    spec = _spec(ObjectSelection("Products"))
    spec.provider = "salesforce"
    with pytest.raises(GenerationError, match="the spec is for provider 'salesforce'"):
        select(shop_catalog(), spec)


def test_selection_keeps_keys_and_catalog_order() -> None:
    selection = select(
        shop_catalog(),
        _spec(ObjectSelection("Categories"), ObjectSelection("Products", attributes=["Price", "Name"])),
    )
    assert [o.definition.name for o in selection.objects] == ["Products", "Categories"]
    assert [a.name for a in selection.objects[0].attributes] == ["ProductID", "Name", "Price"]


def test_read_only_access_removes_writes() -> None:
    (products,) = select(shop_catalog(), _spec(ObjectSelection("Products", access="read-only"))).objects
    actions = products.actions
    assert (actions.search, actions.count, actions.get) == (True, True, True)
    assert (actions.create, actions.update, actions.delete) == (False, False, False)
