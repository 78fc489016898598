"""OData V2 documents with vocabulary annotations: they count as in V4, together with ``sap:`` ones."""

from __future__ import annotations

import pytest

from providers.model import Capabilities, ObjectDef
from providers.sap_odata import SapODataProvider
from tests.providers.test_odata_v4_annotations import (
    NOTHING_ALLOWED_BUT_READING,
    PROPERTY_RESTRICTIONS,
    RESTRICTIONS,
)

V4_EDM = "http://docs.oasis-open.org/odata/ns/edm"


def _document(*, set_attributes: str = "", types: str = "", annotations: str = "") -> bytes:
    """A V2 document with one entity set ``Things``, shaped like SAP CAP's V2 adapter writes them.

    The vocabulary references and ``Annotations`` blocks are in the V4 namespaces, as SAP emits
    them in V2 documents; ``annotations`` is the content of the schema after the types.
    """
    return f"""<?xml version="1.0" encoding="utf-8"?>
<edmx:Edmx Version="1.0" xmlns:edmx="http://schemas.microsoft.com/ado/2007/06/edmx"
    xmlns:m="http://schemas.microsoft.com/ado/2007/08/dataservices/metadata"
    xmlns:sap="http://www.sap.com/Protocols/SAPData">
  <edmx:Reference xmlns:edmx="http://docs.oasis-open.org/odata/ns/edmx"
      Uri="https://oasis-tcs.github.io/odata-vocabularies/vocabularies/Org.OData.Capabilities.V1.xml">
    <edmx:Include Alias="Capabilities" Namespace="Org.OData.Capabilities.V1"/>
  </edmx:Reference>
  <edmx:Reference xmlns:edmx="http://docs.oasis-open.org/odata/ns/edmx"
      Uri="https://sap.github.io/odata-vocabularies/vocabularies/Common.xml">
    <edmx:Include Alias="Common" Namespace="com.sap.vocabularies.Common.v1"/>
  </edmx:Reference>
  <edmx:Reference xmlns:edmx="http://docs.oasis-open.org/odata/ns/edmx"
      Uri="https://oasis-tcs.github.io/odata-vocabularies/vocabularies/Org.OData.Core.V1.xml">
    <edmx:Include Alias="Core" Namespace="Org.OData.Core.V1"/>
  </edmx:Reference>
  <edmx:DataServices m:DataServiceVersion="2.0">
    <Schema Namespace="Shop" xmlns="http://schemas.microsoft.com/ado/2008/09/edm">
      <EntityContainer Name="EntityContainer" m:IsDefaultEntityContainer="true">
        <EntitySet Name="Things" EntityType="Shop.Thing" {set_attributes}/>
      </EntityContainer>
      <EntityType Name="Thing">
        <Key><PropertyRef Name="ID"/></Key>
        <Property Name="ID" Type="Edm.Guid" Nullable="false"/>
        <Property Name="name" Type="Edm.String" MaxLength="80"/>
        <Property Name="modifiedAt" Type="Edm.DateTimeOffset" ConcurrencyMode="Fixed"/>
        {types}
      </EntityType>
      {annotations}
    </Schema>
  </edmx:DataServices>
</edmx:Edmx>""".encode()


def _things(document: bytes) -> ObjectDef:
    catalog = SapODataProvider().parse_metadata(document)
    assert catalog.runtime == {"odata_version": "2.0"}
    return catalog.object("Things")


def _annotations(target: str, body: str, qualifier: str = "") -> str:
    qualified = f' Qualifier="{qualifier}"' if qualifier else ""
    return f'<Annotations Target="{target}"{qualified} xmlns="{V4_EDM}">{body}</Annotations>'


def _restriction(term: str, permission: str, allowed: bool) -> str:
    value = "true" if allowed else "false"
    return (
        f'<Annotation Term="Capabilities.{term}"><Record>'
        f'<PropertyValue Property="{permission}" Bool="{value}"/></Record></Annotation>'
    )


def test_without_annotations_the_sap_attributes_alone_decide() -> None:
    things = _things(_document(set_attributes='sap:deletable="false"'))
    assert things.capabilities == Capabilities(deletable=False)


@pytest.mark.parametrize(
    "target", ["Shop.EntityContainer/Things", "EntityContainer/Things"], ids=["qualified", "container"]
)
def test_entity_set_restrictions_targeted_from_an_annotations_block(target: str) -> None:
    annotations = _annotations(target, RESTRICTIONS.format(cap="Capabilities"))
    assert _things(_document(annotations=annotations)).capabilities == NOTHING_ALLOWED_BUT_READING


def test_qualified_annotations_do_not_restrict_the_data() -> None:
    annotations = _annotations(
        "Shop.EntityContainer/Things", RESTRICTIONS.format(cap="Capabilities"), qualifier="SomeUi"
    )
    assert _things(_document(annotations=annotations)).capabilities == Capabilities()


