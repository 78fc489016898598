"""Small metadata documents written for the journeys (real ones come from ../shared/corpora)."""

# An OData V4 service small enough to paste (Slack's text inputs hold at most 3000 characters).
LIBRARY_V4 = """<?xml version="1.0" encoding="utf-8"?>
<edmx:Edmx Version="4.0" xmlns:edmx="http://docs.oasis-open.org/odata/ns/edmx">
  <edmx:DataServices>
    <Schema Namespace="Library" xmlns="http://docs.oasis-open.org/odata/ns/edm">
      <EntityType Name="Book">
        <Key><PropertyRef Name="ID"/></Key>
        <Property Name="ID" Type="Edm.Int32" Nullable="false"/>
        <Property Name="title" Type="Edm.String" MaxLength="200"/>
        <Property Name="pages" Type="Edm.Int32"/>
      </EntityType>
      <EntityType Name="Author">
        <Key><PropertyRef Name="ID"/></Key>
        <Property Name="ID" Type="Edm.Int32" Nullable="false"/>
        <Property Name="name" Type="Edm.String"/>
      </EntityType>
      <EntityContainer Name="LibraryService">
        <EntitySet Name="Books" EntityType="Library.Book"/>
        <EntitySet Name="Authors" EntityType="Library.Author"/>
      </EntityContainer>
    </Schema>
  </edmx:DataServices>
</edmx:Edmx>
"""
