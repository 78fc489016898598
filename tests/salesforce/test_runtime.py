"""A generated Salesforce package's driver against the fake org: CRUD, SOQL the values cannot
change, paging, counting and the errors Salesforce answers."""

from __future__ import annotations

import asyncio
import datetime
from collections.abc import Iterator
from decimal import Decimal
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest

from generator import generate_package
from generator.spec import IntegrationSpec, ObjectSelection
from providers import base
from tests.fixtures.generated import imported, write_package
from tests.fixtures.salesforce import (
    SalesforceOrg,
    account_describe,
    file_source,
    org_describes,
    sf_field,
    sobject_describe,
)
from tests.peers.salesforce_soql import Comparison, Junction, Literal

pytestmark = pytest.mark.peers
NASTY = "O'Brien \\ ' OR Name != '\nx"


@pytest.fixture(scope="module")
def sf(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ModuleType]:
    """A package of the whole fake org plus Payroll__c, which the org does not let anyone use."""
    describes, describe_global = org_describes()
    payroll = sobject_describe("Payroll__c", [sf_field("Id", "id", createable=False, updateable=False)])
    source = file_source([*describes, describe_global, payroll])
    catalog = asyncio.run(base.get_provider("salesforce").discover(source))
    spec = IntegrationSpec(
        provider="salesforce",
        application_name="Fake org",
        module_name="sf_runtime",
        objects=[ObjectSelection(name) for name in catalog.object_names()],
    )
    directory = tmp_path_factory.mktemp("sf_runtime")
    write_package(generate_package(catalog, spec), directory)
    with imported(directory, "sf_runtime") as package:
        yield package


@pytest.fixture
def connection(sf: ModuleType, salesforce_org: SalesforceOrg) -> Any:
    return sf.Connection(
        salesforce_org.api_root(),
        auth=sf.BearerAuth(salesforce_org.token()),
        verify=str(salesforce_org.fake.ca_path),
    )


@pytest.fixture
def accounts(salesforce_org: SalesforceOrg) -> Iterator[SalesforceOrg]:
    """The org with no Account records before and after the test."""
    salesforce_org.fake.clear("Account")
    yield salesforce_org
    salesforce_org.fake.clear("Account")


def run(flavor: str, sf: ModuleType, action: str, *args: Any, **kwargs: Any) -> Any:
    """The driver's sync action, or its async twin run to completion."""
    if flavor == "sync":
        return getattr(sf.driver, action)(*args, **kwargs)
    return asyncio.run(getattr(sf.driver, f"{action}_async")(*args, **kwargs))


def error_of(flavor: str, sf: ModuleType, action: str, *args: Any, **kwargs: Any) -> Any:
    with pytest.raises(sf.errors.IntegrationError) as caught:
        run(flavor, sf, action, *args, **kwargs)
    return caught.value


def name_filter(sf: ModuleType, operator: str, value: Any) -> Any:
    return sf.BasicFilter(sf.AccountAttribute.NAME, sf.FilterOperator[operator], value)


