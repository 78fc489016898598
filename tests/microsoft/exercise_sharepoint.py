"""Runs INSIDE a fresh venv where only the generated SharePoint package (and httpx) is installed.

Calls the package's driver with an explicit Connection (the Graph fake's site root, a bearer token
from the identity peer) and prints one JSON object with what it observed.

argv: module name, scenario ("sync" | "async"); env: SP_ROOT, SP_TOKEN, SP_CA, SP_ARCHIVE.
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
A = package.ProjectTasksAttribute
F = package.FilterOperator
connection = package.Connection(
    os.environ["SP_ROOT"], auth=package.BearerAuth(os.environ["SP_TOKEN"]), verify=os.environ["SP_CA"]
)


async def call(action: str, *args: Any, **kwargs: Any) -> Any:
    if scenario == "async":
        return await getattr(driver, f"{action}_async")(*args, **kwargs)
    return getattr(driver, action)(*args, **kwargs)


async def iterate(action: str, *args: Any, **kwargs: Any) -> list[Any]:
    if scenario == "async":
        return [item async for item in getattr(driver, f"{action}_async")(*args, **kwargs)]
    return list(getattr(driver, action)(*args, **kwargs))


async def main() -> dict[str, Any]:
    seen: dict[str, Any] = {"has_count": hasattr(driver, "count_project_tasks")}
    tasks = [package.BasicFilter(A.TITLE, F.STARTS_WITH, "Task ")]
    by_title = [package.OrderBy(A.TITLE)]
    try:
        await call("search_project_tasks", connection, filters=tasks)
    except errors.RateLimited as error:
        seen["throttled"] = [type(error).__name__, error.retry_after, error.code]

    first = await call("search_project_tasks", connection, filters=tasks, order_by=by_title, top=5)
    second = await call("next_page", connection, first)
    seen["pages"] = [[t.title for t in first.items], [t.title for t in second.items], first.total_count]
    seen["iterated"] = len(await iterate("iter_project_tasks", connection, filters=tasks, page_size=4))
    archive = [package.BasicFilter(A.FILE_DIR_REF, F.EQUAL, os.environ["SP_ARCHIVE"])]
    seen["archived"] = sorted(
        t.title for t in (await call("search_project_tasks", connection, filters=archive))
    )

    created = await call(
        "create_project_tasks",
        connection,
        package.ProjectTasks(
            title=f"New {scenario}",
            budget=Decimal("1500.25"),
            hours=7.5,
            done=False,
            due=datetime.datetime(2025, 3, 4, 12, 30, tzinfo=datetime.UTC),
            stage=package.ProjectTasksStage.ACTIVE,
            tags=[package.ProjectTasksTags.RED],
            score=99.0,
        ),
    )
    seen["created"] = [
        created.title,
        str(created.budget),
        created.hours,
        created.done,
        created.due.isoformat(),
        created.stage.value,
        [t.value for t in created.tags],
        created.score,
        created.etag is not None,
    ]
    await call(
        "update_project_tasks",
        connection,
        created.id_,
        package.ProjectTasks(title=f"Renamed {scenario}"),
        attributes_to_send=[A.TITLE],
        etag=created.etag,
    )
    again = await call("get_project_tasks", connection, created.id_)
    seen["renamed"] = again.title
    try:
        await call(
            "update_project_tasks",
            connection,
            created.id_,
            package.ProjectTasks(title="lost"),
            attributes_to_send=[A.TITLE],
            etag=created.etag,
        )
        seen["stale"] = "no error"
    except errors.IntegrationError as error:
        seen["stale"] = type(error).__name__
    await call("delete_project_tasks", connection, created.id_, etag=again.etag)
    try:
        await call("get_project_tasks", connection, created.id_)
        seen["after_delete"] = "no error"
    except errors.IntegrationError as error:
        seen["after_delete"] = type(error).__name__
    return seen


print(json.dumps(asyncio.run(main())))
