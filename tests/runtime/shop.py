"""Hand-written models and descriptors mirroring the CAP peer's CatalogService (tests/peers/srv).

They stand in for what the generator emits, so the runtime is tested without the generator.
The V2 and V4 services differ only where the wire does: CAP's ``Date`` is Edm.DateTime with
display-format Date in V2 and Edm.Date in V4.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime
from decimal import Decimal
from enum import Enum
from typing import Any
from uuid import UUID

from providers.runtime.records import (
    FieldDescriptor,
    NavigationDescriptor,
    ObjectDescriptor,
    Record,
    ServiceDescriptor,
)


@dataclass(slots=True)
class Category(Record):
    id: int | None = None
    name: str | None = None
    description: str | None = None
    products: list[Any] | None = None


class CategoryAttribute(Enum):
    ID = "ID"
    NAME = "name"
    DESCRIPTION = "description"


@dataclass(slots=True)
class Supplier(Record):
    id: UUID | None = None
    name: str | None = None
    country: str | None = None
    rating: float | None = None


class SupplierAttribute(Enum):
    ID = "ID"
    NAME = "name"
    COUNTRY = "country"
    RATING = "rating"


@dataclass(slots=True)
class Product(Record):
    id: int | None = None
    name: str | None = None
    description: str | None = None
    price: Decimal | None = None
    currency: str | None = None
    stock: int | None = None
    release_date: date | None = None
    available_from: datetime | None = None
    discontinued: bool | None = None
    category_id: int | None = None
    supplier_id: UUID | None = None
    created_at: datetime | None = None
    modified_at: datetime | None = None
    modified_by: str | None = None
    category: Any = None
    supplier: Any = None


class ProductAttribute(Enum):
    ID = "ID"
    NAME = "name"
    DESCRIPTION = "description"
    PRICE = "price"
    CURRENCY = "currency"
    STOCK = "stock"
    RELEASE_DATE = "releaseDate"
    AVAILABLE_FROM = "availableFrom"
    DISCONTINUED = "discontinued"
    CATEGORY_ID = "category_ID"
    SUPPLIER_ID = "supplier_ID"
    MODIFIED_AT = "modifiedAt"


@dataclass(slots=True)
class Order(Record):
    id: UUID | None = None
    product_id: int | None = None
    quantity: int | None = None
    note: str | None = None
    modified_at: datetime | None = None


class OrderAttribute(Enum):
    ID = "ID"
    PRODUCT_ID = "product_ID"
    QUANTITY = "quantity"
    NOTE = "note"


def _read_only(attr: str, wire: str, wire_type: str, value_type: str, key: bool = False) -> FieldDescriptor:
    return FieldDescriptor(attr, wire, wire_type, value_type, key=key, creatable=False, updatable=False)


def shop_service(odata_version: str, *, expand: bool = False) -> ServiceDescriptor:
    """CatalogService as the generator would describe it for ``odata_version`` ("2.0" / "4.0").

    ``expand`` selects the navigations (Products' category and supplier, Categories' products).
    """
    v2 = odata_version.startswith("2")
    release_date_type = "Edm.DateTime" if v2 else "Edm.Date"
    categories = ObjectDescriptor(
        name="Categories",
        entity_name="Categories",
        model=Category,
        fields=(
            FieldDescriptor("id", "ID", "Edm.Int32", "integer", key=True, updatable=False),
            FieldDescriptor("name", "name", "Edm.String", "string"),
            FieldDescriptor("description", "description", "Edm.String", "string"),
        ),
        navigations=(NavigationDescriptor("products", "products", many=True, target="Products"),),
        expand=("products",) if expand else (),
    )
    suppliers = ObjectDescriptor(
        name="Suppliers",
        entity_name="Suppliers",
        model=Supplier,
        fields=(
            _read_only("id", "ID", "Edm.Guid", "guid", key=True),
            _read_only("name", "name", "Edm.String", "string"),
            _read_only("country", "country", "Edm.String", "string"),
            _read_only("rating", "rating", "Edm.Double", "float"),
        ),
    )
    products = ObjectDescriptor(
        name="Products",
        entity_name="Products",
        model=Product,
        fields=(
            FieldDescriptor("id", "ID", "Edm.Int32", "integer", key=True, updatable=False),
            FieldDescriptor("name", "name", "Edm.String", "string"),
            FieldDescriptor("description", "description", "Edm.String", "string"),
            FieldDescriptor("price", "price", "Edm.Decimal", "decimal"),
            FieldDescriptor("currency", "currency", "Edm.String", "string"),
            FieldDescriptor("stock", "stock", "Edm.Int32", "integer"),
            FieldDescriptor("release_date", "releaseDate", release_date_type, "date"),
            FieldDescriptor("available_from", "availableFrom", "Edm.DateTimeOffset", "datetime"),
            FieldDescriptor("discontinued", "discontinued", "Edm.Boolean", "boolean"),
            FieldDescriptor("category_id", "category_ID", "Edm.Int32", "integer"),
            FieldDescriptor("supplier_id", "supplier_ID", "Edm.Guid", "guid"),
            _read_only("created_at", "createdAt", "Edm.DateTimeOffset", "datetime"),
            _read_only("modified_at", "modifiedAt", "Edm.DateTimeOffset", "datetime"),
            _read_only("modified_by", "modifiedBy", "Edm.String", "string"),
        ),
        navigations=(
            # a lookup writes may set (V4's @odata.bind)
            NavigationDescriptor(
                "category",
                "category",
                many=False,
                target="Categories",
                bind_to="Categories",
                bind_key_type="Edm.Int32",
            ),
            NavigationDescriptor("supplier", "supplier", many=False),
        ),
        expand=("category", "supplier") if expand else (),
    )
    orders = ObjectDescriptor(
        name="Orders",
        entity_name="Orders",
        model=Order,
        fields=(
            FieldDescriptor("id", "ID", "Edm.Guid", "guid", key=True, updatable=False),
            FieldDescriptor("product_id", "product_ID", "Edm.Int32", "integer"),
            FieldDescriptor("quantity", "quantity", "Edm.Int32", "integer"),
            FieldDescriptor("note", "note", "Edm.String", "string"),
            _read_only("modified_at", "modifiedAt", "Edm.DateTimeOffset", "datetime"),
        ),
    )
    objects = {o.name: o for o in (categories, suppliers, products, orders)}
    return ServiceDescriptor("shop", "1.0.0", {"odata_version": odata_version}, objects)