@pytest.mark.parametrize("flavor", ["sync", "async"])
def test_create_get_update_delete(
    flavor: str, sf: ModuleType, connection: Any, accounts: SalesforceOrg
) -> None:
    account = sf.Account(
        name="Acme",
        industry=sf.AccountIndustry.CONSULTING_SERVICES,
        regions_c=[sf.AccountRegionsC.EMEA, sf.AccountRegionsC.APAC],
        annual_revenue=Decimal("1234567.89"),
        number_of_employees=250,
        rating_c=4.5,
        founded_c=datetime.date(1999, 12, 31),
        opens_at_c=datetime.time(8, 30),
        active_c=True,
        website="https://acme.example",
        description="Line one\nline two",
        logo_c=b"\x89PNG...",
        billing_address={"city": "never sent: Salesforce computes it"},
    )
    created = run(flavor, sf, "create_account", connection, account)

    assert created.id_ and created.id_.startswith("001") and len(created.id_) == 18
    assert created.owner_id and created.created_date.tzinfo is not None
    stored = accounts.fake.records["Account"][created.id_]
    assert stored["BillingAddress"] is None and stored["Logo__c"] is not None
    read = run(flavor, sf, "get_account", connection, created.id_)
    assert (read.name, read.industry, read.regions_c) == (
        "Acme",
        sf.AccountIndustry.CONSULTING_SERVICES,
        [sf.AccountRegionsC.EMEA, sf.AccountRegionsC.APAC],
    )
    assert (read.annual_revenue, read.number_of_employees, read.rating_c) == (Decimal("1234567.89"), 250, 4.5)
    assert (read.founded_c, read.opens_at_c, read.active_c) == (
        datetime.date(1999, 12, 31),
        datetime.time(8, 30),
        True,
    )
    assert read.description == "Line one\nline two" and read.etag
    # queries answer base64 fields with a link, so the driver does not read them
    assert read.logo_c is None and "logo_c" in read.null_attributes

    changed = sf.Account(name="Acme Corp", number_of_employees=None, website="ignored")
    run(
        flavor,
        sf,
        "update_account",
        connection,
        created.id_,
        changed,
        attributes_to_send=["name", "NumberOfEmployees"],
    )
    after = run(flavor, sf, "get_account", connection, created.id_)
    assert (after.name, after.number_of_employees, after.website) == (
        "Acme Corp",
        None,
        "https://acme.example",
    )
    stale = error_of(flavor, sf, "update_account", connection, created.id_, changed, etag=read.etag)
    assert isinstance(stale, sf.errors.Conflict)

    run(flavor, sf, "delete_account", connection, created.id_, etag=after.etag)
    gone = error_of(flavor, sf, "get_account", connection, created.id_)
    assert isinstance(gone, sf.errors.NotFound) and gone.code == "ENTITY_IS_DELETED"
    assert isinstance(error_of(flavor, sf, "delete_account", connection, created.id_), sf.errors.NotFound)


def test_filter_values_cannot_change_the_query(
    sf: ModuleType, connection: Any, accounts: SalesforceOrg
) -> None:
    for name in (NASTY, "Other", "100%_sure", "100 x sure"):
        accounts.fake.insert("Account", {"Name": name})

    exact = sf.driver.search_account(connection, filters=[name_filter(sf, "EQUAL", NASTY)])
    assert [a.name for a in exact.items] == [NASTY]
    assert accounts.fake.queries[-1].conditions == [Comparison("Name", "=", Literal("string", NASTY))]

    ignoring_case = sf.driver.search_account(
        connection, filters=[name_filter(sf, "EQUAL_IGNORE_CASE", "OTHER")]
    )
    assert [a.name for a in ignoring_case.items] == ["Other"]
    wildcards = sf.driver.search_account(connection, filters=[name_filter(sf, "CONTAINS", "0%_s")])
    assert [a.name for a in wildcards.items] == ["100%_sure"]
    assert accounts.fake.queries[-1].conditions == [Comparison("Name", "LIKE", Literal("like", "%0\\%\\_s%"))]
    starts = sf.driver.search_account(connection, filters=[name_filter(sf, "STARTS_WITH", "O'Brien \\")])
    assert [a.name for a in starts.items] == [NASTY]

    # the app's own WHERE clause is parenthesized, so its OR cannot escape the basic filters
    advanced = sf.driver.search_account(
        connection,
        filters=[name_filter(sf, "NOT_EQUAL", "Other")],
        advanced_filter="Name = 'Other' OR Name = '100 x sure'",
    )
    assert [a.name for a in advanced.items] == ["100 x sure"]
    where = accounts.fake.queries[-1].where
    assert isinstance(where, Junction) and where.operator == "AND" and isinstance(where.parts[1], Junction)


