"""Runs INSIDE a fresh venv where only the generated Dataverse package (and httpx) is installed.

Calls the package's driver with an explicit Connection (the peer's Web API root, a bearer token
from the identity peer) and prints one JSON object with what it observed. Nothing from the
repository is importable here (python -I).

argv: module name, scenario ("sync" | "async"); env: DV_ROOT, DV_TOKEN.
"""

from __future__ import annotations

import asyncio
import importlib
import json
import os
import sys
import uuid
from decimal import Decimal
from typing import Any

module_name, scenario = sys.argv[1], sys.argv[2]
package = importlib.import_module(module_name)
driver = importlib.import_module(f"{module_name}.driver")
errors = package.errors
A = package.AccountsAttribute
C = package.ContactsAttribute
F = package.FilterOperator
connection = package.Connection(os.environ["DV_ROOT"], auth=package.BearerAuth(os.environ["DV_TOKEN"]))


async def call(action: str, *args: Any, **kwargs: Any) -> Any:
    if scenario == "async":
        return await getattr(driver, f"{action}_async")(*args, **kwargs)
    return getattr(driver, action)(*args, **kwargs)


async def iterate(action: str, *args: Any, **kwargs: Any) -> list[Any]:
    if scenario == "async":
        return [item async for item in getattr(driver, f"{action}_async")(*args, **kwargs)]
    return list(getattr(driver, action)(*args, **kwargs))


async def error_of(action: str, *args: Any, **kwargs: Any) -> str:
    try:
        await call(action, *args, **kwargs)
    except errors.IntegrationError as error:
        return type(error).__name__
    return "no error"


async def main() -> dict[str, Any]:
    seen: dict[str, Any] = {}
    seeded = [package.BasicFilter(A.NAME, F.STARTS_WITH, "Seed account")]
    first = await call(
        "search_accounts", connection, filters=seeded, order_by=[package.OrderBy(A.NAME)], top=10
    )
    second = await call("next_page", connection, first)
    seen["pages"] = [[a.name for a in first.items], [a.name for a in second.items]]
    seen["total"] = first.total_count
    seen["count"] = await call("count_accounts", connection, filters=seeded)
    seen["iterated"] = len(await iterate("iter_accounts", connection, filters=seeded, page_size=7))
    seen["skip"] = [
        a.name
        for a in (
            await call(
                "search_accounts",
                connection,
                filters=seeded,
                order_by=[package.OrderBy(A.NAME)],
                skip=20,
                top=10,
            )
        ).items
    ]

    name = f"Contoso {scenario}"
    created = await call(
        "create_accounts",
        connection,
        package.Accounts(name=name, industrycode=3, revenue=Decimal("1234.5"), createdon=None),
    )
    seen["created"] = [created.name, created.industrycode, str(created.revenue), created.etag is not None]
    key = created.accountid
    await call(
        "update_accounts",
        connection,
        key,
        package.Accounts(name=name + " renamed"),
        attributes_to_send=[A.NAME],
        etag=created.etag,
    )
    again = await call("get_accounts", connection, key)
    seen["renamed"] = again.name
    seen["stale_etag"] = await error_of(
        "update_accounts",
        connection,
        key,
        package.Accounts(name="lost"),
        attributes_to_send=[A.NAME],
        etag=created.etag,
    )
    await call("delete_accounts", connection, key, etag=again.etag)
    seen["after_delete"] = await error_of("get_accounts", connection, key)
    # without an etag, Dataverse would create the record: the package sends If-Match: *
    seen["update_missing"] = await error_of(
        "update_accounts", connection, key, package.Accounts(name="ghost"), attributes_to_send=[A.NAME]
    )

    contacts = await call("search_contacts", connection, top=5)
    first_contact = contacts.items[0]
    seen["lookup"] = [
        str(first_contact.parentcustomerid_value),
        first_contact.parentcustomerid_account.name if first_contact.parentcustomerid_account else None,
    ]
    seen["unformatted"] = dict(first_contact.formatted_values)

    # formatted values, on request: the first page, the next one, a single record, expanded records
    shown = await call(
        "search_accounts",
        connection,
        filters=seeded,
        order_by=[package.OrderBy(A.NAME)],
        top=2,
        formatted_values=True,
    )
    following = await call("next_page", connection, shown)
    seen["formatted_page"] = [dict(a.formatted_values) for a in shown.items]
    seen["formatted_next_page"] = [a.formatted_values.get("industrycode") for a in following.items]
    every = await iterate("iter_accounts", connection, filters=seeded, page_size=9, formatted_values=True)
    seen["formatted_iterated"] = sorted({a.formatted_values.get("statecode") for a in every})
    contact = await call("get_contacts", connection, first_contact.contactid, formatted_values=True)
    account = contact.parentcustomerid_account
    seen["formatted_contact"] = [
        contact.formatted_values.get("parentcustomerid_value"),
        account.formatted_values.get("industrycode") if account else None,
        sorted(contact.formatted_values),
    ]
    plain = await call("get_contacts", connection, first_contact.contactid)
    seen["formatted_then_plain"] = dict(plain.formatted_values)

    # lookups: set on create, changed and cleared on update, refused when no record has the key
    second_account = "a0000000-0000-4000-8000-000000000002"
    bound = await call(
        "create_contacts",
        connection,
        package.Contacts(lastname=f"Bound {scenario}"),
        links=package.ContactsLinks(parentcustomerid_account=first_contact.parentcustomerid_value),
    )
    await call(
        "update_contacts",
        connection,
        bound.contactid,
        package.Contacts(),
        attributes_to_send=[],
        links={"parentcustomerid_account": uuid.UUID(second_account)},
    )
    moved = await call("get_contacts", connection, bound.contactid, formatted_values=True)
    await call(
        "update_contacts",
        connection,
        bound.contactid,
        package.Contacts(),
        attributes_to_send=[],
        links={"parentcustomerid_account": None},
    )
    cleared = await call("get_contacts", connection, bound.contactid)
    seen["links"] = [
        str(bound.parentcustomerid_value),
        str(moved.parentcustomerid_value),
        moved.formatted_values.get("parentcustomerid_value"),
        cleared.parentcustomerid_value,
    ]
    try:
        await call(
            "create_contacts",
            connection,
            package.Contacts(lastname="Orphan"),
            links={"parentcustomerid_account": uuid.UUID("a0000000-0000-4000-8000-0000000000ff")},
        )
        seen["missing_account"] = "no error"
    except errors.IntegrationError as error:
        seen["missing_account"] = [type(error).__name__, str(error)]
    orphans = await call(
        "count_contacts", connection, filters=[package.BasicFilter(C.LASTNAME, F.EQUAL, "Orphan")]
    )
    seen["orphans"] = orphans
    await call("delete_contacts", connection, bound.contactid)
    return seen


print(json.dumps(asyncio.run(main())))
