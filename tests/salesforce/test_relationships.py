"""Lookups as relationships: a package that expands ``Contact.Account`` reads the related Account
with the Contact (SOQL ``Account.Name``), typed as the package's Account when it holds that object
and as a dict of its Id otherwise; an empty or deleted lookup reads as None."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest

from generator import generate_package
from generator.spec import IntegrationSpec, ObjectSelection
from providers import base
from providers.model import Catalog, Navigation
from tests.fixtures.generated import imported, mypy_problems, ruff_problems, write_package
from tests.fixtures.salesforce import (
    INTEGRATION_USER,
    account_describe,
    file_source,
    sf_field,
    sobject_describe,
    user_describe,
)
from tests.peers.salesforce_fake import SalesforceFake

pytestmark = pytest.mark.peers


def contact_describe() -> dict[str, Any]:
    return sobject_describe(
        "Contact",
        [
            sf_field("Id", "id", length=18, createable=False, updateable=False, nillable=False),
            sf_field("LastName", "string", nillable=False),
            sf_field(
                "AccountId", "reference", length=18, referenceTo=["Account"], relationshipName="Account"
            ),
            sf_field(
                "ReportsToId", "reference", length=18, referenceTo=["Contact"], relationshipName="ReportsTo"
            ),
            # polymorphic: no single type to read it as
            sf_field(
                "WhatId", "reference", length=18, referenceTo=["Account", "User"], relationshipName="What"
            ),
        ],
        keyPrefix="003",
        custom=False,
    )


DESCRIBES = [account_describe(), contact_describe(), user_describe()]


def catalog() -> Catalog:
    return asyncio.run(base.get_provider("salesforce").discover(file_source(DESCRIBES)))


def package(directory: Path, module: str, objects: list[ObjectSelection]) -> Path:
    spec = IntegrationSpec(
        provider="salesforce", application_name=module, module_name=module, objects=objects
    )
    return write_package(generate_package(catalog(), spec), directory)


@pytest.fixture(scope="module")
def org() -> Iterator[SalesforceFake]:
    with SalesforceFake(DESCRIBES) as fake:
        yield fake


@pytest.fixture(scope="module")
def packages(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    directory = tmp_path_factory.mktemp("sf_relations")
    both = package(
        directory,
        "sf_contacts",
        [ObjectSelection("Contact", expand=["Account", "ReportsTo"]), ObjectSelection("Account")],
    )
    alone = package(directory, "sf_contacts_only", [ObjectSelection("Contact", expand=["Account"])])
    return both, alone


def connection(sf: ModuleType, org: SalesforceFake) -> Any:
    return sf.Connection(
        f"{org.base_url}/services/data/v62.0/",
        auth=sf.BearerAuth(org.issue_token(INTEGRATION_USER)),
        verify=str(org.ca_path),
    )


def test_lookups_with_one_target_become_navigations() -> None:
    contact = catalog().object("Contact")
    assert contact.navigations == (
        Navigation("Account", "Account", many=False, label="AccountId"),
        Navigation("ReportsTo", "Contact", many=False, label="ReportsToId"),
    )
    # the ids stay attributes: create and update set them
    assert contact.attribute("AccountId").creatable
    assert "Id of Account" in contact.attribute("AccountId").label


def test_the_generated_packages_pass_ruff_and_mypy_strict(packages: tuple[Path, Path]) -> None:
    assert ruff_problems(*packages) == ""
    assert mypy_problems(*packages) == ""


@pytest.mark.parametrize("flavor", ["sync", "async"])
def test_a_contact_is_read_with_its_account(
    flavor: str, packages: tuple[Path, Path], org: SalesforceFake
) -> None:
    org.clear("Contact")
    acme = org.insert("Account", {"Name": "Acme O'Brien"})
    with imported(packages[0].parent, "sf_contacts") as sf:
        conn = connection(sf, org)

        def run(action: str, *args: Any, **kwargs: Any) -> Any:
            if flavor == "sync":
                return getattr(sf.driver, action)(conn, *args, **kwargs)
            return asyncio.run(getattr(sf.driver, f"{action}_async")(conn, *args, **kwargs))

        boss = run("create_contact", sf.Contact(last_name="Boss", account_id=acme))
        assert boss.account is not None and boss.account.name == "Acme O'Brien"  # read back on create
        assert isinstance(boss.account, sf.Account) and boss.account.id_ == acme
        assert boss.reports_to is None
        worker = run("create_contact", sf.Contact(last_name="Worker", reports_to_id=boss.id_))
        assert worker.account is None and worker.reports_to.last_name == "Boss"

        found = run(
            "search_contact",
            filters=[sf.BasicFilter(sf.ContactAttribute.LAST_NAME, sf.FilterOperator.EQUAL, "Boss")],
        )
        [row] = found.items
        assert (row.account.name, row.account.id_) == ("Acme O'Brien", acme)
        selected = org.queries[-1].fields or ()
        assert {"Account.Id", "Account.Name", "ReportsTo.LastName"} <= set(selected)

        got = run("get_contact", worker.id_)
        assert got.reports_to.id_ == boss.id_ and got.etag is not None

        # The Account goes: the lookup reads as None, not as an error.
        run("delete_account", acme)
        assert run("get_contact", boss.id_).account is None


def test_a_target_outside_the_package_reads_as_a_dict_of_its_id(
    packages: tuple[Path, Path], org: SalesforceFake
) -> None:
    acme = org.insert("Account", {"Name": "Acme"})
    with imported(packages[1].parent, "sf_contacts_only") as sf:
        conn = connection(sf, org)
        created = sf.driver.create_contact(conn, sf.Contact(last_name="Solo", account_id=acme))
        assert created.account == {"Id": acme}
        assert "Account.Name" not in (org.queries[-1].fields or ())


def test_a_relationship_removed_since_generation_is_named(
    packages: tuple[Path, Path], org: SalesforceFake
) -> None:
    with imported(packages[0].parent, "sf_contacts") as sf, org.removed_field("Account", "Website"):
        with pytest.raises(sf.errors.InvalidRequest, match=r"the field Account\.Website does not exist"):
            sf.driver.search_contact(connection(sf, org))


def test_lookups_are_typed_with_the_id_type_of_their_target(packages: tuple[Path, Path]) -> None:
    both, alone = packages
    models = (both / "models.py").read_text()
    assert 'AccountId = NewType("AccountId", str)' in models
    assert 'ContactId = NewType("ContactId", str)' in models
    assert "account_id: AccountId | None = None" in models
    assert "reports_to_id: ContactId | None = None" in models
    assert "what_id: str | None = None" in models  # polymorphic: Account or User
    # the keys of referenced objects have their id type too, so ids read go straight into lookups
    assert "id_: AccountId | None = None" in models
    with imported(both.parent, "sf_contacts") as sf:
        assert {"AccountId", "ContactId"} <= set(sf.__all__)
        assert sf.AccountId("001000000000001AAA") == "001000000000001AAA"  # a plain str at run time
    assert 'AccountId = NewType("AccountId", str)' in (alone / "models.py").read_text()


USER_SCRIPT = """\
from {module} import AccountId, BasicFilter, Connection, Contact, ContactAttribute, FilterOperator, driver