def test_typed_filters_and_ordering(sf: ModuleType, connection: Any, accounts: SalesforceOrg) -> None:
    A = sf.AccountAttribute
    for name, employees, founded, regions in (
        ("Alpha", 10, "2001-01-01", "EMEA"),
        ("Beta", 500, "1990-06-30", "APAC;EMEA"),
        ("Gamma", None, "2020-02-02", "AMER"),
    ):
        accounts.fake.insert(
            "Account",
            {"Name": name, "NumberOfEmployees": employees, "Founded__c": founded, "Regions__c": regions},
        )

    def names(*filters: Any, **kwargs: Any) -> list[str]:
        return [a.name for a in sf.driver.search_account(connection, filters=list(filters), **kwargs).items]

    F = sf.FilterOperator
    assert names(
        sf.BasicFilter(A.NUMBER_OF_EMPLOYEES, F.GREATER_OR_EQUAL, 10), order_by=[sf.OrderBy(A.NAME)]
    ) == [
        "Alpha",
        "Beta",
    ]
    assert names(sf.BasicFilter(A.FOUNDED_C, F.LESS, datetime.date(2000, 1, 1))) == ["Beta"]
    assert names(sf.BasicFilter(A.NUMBER_OF_EMPLOYEES, F.EQUAL, None)) == ["Gamma"]
    assert names(sf.BasicFilter(A.NAME, F.EQUAL, ["Alpha", "Gamma"]), order_by=[sf.OrderBy(A.NAME)]) == [
        "Alpha",
        "Gamma",
    ]
    regions = [sf.AccountRegionsC.EMEA, sf.AccountRegionsC.APAC]
    assert names(sf.BasicFilter(A.REGIONS_C, F.EQUAL, regions)) == ["Beta"]
    newest_first = [sf.OrderBy(A.FOUNDED_C, sf.SortDirection.DESCENDING)]
    assert names(order_by=newest_first) == ["Gamma", "Alpha", "Beta"]
    assert sf.driver.count_account(connection, filters=[name_filter(sf, "STARTS_WITH", "a")]) == 1
    assert accounts.fake.queries[-1].fields is None  # SELECT COUNT()


def test_small_pages_continue_with_offset_and_large_ones_with_the_cursor(
    sf: ModuleType, connection: Any, accounts: SalesforceOrg
) -> None:
    for number in range(250):
        accounts.fake.insert("Account", {"Name": f"page-{number:03d}"})
    by_name = [sf.OrderBy(sf.AccountAttribute.NAME)]

    first = sf.driver.search_account(connection, order_by=by_name, top=100)
    second = sf.driver.next_page(connection, first)
    assert [a.name for a in first.items + second.items] == [f"page-{n:03d}" for n in range(200)]
    assert first.total_count is None and accounts.fake.queries[-1].offset == 100

    with accounts.fake.batches_of(150):
        large = sf.driver.search_account(connection, order_by=by_name, top=200)
        # whole batches only: 150 fit, a second batch would not
        assert (len(large.items), large.total_count) == (150, 250) and "/query/01g" in large.next_link
        rest = sf.driver.next_page(connection, large)
        assert [a.name for a in rest.items] == [
            f"page-{n:03d}" for n in range(150, 250)
        ] and not rest.has_next
    with accounts.fake.batches_of(40):
        queries = len(accounts.fake.queries)
        iterated = [a.name for a in sf.driver.iter_account(connection, order_by=by_name)]
        followed = [p for m, p in accounts.fake.requests[-8:] if "/query/01g" in p]
    assert iterated == [f"page-{n:03d}" for n in range(250)]
    assert len(accounts.fake.queries) == queries + 1 and followed  # one query, the rest through the cursor
    assert sf.driver.count_account(connection) == 250

    too_far = error_of("sync", sf, "search_account", connection, skip=2001, top=5)
    assert isinstance(too_far, sf.errors.InvalidRequest) and "at most 2,000" in str(too_far)