@pytest.mark.parametrize(
    ("sap_says", "annotation_says", "allowed"),
    [(True, True, True), (False, True, False), (True, False, False), (False, False, False)],
)
def test_a_write_is_allowed_only_when_both_sap_and_the_annotations_allow_it(
    sap_says: bool, annotation_says: bool, allowed: bool
) -> None:
    sap = "true" if sap_says else "false"
    set_attributes = f'sap:creatable="{sap}" sap:updatable="{sap}" sap:deletable="{sap}"'
    restrictions = "".join(
        _restriction(term, permission, annotation_says)
        for term, permission in (
            ("InsertRestrictions", "Insertable"),
            ("UpdateRestrictions", "Updatable"),
            ("DeleteRestrictions", "Deletable"),
        )
    )
    annotations = _annotations("Shop.EntityContainer/Things", restrictions)
    capabilities = _things(_document(set_attributes=set_attributes, annotations=annotations)).capabilities
    assert (capabilities.creatable, capabilities.updatable, capabilities.deletable) == (allowed,) * 3


def test_core_annotations_and_sap_attributes_make_attributes_read_only_or_immutable() -> None:
    types = """
      <Property Name="createdAt" Type="Edm.DateTimeOffset"/>
      <Property Name="serial" Type="Edm.String"/>
      <Property Name="audit" Type="Edm.String"/>
      <Property Name="total" Type="Edm.Decimal" sap:creatable="false"/>
      <Property Name="stock" Type="Edm.Int32" sap:updatable="false" sap:label="In stock"/>
    """
    annotations = "".join(
        (
            _annotations(
                "Shop.Thing/createdAt",
                '<Annotation Term="Core.Immutable" Bool="true"/>'
                '<Annotation Term="Core.Computed" Bool="true"/>'
                '<Annotation Term="Common.Label" String="Created On"/>',
            ),
            _annotations("Shop.Thing/serial", '<Annotation Term="Core.Immutable" Bool="true"/>'),
            _annotations(
                "Shop.Thing/audit",
                '<Annotation Term="Core.Permissions" EnumMember="Core.Permission/Read"/>',
            ),
            _annotations("Shop.Thing/stock", '<Annotation Term="Common.Label" String="Stock"/>'),
        )
    )
    things = _things(_document(types=types, annotations=annotations))

    def rights(name: str) -> tuple[bool, bool]:
        attribute = things.attribute(name)
        return attribute.creatable, attribute.updatable

    assert rights("createdAt") == (False, False)  # Core.Computed
    assert rights("serial") == (True, False)  # Core.Immutable
    assert rights("audit") == (False, False)  # Core.Permissions Read
    assert rights("total") == (False, True)  # sap:creatable="false"
    assert rights("stock") == (True, False)  # sap:updatable="false"
    assert rights("name") == (True, True)
    assert rights("ID") == (True, False)  # keys never change
    assert things.attribute("createdAt").label == "Created On"
    assert things.attribute("stock").label == "In stock"  # the sap:label comes first


def test_filter_sort_and_search_restrictions_combine_with_the_sap_attributes() -> None:
    types = """
      <Property Name="Notes" Type="Edm.String"/>
      <Property Name="Tags" Type="Edm.String"/>
      <Property Name="code" Type="Edm.String" sap:filterable="false" sap:sortable="false"/>
    """
    annotations = _annotations("Shop.EntityContainer/Things", PROPERTY_RESTRICTIONS)
    things = _things(_document(set_attributes='sap:searchable="true"', types=types, annotations=annotations))

    assert [a.name for a in things.attributes if not a.filterable] == ["Notes", "code"]
    assert [a.name for a in things.attributes if not a.sortable] == ["Notes", "Tags", "code"]
    assert things.runtime["requires_filter"] is True
    assert things.runtime["searchable"] is False  # sap:searchable="true", but the annotation says no


def test_optimistic_concurrency_and_concurrency_mode_both_mark_etags() -> None:
    types = '<Property Name="version" Type="Edm.Int64"/>'
    concurrency = (
        '<Annotation Term="Core.OptimisticConcurrency">'
        "<Collection><PropertyPath>version</PropertyPath></Collection></Annotation>"
    )
    annotations = _annotations("Shop.EntityContainer/Things", concurrency)
    things = _things(_document(types=types, annotations=annotations))

    assert things.runtime["etag"] is True
    assert [a.name for a in things.attributes if a.runtime.get("etag")] == ["modifiedAt", "version"]


def test_set_labels_and_descriptions_from_annotations() -> None:
    labels = (
        '<Annotation Term="Common.Label" String="All the things"/>'
        '<Annotation Term="Core.Description" String="Things we sell"/>'
    )
    things = _things(_document(annotations=_annotations("Shop.EntityContainer/Things", labels)))
    assert (things.label, things.description) == ("All the things", "Things we sell")

    labelled_by_sap = _things(
        _document(
            set_attributes='sap:label="Our things"',
            annotations=_annotations("Shop.EntityContainer/Things", labels),
        )
    )
    assert labelled_by_sap.label == "Our things"