def contacts_of(connection: Connection, account: AccountId) -> list[Contact]:
    only = BasicFilter(ContactAttribute.ACCOUNT_ID, FilterOperator.EQUAL, account)
    return driver.search_contact(connection, filters=[only]).items


def new_contact(connection: Connection) -> Contact:
    account = driver.get_account(connection, "001000000000001AAA")
    assert account.id_ is not None
    return Contact(last_name="Typed", account_id=account.id_, reports_to_id=None)


typed = Contact(last_name="Typed", account_id=AccountId("001000000000001AAA"))
{extra}
"""


def user_script_problems(package: Path, name: str, extra: str = "") -> str:
    script = package.parent / f"{name}.py"
    script.write_text(USER_SCRIPT.format(module=package.name, extra=extra))
    return mypy_problems(script)


def test_mypy_strict_accepts_id_types_and_refuses_a_bare_str(packages: tuple[Path, Path]) -> None:
    both, _ = packages
    assert user_script_problems(both, "uses_ids") == ""
    problems = user_script_problems(
        both, "mixes_ids", 'bare = Contact(last_name="Bare", account_id="001000000000001AAA")'
    )
    assert (
        'Argument "account_id" to "Contact" has incompatible type "str"; expected "AccountId | None"'
        in problems
    )
    wrong = user_script_problems(both, "wrong_ids", "mixed = Contact(account_id=typed.reports_to_id)")
    assert 'incompatible type "ContactId | None"; expected "AccountId | None"' in wrong