@pytest.mark.parametrize("flavor", ["sync", "async"])
def test_salesforce_errors_map_to_the_package_errors(
    flavor: str, sf: ModuleType, connection: Any, accounts: SalesforceOrg
) -> None:
    accounts.fake.fail_next("REQUEST_LIMIT_EXCEEDED")
    limited = error_of(flavor, sf, "search_account", connection)
    assert isinstance(limited, sf.errors.RateLimited) and limited.code == "REQUEST_LIMIT_EXCEEDED"

    with accounts.fake.removed_field("Account", "Rating__c"):
        removed = error_of(flavor, sf, "search_account", connection)
        created = error_of(flavor, sf, "create_account", connection, sf.Account(name="x", rating_c=1.0))
    for error in (removed, created):
        assert isinstance(error, sf.errors.InvalidRequest)
        assert "the field Account.Rating__c does not exist in Salesforce" in str(error)
        assert "removed or renamed since this package was generated" in str(error)

    forbidden = error_of(flavor, sf, "search_payroll_c", connection)
    assert isinstance(forbidden, sf.errors.Forbidden) and "Payroll__c" in str(forbidden)

    missing = error_of(flavor, sf, "create_account", connection, sf.Account(website="https://no.name"))
    assert isinstance(missing, sf.errors.InvalidRequest) and missing.code == "REQUIRED_FIELD_MISSING"


def test_an_expired_session_is_unauthorized(sf: ModuleType, salesforce_org: SalesforceOrg) -> None:
    fake = salesforce_org.fake
    expired = sf.Connection(
        salesforce_org.api_root(), auth=sf.BearerAuth(salesforce_org.token()), verify=str(fake.ca_path)
    )
    fake.expire_sessions()
    error = error_of("sync", sf, "count_account", expired)
    assert isinstance(error, sf.errors.Unauthorized) and error.code == "INVALID_SESSION_ID"
    assert "session expired or was revoked" in str(error)


def test_objects_salesforce_cannot_read_by_id_are_created_without_reading_back(
    sf: ModuleType, connection: Any, salesforce_org: SalesforceOrg
) -> None:
    event = sf.driver.create_audit_event_e(connection, sf.AuditEventE(message_c="deployed"))
    assert event.id_ and event.message_c == "deployed"
    assert not any(m == "GET" and "Audit_Event__e" in p for m, p in salesforce_org.fake.requests[-3:])


def test_a_bare_instance_url_gets_the_generated_api_version(
    sf: ModuleType, salesforce_org: SalesforceOrg, accounts: SalesforceOrg
) -> None:
    bare = sf.Connection(
        salesforce_org.fake.base_url,
        auth=sf.BearerAuth(salesforce_org.token()),
        verify=str(salesforce_org.fake.ca_path),
    )
    assert sf.driver.count_account(bare) == 0
    assert salesforce_org.fake.requests[-1][1] == "/services/data/v62.0/query"


def test_user_and_password_are_refused_before_any_request(
    sf: ModuleType, salesforce_org: SalesforceOrg
) -> None:
    basic = sf.Connection(salesforce_org.api_root(), auth=sf.BasicAuth("user", "password"))
    with pytest.raises(sf.errors.ConfigurationError, match="access token"):
        sf.driver.count_account(basic)


def test_only_account_fields_that_exist_are_named(tmp_path: Path) -> None:
    """Field names reach SOQL unquoted: a descriptor with anything else is refused up front."""
    from providers.runtime.connection import BearerAuth, Connection
    from providers.runtime.records import FieldDescriptor, ObjectDescriptor, ServiceDescriptor
    from providers.runtime.salesforce import Client

    assert account_describe()["name"] == "Account"
    bad = ObjectDescriptor(
        "Account", "Account", dict, (FieldDescriptor("x", "Name FROM User --", "string", "string"),)
    )
    with Client(
        Connection("https://127.0.0.1:9/", auth=BearerAuth("t")), ServiceDescriptor("x", "1")
    ) as client:
        with pytest.raises(Exception, match="is not a Salesforce API name"):
            client.count(bad)
