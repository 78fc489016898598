"""OData V4 vocabulary annotations decide what a user may do with an object and its attributes."""

from __future__ import annotations

import pytest

from providers.model import Capabilities, Catalog, ValueType
from providers.sap_odata import SapODataProvider

ALL_ALLOWED = Capabilities()


def _document(*, types: str = "", set_body: str = "", outside: str = "") -> bytes:
    """A V4 document with one entity set ``Things``; ``outside`` goes beside the container."""
    return f"""<?xml version="1.0" encoding="utf-8"?>
<edmx:Edmx Version="4.0" xmlns:edmx="http://docs.oasis-open.org/odata/ns/edmx">
  <edmx:Reference Uri="https://oasis-tcs.github.io/odata-vocabularies/vocabularies/Org.OData.Capabilities.V1.xml">
    <edmx:Include Namespace="Org.OData.Capabilities.V1" Alias="Capabilities"/>
  </edmx:Reference>
  <edmx:Reference Uri="https://oasis-tcs.github.io/odata-vocabularies/vocabularies/Org.OData.Core.V1.xml">
    <edmx:Include Namespace="Org.OData.Core.V1" Alias="Core"/>
  </edmx:Reference>
  <edmx:DataServices>
    <Schema Namespace="com.example.svc" Alias="Svc" xmlns="http://docs.oasis-open.org/odata/ns/edm">
      <EntityType Name="Base" Abstract="true">
        <Key><PropertyRef Name="ID"/></Key>
        <Property Name="ID" Type="Edm.Guid" Nullable="false"/>
        <Property Name="ModifiedAt" Type="Edm.DateTimeOffset"/>
        <NavigationProperty Name="Owner" Type="Svc.Thing"/>
      </EntityType>
      <EntityType Name="Thing" BaseType="Svc.Base">
        <Property Name="Name" Type="Edm.String" MaxLength="40" Nullable="false"/>
        <Property Name="Amount" Type="Edm.Decimal" Precision="15" Scale="variable"/>
        <Property Name="Notes" Type="Edm.String" MaxLength="max"/>
        <Property Name="Tags" Type="Collection(Edm.Int32)"/>
        <Property Name="Picture" Type="Edm.Stream"/>
        <Property Name="Where" Type="Edm.GeographyPoint"/>
        <Property Name="Code" Type="Svc.Code"/>
        <Property Name="Colors" Type="Svc.Colors"/>
        <NavigationProperty Name="Children" Type="Collection(Svc.Thing)"/>
        {types}
      </EntityType>
      <TypeDefinition Name="Code" UnderlyingType="Edm.String" MaxLength="4"/>
      <EnumType Name="Colors" IsFlags="true">
        <Member Name="Red" Value="1"/>
        <Member Name="Green" Value="2"/>
        <Member Name="Blue" Value="4"/>
      </EnumType>
      <EntityContainer Name="Container">
        <EntitySet Name="Things" EntityType="Svc.Thing">
          <NavigationPropertyBinding Path="Children" Target="Things"/>
          <NavigationPropertyBinding Path="com.example.svc.Base/Owner" Target="Things"/>
          {set_body}
        </EntitySet>
      </EntityContainer>
      {outside}
    </Schema>
  </edmx:DataServices>
</edmx:Edmx>""".encode()


def _read(document: bytes) -> Catalog:
    return SapODataProvider().parse_metadata(document)


