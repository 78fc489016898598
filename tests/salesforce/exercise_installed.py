"""Runs INSIDE a fresh venv where only the generated Salesforce package (and httpx) is installed.

Calls the package's driver with an explicit Connection (the fake's REST root, a bearer token from
a JWT login) and prints one JSON object with what it observed; the test that launched it asserts
on that. Nothing from the repository is importable here (python -I).

argv: module name, scenario ("sync" | "async" | "removed-field");
env: SF_ROOT, SF_TOKEN, SF_CA, SF_NASTY (a name made to break out of a SOQL string).
"""

from __future__ import annotations

import asyncio
import datetime
import importlib
import json
import os
import sys
from decimal import Decimal
from typing import Any

module_name, scenario = sys.argv[1], sys.argv[2]
package = importlib.import_module(module_name)
driver = importlib.import_module(f"{module_name}.driver")
errors = package.errors
A = package.AccountAttribute
F = package.FilterOperator
NASTY = os.environ["SF_NASTY"]
connection = package.Connection(
    os.environ["SF_ROOT"], auth=package.BearerAuth(os.environ["SF_TOKEN"]), verify=os.environ["SF_CA"]
)


async def call(action: str, *args: Any, **kwargs: Any) -> Any:
    if scenario == "async":
        return await getattr(driver, f"{action}_async")(*args, **kwargs)
    return getattr(driver, action)(*args, **kwargs)


async def iterate(action: str, *args: Any, **kwargs: Any) -> list[Any]:
    if scenario == "async":
        return [item async for item in getattr(driver, f"{action}_async")(*args, **kwargs)]
    return list(getattr(driver, action)(*args, **kwargs))


async def error_of(action: str, *args: Any, **kwargs: Any) -> dict[str, Any]:
    try:
        await call(action, *args, **kwargs)
    except errors.IntegrationError as error:
        return {"class": type(error).__name__, "code": error.code, "text": str(error)}
    return {"class": "no error"}


async def crud(seen: dict[str, Any]) -> None:
    # the test queued one REQUEST_LIMIT_EXCEEDED for the first call
    seen["rate_limited"] = await error_of("count_account", connection)

    created = await call(
        "create_account",
        connection,
        package.Account(
            name=NASTY,
            industry=package.AccountIndustry.RETAIL,
            annual_revenue=Decimal("99.95"),
            founded_c=datetime.date(2001, 2, 3),
            billing_address={"never": "sent"},
        ),
    )
    await call("create_account", connection, package.Account(name="Plain"))
    seen["created_id"] = created.id_

    found = await call("search_account", connection, filters=[package.BasicFilter(A.NAME, F.EQUAL, NASTY)])
    seen["found"] = [(a.id_, a.name, a.industry.value, str(a.annual_revenue)) for a in found.items]
    starts = await call(
        "search_account", connection, filters=[package.BasicFilter(A.NAME, F.STARTS_WITH, "O'B")]
    )
    seen["starts_with"] = [a.name for a in starts.items]

    await call(
        "update_account",
        connection,
        created.id_,
        package.Account(name="Renamed", website="https://x.example"),
    )
    got = await call("get_account", connection, created.id_)
    seen["after_update"] = [got.name, got.website, got.founded_c.isoformat()]
    await call("delete_account", connection, created.id_)
    seen["get_after_delete"] = (await error_of("get_account", connection, created.id_))["class"]

    paging = [package.BasicFilter(A.NAME, F.STARTS_WITH, "page-")]
    by_name = [package.OrderBy(A.NAME)]
    seen["count"] = await call("count_account", connection, filters=paging)
    first = await call("search_account", connection, filters=paging, order_by=by_name, top=5)
    second = await call("next_page", connection, first)
    seen["pages"] = [[a.name for a in first.items], [a.name for a in second.items]]
    seen["iterated"] = [
        a.name for a in await iterate("iter_account", connection, filters=paging, order_by=by_name)
    ]


async def removed_field(seen: dict[str, Any]) -> None:
    seen["search"] = await error_of("search_account", connection)
    seen["count"] = await call("count_account", connection)  # COUNT() names no field


async def main() -> None:
    seen: dict[str, Any] = {}
    await (removed_field if scenario == "removed-field" else crud)(seen)
    print(json.dumps(seen))


asyncio.run(main())
