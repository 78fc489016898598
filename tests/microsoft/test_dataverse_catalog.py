"""Dataverse and Dynamics 365 catalogs from $metadata, offline: the full Dynamics CRM corpus through
the provider into packages that compile and pass mypy --strict, and what the object picker shows."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from generator import generate_package
from generator.spec import IntegrationSpec, ObjectSelection
from providers.base import ConnectionValueError, MetadataError, get_provider
from providers.dataverse import environment_url
from providers.model import Catalog, ValueType
from tests.fixtures.corpora import corpus_file
from tests.fixtures.generated import discover_file, mypy_problems, write_package

CORPUS = "dataverse/dynamics-crm-v9.1.xml"
IB = Path(sys.executable).with_name("ib")
BATCHES = 3


@pytest.fixture(scope="module")
def dynamics() -> Catalog:
    return discover_file(corpus_file(CORPUS), "dynamics365")


@pytest.fixture(scope="module")
def dataverse() -> Catalog:
    return discover_file(corpus_file(CORPUS), "dataverse")


def test_every_entity_set_generates_compiles_and_passes_mypy_strict(
    dataverse: Catalog, tmp_path_factory: pytest.TempPathFactory
) -> None:
    assert len(dataverse.objects) == 269
    directory = tmp_path_factory.mktemp("dataverse_corpus")
    packages = []
    for batch in range(BATCHES):
        chosen = dataverse.objects[batch::BATCHES]
        spec = IntegrationSpec(
            provider="dataverse",
            application_name="Dynamics CRM corpus",
            module_name=f"crm_part{batch}",
            objects=[ObjectSelection(o.name, expand=[n.name for n in o.navigations][:3]) for o in chosen],
        )
        package = write_package(generate_package(dataverse, spec), directory)
        for source in sorted(package.glob("*.py")):
            compile(source.read_text(), str(source), "exec", dont_inherit=True)
        assert (package / "driver.py").read_text().count(" = ObjectDescriptor(") == len(chosen)
        packages.append(package)
    assert mypy_problems(*packages) == ""


def test_lookups_and_system_columns_are_read_only_and_lookups_stay_navigable(dataverse: Catalog) -> None:
    contacts = dataverse.object("contacts")
    lookup = contacts.attribute("_parentcustomerid_value")
    assert lookup.read_only and lookup.type is ValueType.GUID
    assert "account or contact" in lookup.label
    assert contacts.attribute("createdon").read_only and contacts.attribute("versionnumber").read_only
    key = contacts.attribute("contactid")
    assert key.key and key.creatable and not key.updatable
    assert not contacts.attribute("lastname").read_only
    navigation = next(n for n in contacts.navigations if n.name == "parentcustomerid_account")
    assert navigation.target == "accounts" and not navigation.many
    assert dataverse.object("accounts").attribute("industrycode").label == (
        "industrycode: a choice (option set) value"
    )


def test_lookups_clients_may_write_are_settable_navigations(dataverse: Catalog) -> None:
    settable = {n.name for n in dataverse.object("contacts").navigations if n.settable}
    # both halves of the customer lookup (account or contact), the owner, a plain lookup
    assert {"parentcustomerid_account", "parentcustomerid_contact", "ownerid", "transactioncurrencyid"} <= (
        settable
    )
    # Dataverse maintains who created, changed and owns a row; collections are not lookups
    assert not settable & {"createdby", "modifiedby", "owninguser", "owningbusinessunit", "owningteam"}
    assert not any(n.many for n in dataverse.object("contacts").navigations if n.settable)
    assert dataverse.runtime["formatted_values"] is True


def test_packages_offer_formatted_values_and_links_in_their_signatures(
    dataverse: Catalog, tmp_path: Path
) -> None:
    spec = IntegrationSpec(
        provider="dataverse",
        application_name="CRM",
        module_name="crm_links",
        objects=[ObjectSelection("contacts"), ObjectSelection("accounts", access="read-only")],
    )
    generated = generate_package(dataverse, spec)
    package = write_package(generated, tmp_path)
    models = (package / "models.py").read_text()
    driver = (package / "driver.py").read_text()
    assert "class ContactLinks(TypedDict, total=False):" in models
    assert "    parentcustomerid_account: UUID | None\n" in models
    assert "    createdby:" not in models.split("class ContactLinks", 1)[1]
    # read-only objects are not written, so they get no links
    assert "class AccountLinks" not in models
    assert "    links: ContactLinks | None = None,\n) -> Contact:" in driver
    assert driver.count("formatted_values: bool = False,") == 2 * 6  # search, iter, get; sync, async
    assert "Lookups set through `links` (`ContactLinks`)" in generated.readme
    assert "formatted_values=True" in generated.readme


def test_dynamics_365_lists_its_tables_first(dynamics: Catalog, dataverse: Catalog) -> None:
    first = [(o.entity_name, o.group) for o in dynamics.objects[:4]]
    assert first == [
        ("account", "Dynamics 365"),
        ("contact", "Dynamics 365"),
        ("knowledgearticle", "Dynamics 365"),
        ("appointment", "Dynamics 365"),
    ]
    assert dynamics.objects[-1].group == "Dataverse"
    assert [o.name for o in dataverse.objects] == sorted((o.name for o in dataverse.objects), key=str.lower)
    assert {o.group for o in dataverse.objects} == {"Tables"}


def test_choice_columns_with_enum_types_become_enums(tmp_path: Path) -> None:
    document = tmp_path / "choices.xml"
    document.write_text(
        """<?xml version="1.0" encoding="utf-8"?>
