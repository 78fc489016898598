"""Runs INSIDE a fresh venv where only the published package (and httpx) is installed, with only
IB_MANAGER_URL and IB_RUNTIME_TOKEN set: an app of some environment calling ``service``.

Nothing from the repository is importable here (python -I). argv: module name, a Products ID no
other run uses. Prints one JSON object: what the calls returned, or the error the package raised.
"""

from __future__ import annotations

import asyncio
import importlib
import json
import sys

module_name, key = sys.argv[1], int(sys.argv[2])
package = importlib.import_module(module_name)
service = importlib.import_module(f"{module_name}.service")

try:
    page = service.search_products(top=3)
    created = service.create_products(package.Products(id_=key, name=f"runtime {key}", category_id=1))
    service.delete_products(key)  # the peer is shared by the session: leave its rows as they were
    counted = asyncio.run(service.count_categories_async())
except package.errors.IntegrationError as error:
    print(json.dumps({"error": type(error).__name__, "message": str(error)}))
else:
    print(
        json.dumps(
            {
                "listed": len(page.items),
                "total": page.total_count,
                "created": created.id_,
                "created_by": created.created_by,
                "categories": counted,
            }
        )
    )