RESTRICTIONS = """
  <Annotation Term="{cap}.InsertRestrictions">
    <Record><PropertyValue Property="Insertable" Bool="false"/></Record>
  </Annotation>
  <Annotation Term="{cap}.UpdateRestrictions">
    <Record><PropertyValue Property="Updatable" Bool="false"/></Record>
  </Annotation>
  <Annotation Term="{cap}.DeleteRestrictions">
    <Record><PropertyValue Property="Deletable"><Bool>false</Bool></PropertyValue></Record>
  </Annotation>
  <Annotation Term="{cap}.CountRestrictions">
    <Record><PropertyValue Property="Countable" Bool="false"/></Record>
  </Annotation>
  <Annotation Term="{cap}.TopSupported" Bool="false"/>
  <Annotation Term="{cap}.FilterRestrictions">
    <Record><PropertyValue Property="Filterable" Bool="false"/></Record>
  </Annotation>
  <Annotation Term="{cap}.SortRestrictions">
    <Record><PropertyValue Property="Sortable" Bool="false"/></Record>
  </Annotation>
"""
NOTHING_ALLOWED_BUT_READING = Capabilities(
    countable=False,
    creatable=False,
    updatable=False,
    deletable=False,
    pageable=False,
    filterable=False,
    sortable=False,
)


def test_without_annotations_everything_is_allowed() -> None:
    things = _read(_document()).object("Things")
    assert things.capabilities == ALL_ALLOWED
    assert things.runtime == {
        "entity_type": "com.example.svc.Thing",
        "etag": False,
        "searchable": True,
        "requires_filter": False,
    }


@pytest.mark.parametrize("cap", ["Org.OData.Capabilities.V1", "Capabilities"])
def test_inline_capability_restrictions(cap: str) -> None:
    things = _read(_document(set_body=RESTRICTIONS.format(cap=cap))).object("Things")
    assert things.capabilities == NOTHING_ALLOWED_BUT_READING


@pytest.mark.parametrize(
    "target", ["com.example.svc.Container/Things", "Svc.Container/Things", "Container/Things"]
)
def test_capability_restrictions_targeted_from_an_annotations_element(target: str) -> None:
    outside = f'<Annotations Target="{target}">{RESTRICTIONS.format(cap="Capabilities")}</Annotations>'
    things = _read(_document(outside=outside)).object("Things")
    assert things.capabilities == NOTHING_ALLOWED_BUT_READING


def test_qualified_annotations_do_not_restrict_the_data() -> None:
    outside = (
        '<Annotations Target="Svc.Container/Things" Qualifier="SomeUi">'
        f"{RESTRICTIONS.format(cap='Capabilities')}</Annotations>"
    )
    assert _read(_document(outside=outside)).object("Things").capabilities == ALL_ALLOWED


def test_readable_false_hides_the_set_from_queries() -> None:
    body = (
        '<Annotation Term="Capabilities.ReadRestrictions">'
        '<Record><PropertyValue Property="Readable" Bool="false"/></Record></Annotation>'
    )
    capabilities = _read(_document(set_body=body)).object("Things").capabilities
    assert not capabilities.queryable and not capabilities.readable_by_key


# Notes may be neither filtered nor sorted, Tags not sorted; a filter is required, search is not offered.
PROPERTY_RESTRICTIONS = """
  <Annotation Term="Capabilities.FilterRestrictions"><Record>
    <PropertyValue Property="RequiresFilter" Bool="true"/>
    <PropertyValue Property="NonFilterableProperties">
      <Collection><PropertyPath>Notes</PropertyPath></Collection>
    </PropertyValue>
  </Record></Annotation>
  <Annotation Term="Capabilities.SortRestrictions"><Record>
    <PropertyValue Property="NonSortableProperties">
      <Collection><PropertyPath>Notes</PropertyPath><PropertyPath>Tags</PropertyPath></Collection>
    </PropertyValue>
  </Record></Annotation>
  <Annotation Term="Capabilities.SearchRestrictions">
    <Record><PropertyValue Property="Searchable" Bool="false"/></Record>
  </Annotation>
"""


def test_non_filterable_and_non_sortable_properties() -> None:
    things = _read(_document(set_body=PROPERTY_RESTRICTIONS)).object("Things")
    assert things.capabilities.filterable and things.capabilities.sortable
    assert [a.name for a in things.attributes if not a.filterable] == ["Notes"]
    assert [a.name for a in things.attributes if not a.sortable] == ["Notes", "Tags"]
    assert things.runtime["requires_filter"] is True
    assert things.runtime["searchable"] is False


