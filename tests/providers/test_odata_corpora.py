"""Every real metadata document in the corpora reads into the catalog a user would expect."""

from __future__ import annotations

import hashlib
from pathlib import Path

import pytest

from providers.base import get_provider
from providers.metadata_source import parse_edmx
from providers.model import Catalog, ObjectDef, ValueType
from providers.odata_v4 import catalog_from_v4
from providers.sap_odata import SapODataProvider
from tests.fixtures.corpora import corpus_file, corpus_files

# file -> (OData version, service name, number of entity sets)
EXPECTED = {
    "sap-v2/API_BUSINESS_PARTNER.edmx": ("2.0", "API_BUSINESS_PARTNER", 36),
    "sap-v2/API_TEST_SRV.edmx": ("2.0", "API_TEST_SRV", 14),
    "sap-v2/FunctionImportNameClash.edmx": ("2.0", "namespace", 1),
    "sap-v2/GWSAMPLE_BASIC.edmx": ("2.0", "GWSAMPLE_BASIC", 16),
    "sap-v2/Northwind_v2.xml": ("2.0", "ODataWeb.Northwind.Model", 26),
    "sap-v2/name-clash.edmx": ("2.0", "API_TEST_SRV", 2),
    "sap-v2/pyodata_sample.xml": ("2.0", "EXAMPLE_SRV", 14),
    "odata-v4/API_TEST_SRV.edmx": ("4.0", "API_TEST_SRV", 15),
    "odata-v4/Northwind_v4.xml": ("4.0", "ODataWebExperimental.Northwind.Model", 26),
    "odata-v4/TripPin.xml": ("4.0", "Microsoft.OData.SampleService.Models.TripPin", 4),
}

PROVIDER = SapODataProvider()


def _catalog(relative: str) -> Catalog:
    return PROVIDER.parse_metadata(corpus_file(relative).read_bytes())


def _types(obj: ObjectDef) -> dict[str, tuple[ValueType, str]]:
    return {a.name: (a.type, a.wire_type) for a in obj.attributes}


@pytest.mark.parametrize(
    "path", corpus_files("sap-v2", "odata-v4"), ids=lambda p: f"{p.parent.name}/{p.name}"
)
def test_every_corpus_file_reads_into_a_consistent_catalog(path: Path) -> None:
    data = path.read_bytes()
    version, service_name, set_count = EXPECTED[f"{path.parent.name}/{path.name}"]

    catalog = PROVIDER.parse_metadata(data)

    assert catalog.provider == "sap-odata"
    assert catalog.runtime == {"odata_version": version}
    assert catalog.service_name == service_name
    assert len(catalog.objects) == set_count
    assert catalog.object_names() == sorted(catalog.object_names())
    assert catalog.source_sha256 == hashlib.sha256(data).hexdigest()
    names = set(catalog.object_names())
    for obj in catalog.objects:
        assert obj.attributes, obj.name
        assert obj.label
        assert obj.runtime["entity_type"].endswith("." + obj.entity_name)
        assert obj.capabilities.readable_by_key == (bool(obj.keys) and obj.capabilities.queryable)
        for navigation in obj.navigations:
            assert navigation.target in names or navigation.target == "", (obj.name, navigation)


def test_the_registry_serves_the_same_provider() -> None:
    provider = get_provider("sap-odata")
    assert provider.title == "SAP OData"
    assert provider.implemented
    assert provider.runtime.module == "odata"


def test_gwsample_basic_products() -> None:
    catalog = _catalog("sap-v2/GWSAMPLE_BASIC.edmx")
    products = catalog.object("ProductSet")

    assert products.entity_name == "Product"
    assert [a.name for a in products.keys] == ["ProductID"]
    price = products.attribute("Price")
    assert (price.type, price.wire_type, price.precision, price.scale) == (
        ValueType.DECIMAL,
        "Edm.Decimal",
        16,
        3,
    )
    assert price.label == "Price"
    assert products.attribute("SupplierName").read_only  # sap:creatable="false" sap:updatable="false"
    assert not products.attribute("Name").filterable and not products.attribute("Name").sortable
    assert products.attribute("ChangedAt").runtime == {"etag": True}  # ConcurrencyMode="Fixed"
    assert products.runtime == {
        "entity_type": "GWSAMPLE_BASIC.Product",
        "etag": True,
        "searchable": False,
        "requires_filter": False,
    }
    navigations = {n.name: (n.target, n.many) for n in products.navigations}
    assert navigations == {
        "ToSalesOrderLineItems": ("SalesOrderLineItemSet", True),
        "ToSupplier": ("BusinessPartnerSet", False),
    }


