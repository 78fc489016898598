"""Runs INSIDE a fresh venv where only the published Salesforce package (and httpx) is installed,
with only IB_MANAGER_URL and IB_RUNTIME_TOKEN set (plus SSL_CERT_FILE: the machine trusts the fake
org's test CA as it would trust Salesforce's public one): an app calling ``service``.

Nothing from the repository is importable here (python -I). argv: module name, a name no other
run uses. Prints one JSON object: what the calls returned, or the error the package raised.
"""

from __future__ import annotations

import importlib
import json
import sys

module_name, name = sys.argv[1], sys.argv[2]
package = importlib.import_module(module_name)
service = importlib.import_module(f"{module_name}.service")
A, F = package.AccountAttribute, package.FilterOperator

try:
    created = service.create_account(package.Account(name=name, industry=package.AccountIndustry.RETAIL))
    found = service.search_account(filters=[package.BasicFilter(A.NAME, F.EQUAL, name)])
    service.update_account(created.id_, package.Account(name=f"{name} (renamed)"))
    renamed = service.get_account(created.id_)
    service.delete_account(created.id_)
    try:
        service.get_account(created.id_)
        after_delete = "still there"
    except package.errors.NotFound:
        after_delete = "NotFound"
except package.errors.IntegrationError as error:
    print(json.dumps({"error": type(error).__name__, "message": str(error)}))
else:
    print(
        json.dumps(
            {
                "created": created.id_,
                "found": [(a.id_, a.name, a.industry.value) for a in found.items],
                "renamed": renamed.name,
                "after_delete": after_delete,
            }
        )
    )