def test_core_annotations_make_attributes_read_only_or_immutable() -> None:
    types = """
      <Property Name="Total" Type="Edm.Decimal"><Annotation Term="Core.Computed"/></Property>
      <Property Name="Serial" Type="Edm.String"><Annotation Term="Core.Immutable" Bool="true"/></Property>
      <Property Name="Audit" Type="Edm.String">
        <Annotation Term="Core.Permissions" EnumMember="Core.Permission/Read"/>
      </Property>
      <Property Name="Free" Type="Edm.String">
        <Annotation Term="Org.OData.Core.V1.Permissions">
          <EnumMember>Org.OData.Core.V1.Permission/ReadWrite</EnumMember>
        </Annotation>
      </Property>
      <Property Name="Later" Type="Edm.String"/>
    """
    outside = (
        '<Annotations Target="Svc.Thing/Later"><Annotation Term="Core.Computed" Bool="true"/></Annotations>'
    )
    things = _read(_document(types=types, outside=outside)).object("Things")

    def rights(name: str) -> tuple[bool, bool]:
        attribute = things.attribute(name)
        return attribute.creatable, attribute.updatable

    assert rights("Total") == (False, False)
    assert rights("Serial") == (True, False)
    assert rights("Audit") == (False, False)
    assert rights("Free") == (True, True)
    assert rights("Later") == (False, False)
    assert rights("ID") == (True, False)  # keys never change


def test_optimistic_concurrency_marks_the_etag() -> None:
    body = (
        '<Annotation Term="Core.OptimisticConcurrency">'
        "<Collection><PropertyPath>ModifiedAt</PropertyPath></Collection></Annotation>"
    )
    things = _read(_document(set_body=body)).object("Things")
    assert things.runtime["etag"] is True
    assert [a.name for a in things.attributes if a.runtime.get("etag")] == ["ModifiedAt"]


def test_inheritance_types_facets_and_navigations() -> None:
    things = _read(_document()).object("Things")

    assert [a.name for a in things.attributes][:2] == ["ID", "ModifiedAt"]  # from the base type first
    assert [a.name for a in things.keys] == ["ID"]
    assert not things.attribute("ID").nullable and not things.attribute("Name").nullable
    assert things.attribute("Name").max_length == 40
    assert things.attribute("Notes").max_length is None  # MaxLength="max"
    amount = things.attribute("Amount")
    assert (amount.precision, amount.scale) == (15, None)  # Scale="variable"
    tags = things.attribute("Tags")
    assert (tags.type, tags.wire_type, tags.collection) == (ValueType.INTEGER, "Edm.Int32", True)
    assert things.attribute("Picture").type is ValueType.JSON  # Edm.Stream
    assert things.attribute("Where").type is ValueType.JSON
    code = things.attribute("Code")  # TypeDefinition
    assert (code.type, code.wire_type) == (ValueType.STRING, "Edm.String")
    colors = things.attribute("Colors").enum
    assert colors is not None and colors.flags
    assert [(m.name, m.value) for m in colors.members] == [("Red", 1), ("Green", 2), ("Blue", 4)]
    assert {n.name: (n.target, n.many) for n in things.navigations} == {
        "Owner": ("Things", False),
        "Children": ("Things", True),
    }


def test_labels_and_descriptions_from_annotations() -> None:
    body = (
        '<Annotation Term="com.sap.vocabularies.Common.v1.Label" String="All the things"/>'
        '<Annotation Term="Core.Description"><String>Things we sell</String></Annotation>'
    )
    types = (
        '<Property Name="Labelled" Type="Edm.String">'
        '<Annotation Term="com.sap.vocabularies.Common.v1.Label" String="Nicely labelled"/></Property>'
    )
    things = _read(_document(types=types, set_body=body)).object("Things")
    assert (things.label, things.description) == ("All the things", "Things we sell")
    assert things.attribute("Labelled").label == "Nicely labelled"