def test_gwsample_basic_capabilities_follow_sap_annotations() -> None:
    catalog = _catalog("sap-v2/GWSAMPLE_BASIC.edmx")
    value_helps = [o for o in catalog.objects if o.name.startswith("VH_")]

    assert len(value_helps) == 11
    for obj in value_helps:  # sap:creatable/updatable/deletable/pageable="false"
        caps = obj.capabilities
        assert (caps.creatable, caps.updatable, caps.deletable, caps.pageable) == (False, False, False, False)
        assert caps.queryable and caps.countable
    orders = catalog.object("SalesOrderSet").capabilities  # sap:updatable="false" only
    assert (orders.creatable, orders.updatable, orders.deletable) == (True, False, True)


def test_api_business_partner() -> None:
    catalog = _catalog("sap-v2/API_BUSINESS_PARTNER.edmx")
    partner = catalog.object("A_BusinessPartner")

    assert partner.label == "Business Partner"
    assert [a.name for a in partner.keys] == ["BusinessPartner"]
    assert partner.capabilities.creatable and not partner.capabilities.deletable
    assert ("to_BusinessPartnerAddress", "A_BusinessPartnerAddress", True) in {
        (n.name, n.target, n.many) for n in partner.navigations
    }
    contact_address = catalog.object("A_BPContactToAddress").capabilities
    assert not (contact_address.creatable or contact_address.updatable or contact_address.deletable)


def test_v2_all_types_service_covers_every_edm_type() -> None:
    entity = _catalog("sap-v2/API_TEST_SRV.edmx").object("A_TestEntity")

    assert _types(entity) == {
        "KeyPropertyGuid": (ValueType.GUID, "Edm.Guid"),
        "KeyPropertyString": (ValueType.STRING, "Edm.String"),
        "StringProperty": (ValueType.STRING, "Edm.String"),
        "BooleanProperty": (ValueType.BOOLEAN, "Edm.Boolean"),
        "GuidProperty": (ValueType.GUID, "Edm.Guid"),
        "Int16Property": (ValueType.INTEGER, "Edm.Int16"),
        "Int32Property": (ValueType.INTEGER, "Edm.Int32"),
        "Int64Property": (ValueType.INTEGER, "Edm.Int64"),
        "DecimalProperty": (ValueType.DECIMAL, "Edm.Decimal"),
        "SingleProperty": (ValueType.FLOAT, "Edm.Single"),
        "DoubleProperty": (ValueType.FLOAT, "Edm.Double"),
        "FloatProperty": (ValueType.FLOAT, "Edm.Float"),
        "TimeProperty": (ValueType.TIME, "Edm.Time"),
        "DateTimeProperty": (ValueType.DATETIME, "Edm.DateTime"),
        "DateTimeOffSetProperty": (ValueType.DATETIME, "Edm.DateTimeOffset"),
        "ByteProperty": (ValueType.INTEGER, "Edm.Byte"),
        "SByteProperty": (ValueType.INTEGER, "Edm.SByte"),
        "SomethingTheSDKDoesNotSupport": (ValueType.JSON, "Edm.SomethingTheSDKDoesNotSupport"),
        "ComplexTypeProperty": (ValueType.JSON, "API_TEST_SRV.A_TestComplexType"),
    }
    decimal = entity.attribute("DecimalProperty")
    assert (decimal.precision, decimal.scale) == (5, 2)
    assert entity.attribute("DateTimeProperty").runtime == {"display_format": "Date"}
    assert entity.attribute("StringProperty").max_length == 10


