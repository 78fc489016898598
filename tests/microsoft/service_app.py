"""Runs INSIDE a fresh venv where only a published Microsoft integration (and httpx) is installed,
with only IB_MANAGER_URL and IB_RUNTIME_TOKEN set (plus, for Graph's HTTPS, the machine's trust
store in SSL_CERT_FILE): an app calling ``service``, whose connection and access token come from
the Integration Manager.

Nothing from the repository is importable here (python -I). argv: module name, "dataverse" (the
``accounts`` table) or "sharepoint" (the "Project Tasks" list), a name no other run uses. Prints
one JSON object: what the calls returned, or the error the package raised.
"""

from __future__ import annotations

import importlib
import json
import sys
from typing import Any

module_name, kind, marker = sys.argv[1], sys.argv[2], sys.argv[3]
package = importlib.import_module(module_name)
service = importlib.import_module(f"{module_name}.service")


def dataverse() -> dict[str, Any]:
    listed = service.search_accounts(top=3)
    created = service.create_accounts(package.Accounts(name=marker))
    again = service.get_accounts(created.accountid)
    service.delete_accounts(created.accountid, etag=again.etag)  # the peer is shared by the session
    return {"listed": len(listed.items), "created": created.name, "read_back": again.name}


def sharepoint() -> dict[str, Any]:
    title = package.ProjectTasksAttribute.TITLE
    listed = service.search_project_tasks(top=5)
    created = service.create_project_tasks(package.ProjectTasks(title=marker, hours=2.5))
    service.update_project_tasks(
        created.id_,
        package.ProjectTasks(title=f"{marker} renamed"),
        attributes_to_send=[title],
        etag=created.etag,
    )
    again = service.get_project_tasks(created.id_)
    return {
        "listed": sorted(task.title for task in listed.items),
        "created": [created.title, created.hours],
        "read_back": again.title,
    }


try:
    seen = dataverse() if kind == "dataverse" else sharepoint()
except package.errors.IntegrationError as error:
    seen = {"error": type(error).__name__, "message": str(error)}
print(json.dumps(seen))