<edmx:Edmx xmlns:edmx="http://docs.oasis-open.org/odata/ns/edmx" Version="4.0"><edmx:DataServices>
<Schema xmlns="http://docs.oasis-open.org/odata/ns/edm" Namespace="Microsoft.Dynamics.CRM" Alias="mscrm">
<EnumType Name="account_industrycode">
<Member Name="Accounting" Value="1"/><Member Name="Retail" Value="2"/></EnumType>
<EntityType Name="account"><Key><PropertyRef Name="accountid"/></Key>
<Property Name="accountid" Type="Edm.Guid"/><Property Name="industrycode" Type="mscrm.account_industrycode"/>
</EntityType>
<EntityContainer Name="System"><EntitySet Name="accounts" EntityType="mscrm.account"/></EntityContainer>
</Schema></edmx:DataServices></edmx:Edmx>"""
    )
    column = discover_file(document, "dataverse").object("accounts").attribute("industrycode")
    assert column.type is ValueType.ENUM and column.enum is not None
    assert [(m.name, m.value) for m in column.enum.members] == [("Accounting", 1), ("Retail", 2)]


def test_a_document_that_is_not_dataverse_metadata_is_refused(tmp_path: Path) -> None:
    v2 = corpus_file("sap-v2/GWSAMPLE_BASIC.edmx")
    with pytest.raises(MetadataError, match="Dataverse speaks OData V4"):
        discover_file(v2, "dataverse")


def test_ib_generate_reads_a_saved_metadata_file(tmp_path: Path) -> None:
    result = subprocess.run(
        [
            *(str(IB), "generate", "--provider", "dynamics365", "--metadata", str(corpus_file(CORPUS))),
            *("--objects", "accounts,contacts", "--read-only", "contacts"),
            *("--app", "CRM", "--module", "crm_cli", "--out", str(tmp_path)),
        ],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    driver = (tmp_path / "crm_cli" / "driver.py").read_text()
    assert "def create_account(" in driver and "def create_contact(" not in driver
    assert "'server_paging': True" in driver or '"server_paging": True' in driver


@pytest.mark.parametrize(
    ("typed", "expected"),
    [
        ("contoso.crm.dynamics.com", "https://contoso.crm.dynamics.com"),
        ("https://contoso.crm4.dynamics.com/", "https://contoso.crm4.dynamics.com"),
        ("https://contoso.crm.dynamics.com/api/data/v9.2/", "https://contoso.crm.dynamics.com"),
    ],
)
def test_environment_urls_are_normalized(typed: str, expected: str) -> None:
    assert environment_url(typed, allow_private=False) == expected


@pytest.mark.parametrize(
    ("typed", "words"),
    [
        ("", "give the environment URL"),
        ("http://contoso.crm.dynamics.com", "start with https://"),
        ("https://contoso.crm.dynamics.com/sites/x", "without a path"),
    ],
)
def test_environment_urls_that_cannot_work_are_refused(typed: str, words: str) -> None:
    with pytest.raises(ConnectionValueError, match=words):
        environment_url(typed, allow_private=False)


def test_both_keys_are_registered_with_certificates_and_the_odata_runtime() -> None:
    for key in ("dataverse", "dynamics365"):
        provider = get_provider(key)
        assert provider.implemented and provider.needs_certificate and provider.runtime.module == "odata"
        names = [f.name for f in provider.connection_schema()]
        assert names[:3] == ["url", "tenant_id", "client_id"] and "private_key" in names
        secrets = {f.name for f in provider.connection_schema() if f.secret}
        assert secrets == {"private_key", "client_secret"}
        text = provider.admin_instructions(
            {"integration": "crm", "certificate": "crm.pem", "environment": "qa"}
        ).text
        assert "`user_impersonation`" in text and "Application users" in text and "`crm.pem`" in text
        # Slack's mrkdwn has no nested bold: the environment stays bold on its own
        assert text.startswith(f"*{provider.title} connection for crm* in *qa*\n")