def test_v4_all_types_service_covers_every_edm_type() -> None:
    catalog = _catalog("odata-v4/API_TEST_SRV.edmx")
    entity = catalog.object("A_TestEntity")
    types = _types(entity)

    assert {name: types[name] for name in types if not name.startswith(("Enum", "Complex"))} == {
        "KeyPropertyGuid": (ValueType.GUID, "Edm.Guid"),
        "KeyPropertyString": (ValueType.STRING, "Edm.String"),
        "KeyDateProperty": (ValueType.DATE, "Edm.Date"),
        "StringProperty": (ValueType.STRING, "Edm.String"),
        "BooleanProperty": (ValueType.BOOLEAN, "Edm.Boolean"),
        "GuidProperty": (ValueType.GUID, "Edm.Guid"),
        "Int16Property": (ValueType.INTEGER, "Edm.Int16"),
        "Int32Property": (ValueType.INTEGER, "Edm.Int32"),
        "Int64Property": (ValueType.INTEGER, "Edm.Int64"),
        "DecimalProperty": (ValueType.DECIMAL, "Edm.Decimal"),
        "SingleProperty": (ValueType.FLOAT, "Edm.Single"),
        "DoubleProperty": (ValueType.FLOAT, "Edm.Double"),
        "FloatProperty": (ValueType.FLOAT, "Edm.Float"),
        "TimeOfDayProperty": (ValueType.TIME, "Edm.TimeOfDay"),
        "DateTimeOffSetProperty": (ValueType.DATETIME, "Edm.DateTimeOffset"),
        "DurationProperty": (ValueType.DURATION, "Edm.Duration"),
        "ByteProperty": (ValueType.INTEGER, "Edm.Byte"),
        "SByteProperty": (ValueType.INTEGER, "Edm.SByte"),
        "GeographyPointProperty": (ValueType.JSON, "Edm.GeographyPoint"),
        "SomethingTheSDKDoesNotSupport": (ValueType.JSON, "Edm.SomethingTheSDKDoesNotSupport"),
        "CollectionProperty": (ValueType.STRING, "Edm.String"),
    }
    assert entity.attribute("CollectionProperty").collection
    assert [a.name for a in entity.keys] == ["KeyPropertyGuid", "KeyPropertyString", "KeyDateProperty"]

    complex_property = entity.attribute("ComplexTypeCollectionProperty")
    assert (complex_property.type, complex_property.collection) == (ValueType.JSON, True)
    enum = entity.attribute("EnumProperty")
    assert enum.type is ValueType.ENUM and enum.enum is not None
    assert enum.enum.name == "API_TEST_SRV.A_TestEnumType"
    assert [(m.name, m.value) for m in enum.enum.members] == [("Member1", 0), ("Member2", 1)]
    big = entity.attribute("EnumPropertyInt64").enum
    assert big is not None and big.members[0].value == 99999999999999999999
    enum_collection = entity.attribute("EnumCollectionProperty")
    assert (enum_collection.type, enum_collection.collection) == (ValueType.ENUM, True)

    assert {n.name: (n.target, n.many) for n in entity.navigations} == {
        "to_MultiLink": ("A_TestEntityMultiLink", True),
        "to_OtherMultiLink": ("A_TestEntityMultiLink", True),
        "to_SingleLink": ("A_TestEntitySingleLink", False),
    }
    derived = catalog.object("A_TestEntityMultiLink")  # BaseType="API_TEST_SRV.A_TestEntityBaseType"
    assert [a.name for a in derived.keys] == ["KeyProperty"]
    assert derived.attribute("KeyProperty").max_length == 10
    assert "StringProperty" in {a.name for a in derived.attributes}
    keyless = catalog.object("A_TestEntityWithNoKeys").capabilities
    assert (keyless.readable_by_key, keyless.updatable, keyless.deletable, keyless.creatable) == (
        False,
        False,
        False,
        True,
    )


