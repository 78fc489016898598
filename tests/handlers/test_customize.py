"""The attribute choice and renames field: what users write, and the line a mistake is on."""

from __future__ import annotations

import pytest

from handlers.customize import CustomizeError, parse_customizations
from providers.model import Attribute, ObjectDef, ValueType

PRODUCTS = ObjectDef(
    name="ProductSet",
    entity_name="Product",
    label="Products",
    attributes=(
        Attribute("ProductID", ValueType.STRING, "Edm.String", key=True),
        Attribute("Name", ValueType.STRING, "Edm.String"),
        Attribute("Price", ValueType.DECIMAL, "Edm.Decimal"),
        Attribute("CurrencyCode", ValueType.STRING, "Edm.String"),
    ),
)
ORDERS = ObjectDef(
    name="OrderSet",
    entity_name="Order",
    label="Orders",
    attributes=(Attribute("OrderID", ValueType.STRING, "Edm.String", key=True),),
)
CATALOG = {o.name: o for o in (PRODUCTS, ORDERS)}


def parse(
    text: str, chosen: tuple[str, ...] = ("ProductSet",)
) -> dict[str, tuple[list[str] | None, dict[str, str]]]:
    return {
        name: (c.attributes, c.renames) for name, c in parse_customizations(text, chosen, CATALOG.get).items()
    }


def test_choices_and_renames_in_any_order_with_comments_and_blank_lines() -> None:
    text = "# keep it small\n\nProductSet.Price = unit_price\nProductSet: Name,Price  CurrencyCode\n"
    assert parse(text) == {"ProductSet": (["Name", "Price", "CurrencyCode"], {"Price": "unit_price"})}
    assert parse("") == {}


def test_a_key_may_be_renamed_without_being_listed() -> None:
    assert parse("ProductSet: Name\nProductSet.ProductID = product_id") == {
        "ProductSet": (["Name"], {"ProductID": "product_id"})
    }


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("ProductSet: Nme", "line 1: ProductSet has no attribute 'Nme'"),
        ("\nGhostSet: Name", "line 2: there is no object 'GhostSet' in the metadata"),
        ("OrderSet: OrderID", "line 1: OrderSet is not one of the chosen objects; choose it above first"),
        ("ProductSet:", "line 1: name at least one attribute of ProductSet after the colon"),
        (
            "ProductSet: Name\nProductSet: Price",
            "line 2: the attributes of ProductSet are already chosen on line 1",
        ),
        ("ProductSet Name", "line 1: write Object: attribute, attribute or Object.attribute = new_name"),
        ("Price = cost", "line 1: write a rename as Object.attribute = new_name"),
        (
            "ProductSet.Price = Unit Price",
            "line 1: ProductSet.Price cannot be renamed: 'Unit Price' is not a Python identifier",
        ),
        ("ProductSet.Price = class", "line 1: ProductSet.Price cannot be renamed: 'class' is reserved"),
        ("ProductSet.Price = etag", "line 1: ProductSet.Price cannot be renamed: 'etag' is reserved"),
        (
            "ProductSet.Price = a\nProductSet.Price = b",
            "line 2: ProductSet.Price is already renamed on line 1",
        ),
        (
            "ProductSet.Price = cost\nProductSet.Name = cost",
            "line 2: ProductSet.Price is already renamed to 'cost'",
        ),
        (
            "ProductSet: Name\nProductSet.Price = cost",
            "line 2: ProductSet.Price is renamed but not among the attributes chosen on line 1",
        ),
    ],
)
def test_each_mistake_names_its_line(text: str, message: str) -> None:
    with pytest.raises(CustomizeError) as caught:
        parse(text)
    assert str(caught.value).startswith(message)
