"""The live SAP CAP service's V2 and V4 metadata give the same catalog facts.

CAP says what a user may do only through vocabulary annotations (no ``sap:`` attributes), in V2
documents as in V4 ones: the read-only Suppliers, the computed managed fields, the ETag.
"""

from __future__ import annotations

import pytest

from providers.base import MetadataSource
from providers.model import Catalog
from providers.sap_odata import SapODataProvider
from tests.peers.cap import CapServer

MANAGED = {
    "createdAt": "Created On",
    "createdBy": "Created By",
    "modifiedAt": "Changed On",
    "modifiedBy": "Changed By",
}


async def _discover(cap_server: CapServer, version: str) -> Catalog:
    root = cap_server.v2_url if version == "2.0" else cap_server.v4_url
    source = MetadataSource(
        kind="url", location=root + "$metadata", user="alice", password=cap_server.users["alice"]
    )
    return await SapODataProvider(allow_private=True).discover(source)


@pytest.mark.parametrize("version", ["2.0", "4.0"])
async def test_what_users_may_do_with_the_cap_service(cap_server: CapServer, version: str) -> None:
    catalog = await _discover(cap_server, version)
    assert catalog.runtime == {"odata_version": version}

    suppliers = catalog.object("Suppliers").capabilities  # @readonly
    assert (suppliers.creatable, suppliers.updatable, suppliers.deletable) == (False, False, False)
    assert suppliers.queryable and suppliers.readable_by_key and suppliers.countable

    for name in ("Products", "Orders"):  # managed, with an ETag on modifiedAt
        obj = catalog.object(name)
        capabilities = obj.capabilities
        assert (capabilities.creatable, capabilities.updatable, capabilities.deletable) == (True, True, True)
        managed = {a.name: (a.creatable, a.updatable, a.label) for a in obj.attributes if a.name in MANAGED}
        assert managed == {field: (False, False, label) for field, label in MANAGED.items()}
        assert obj.runtime["etag"] is True
    price = catalog.object("Products").attribute("price")
    assert (price.creatable, price.updatable) == (True, True)


async def test_the_v2_metadata_names_the_etag_attribute(cap_server: CapServer) -> None:
    products = (await _discover(cap_server, "2.0")).object("Products")
    # ConcurrencyMode="Fixed"; CAP's V4 document has an empty Core.OptimisticConcurrency instead.
    assert [a.name for a in products.attributes if a.runtime.get("etag")] == ["modifiedAt"]


async def test_both_versions_agree_on_capabilities_and_attribute_rights(cap_server: CapServer) -> None:
    v2, v4 = await _discover(cap_server, "2.0"), await _discover(cap_server, "4.0")

    assert v2.object_names() == v4.object_names() == ["Categories", "Orders", "Products", "Suppliers"]
    for v2_object in v2.objects:
        v4_object = v4.object(v2_object.name)
        assert v2_object.capabilities == v4_object.capabilities, v2_object.name
        assert [(a.name, a.creatable, a.updatable, a.label) for a in v2_object.attributes] == [
            (a.name, a.creatable, a.updatable, a.label) for a in v4_object.attributes
        ], v2_object.name