def test_name_clash_fixtures_keep_every_name_apart() -> None:
    clash = _catalog("sap-v2/name-clash.edmx").object("A_TestEntity")
    assert {a.name for a in clash.attributes} == {"KeyPropertyGuid", "MultiLink", "toMultiLink"}
    assert [n.name for n in clash.navigations] == ["to_MultiLink"]

    business_partner = _catalog("sap-v2/FunctionImportNameClash.edmx").object("BP")
    assert business_partner.runtime["searchable"] is True


def test_northwind_v2_binary_and_associations() -> None:
    categories = _catalog("sap-v2/Northwind_v2.xml").object("Categories")
    assert _types(categories)["Picture"] == (ValueType.BINARY, "Edm.Binary")
    assert [(n.name, n.target, n.many) for n in categories.navigations] == [("Products", "Products", True)]


def test_pyodata_sample_set_level_sap_annotations() -> None:
    catalog = _catalog("sap-v2/pyodata_sample.xml")

    cars = catalog.object("Cars").capabilities  # sap:countable="false" sap:pageable="false"
    assert not cars.countable and not cars.pageable
    hidden = catalog.object("CitiesNotAddressable").capabilities  # sap:addressable="false"
    assert not hidden.queryable and not hidden.readable_by_key
    assert catalog.object("CitiesWithFilter").runtime["requires_filter"] is True
    assert catalog.object("Cities").runtime["searchable"] is True
    # EntityType="Address" without a namespace: found in the other schema of the document.
    assert catalog.object("Addresses").runtime["entity_type"] == "EXAMPLE_SRV_SETS.Address"
    country = catalog.object("EnumTests").attribute("CountryOfOrigin")
    assert country.type is ValueType.ENUM and country.enum is not None
    assert [m.name for m in country.enum.members] == ["USA", "China", "Slovakia"]


def test_trippin_core_and_capability_annotations() -> None:
    catalog = _catalog("odata-v4/TripPin.xml")
    assert catalog.title == "TripPin service is a sample service for OData V4."

    airports = catalog.object("Airports")  # InsertRestrictions/DeleteRestrictions false
    assert (airports.capabilities.creatable, airports.capabilities.deletable) == (False, False)
    assert airports.attribute("IcaoCode").read_only  # Core.Permissions Read
    iata = airports.attribute("IataCode")  # Core.Immutable
    assert iata.creatable and not iata.updatable

    people = catalog.object("People")  # Core.OptimisticConcurrency on the set
    assert people.runtime["etag"] is True
    concurrency = people.attribute("Concurrency")  # Core.Computed
    assert concurrency.read_only and concurrency.runtime == {"etag": True}
    assert {n.name: n.target for n in people.navigations} == {
        "Friends": "People",
        "Trips": "",
        "Photo": "Photos",
    }
    emails = people.attribute("Emails")
    assert (emails.type, emails.collection) == (ValueType.STRING, True)
    gender = people.attribute("Gender")
    assert gender.type is ValueType.ENUM


def test_northwind_v4_navigation_bindings() -> None:
    products = _catalog("odata-v4/Northwind_v4.xml").object("Products")
    assert ("Category", "Categories", False) in {(n.name, n.target, n.many) for n in products.navigations}


def test_the_dataverse_csdl_reads_with_the_generic_v4_reader() -> None:
    document = parse_edmx(corpus_file("dataverse/dynamics-crm-v9.1.xml").read_bytes())
    catalog = catalog_from_v4(document, provider="dataverse")

    assert document.odata_version() == "4.0"
    assert (catalog.provider, catalog.service_name, len(catalog.objects)) == (
        "dataverse",
        "Microsoft.Dynamics.CRM",
        269,
    )
    accounts = catalog.object("accounts")
    assert accounts.runtime["entity_type"] == "Microsoft.Dynamics.CRM.account"  # Type="mscrm.account"
    assert [a.name for a in accounts.keys] == ["accountid"]
    assert accounts.attribute("createdon").type is ValueType.DATETIME
    assert ("ownerid", "owners", False) in {(n.name, n.target, n.many) for n in accounts.navigations}
