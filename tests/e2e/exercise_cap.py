"""Runs INSIDE a fresh venv where only the generated package (and httpx) is installed.

Calls every generated action of the CAP shop package, sync or async, and prints one JSON object
with what it observed; the test that launched it asserts on that. Nothing from the repository
is importable here (python -I), so this is exactly what an app using the package can do.

argv: module name, mode ("sync" | "async"); env: CAP_ROOT, CAP_BASE, CAP_USER, CAP_PASSWORD, KEY.
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

import httpx

module_name, mode = sys.argv[1], sys.argv[2]
package = importlib.import_module(module_name)
driver = importlib.import_module(f"{module_name}.driver")
errors = package.errors
P = package.ProductsAttribute
ROOT, BASE = os.environ["CAP_ROOT"], os.environ["CAP_BASE"]
USER, PASSWORD = os.environ["CAP_USER"], os.environ["CAP_PASSWORD"]
KEY = int(os.environ["KEY"])  # a Products ID no other run uses
connection = package.Connection(ROOT, auth=package.BasicAuth(USER, PASSWORD), params={"sap-client": "100"})


async def call(action: str, *args: Any, **kwargs: Any) -> Any:
    """The sync action, or its async twin."""
    if mode == "sync":
        return getattr(driver, action)(*args, **kwargs)
    return await getattr(driver, f"{action}_async")(*args, **kwargs)


async def iterate(action: str, *args: Any, **kwargs: Any) -> list[Any]:
    if mode == "sync":
        return list(getattr(driver, action)(*args, **kwargs))
    return [item async for item in getattr(driver, f"{action}_async")(*args, **kwargs)]


async def error_name(action: str, *args: Any, **kwargs: Any) -> str:
    try:
        await call(action, *args, **kwargs)
    except errors.IntegrationError as error:
        return type(error).__name__
    return "no error"


async def scenario(seen: dict[str, Any]) -> None:
    # search: filtered, ordered, paged, with the total count
    cheap = [package.BasicFilter(P.PRICE, package.FilterOperator.LESS, Decimal("50"))]
    by_price = [package.OrderBy(P.PRICE, package.SortDirection.DESCENDING)]
    page = await call("search_products", connection, filters=cheap, order_by=by_price, skip=0, top=5)
    seen["page_size"] = len(page.items)
    seen["total"] = page.total_count
    seen["all_cheap"] = all(p.price < 50 for p in page.items)
    prices = [p.price for p in page.items]
    seen["ordered"] = prices == sorted(prices, reverse=True)
    second = await call("next_page", connection, page)
    seen["second_page_disjoint"] = not {p.id_ for p in page.items} & {p.id_ for p in second.items}
    seen["count"] = await call("count_products", connection, filters=cheap)
    named = [package.BasicFilter(P.NAME, package.FilterOperator.CONTAINS_IGNORE_CASE, "O'")]
    seen["quote_in_value_ok"] = isinstance(
        (await call("search_products", connection, filters=named)).items, list
    )
    seen["iterated"] = len(await iterate("iter_products", connection, filters=cheap, page_size=7))

    # create -> get -> update with and without ETag -> stale ETag -> delete -> NotFound,
    # through one open client, so its CSRF token can expire between two writes
    client = driver.open_client(connection) if mode == "sync" else driver.open_async_client(connection)
    when = datetime.datetime(2026, 11, 29, 8, 30, tzinfo=datetime.UTC)
    new = package.Products(
        id_=KEY,
        name=f"e2e {mode} {KEY}",
        price=Decimal("12.34"),
        currency="EUR",
        stock=3,
        available_from=when,
        discontinued=False,
        category_id=1,
    )
    created = await call("create_products", client, new)
    seen["created_by"] = created.created_by
    fetched = await call("get_products", client, KEY)
    seen["get_price"] = str(fetched.price)
    seen["get_available_from"] = fetched.available_from.isoformat()
    seen["nulls_reported"] = "description" in fetched.null_attributes
    seen["etag"] = bool(fetched.etag)
    fetched.stock = 4
    # The next write must still succeed, transparently (blocking is fine: nothing runs meanwhile).
    httpx.post(f"{BASE}/test/expire-csrf")  # noqa: ASYNC210
    await call("update_products", client, KEY, fetched, attributes_to_send=[P.STOCK], etag=fetched.etag)
    seen["stale_etag"] = await error_name(
        "update_products", client, KEY, fetched, attributes_to_send=[P.STOCK], etag=fetched.etag
    )
    await call("update_products", client, KEY, package.Products(name="renamed without etag"))
    after = await call("get_products", client, KEY)
    seen["after_update"] = [after.stock, after.name]
    await call("delete_products", client, KEY, etag=after.etag)
    seen["get_after_delete"] = await error_name("get_products", client, KEY)
    if mode == "sync":
        client.close()
    else:
        await client.aclose()

    wrong = package.Connection(ROOT, auth=package.BasicAuth(USER, "not the password"))
    seen["wrong_password"] = await error_name("count_products", wrong)
    seen["read_only_has_no_create"] = not hasattr(driver, "create_suppliers")


seen: dict[str, Any] = {}
asyncio.run(scenario(seen))
print(json.dumps(seen))
