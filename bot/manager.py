"""The Integration Manager runtime API: ``/manager/v1/`` for generated packages (DESIGN.md 4, 5).

``GET /manager/v1/integrations/{module}/connection`` with ``Authorization: Bearer <runtime
token>`` answers the connection of that integration in the token's environment, in the JSON shape
``providers/runtime/connection.py: connection_from_manager_answer`` reads, plus ``expires_in``.
The package caches the answer until then, so an app costs the manager one request per
``expires_in`` seconds (300 for user-and-password connections).

Errors are JSON ``{"error": "<one line>"}``: 401 for a missing, unknown or revoked token; 404 when
the integration is not deployed to the token's environment; 409 when it has no (usable)
connection there, saying which integration, which environment and how to fix it. The generated
package raises 404/409 as its ``ConfigurationError``.

Each replica keeps an answer for a few seconds (``RUNTIME_CACHE_SECONDS``, see
``ConnectionService.runtime_answer``), so a burst of app starts costs the database one read:
a change made elsewhere (another replica, the CLI, a revoked token) reaches every replica within
those seconds, which is short beside the ``expires_in`` the packages keep answers for anyway.
Answers carry ``Cache-Control: no-store``: they hold credentials.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Final

from aiohttp import web

from bot.app_keys import DATABASE, SECRET_BOX, SETTINGS
from handlers.connections_service import (
    DEFAULT_EXPIRES_IN_S,
    ConnectionService,
    ConnectionServiceError,
    RuntimeLookupError,
)

log = logging.getLogger(__name__)

PREFIX: Final = "/manager/v1"
_SERVICE = web.AppKey("connection_service", ConnectionService)
_REALM: Final = 'Bearer realm="Integration Builder manager"'
_NO_STORE: Final = {"Cache-Control": "no-store"}
_STATUS: Final = {"unauthorized": 401, "not_deployed": 404, "no_connection": 409, "unusable": 409}


def manager_installer(expires_in: int = DEFAULT_EXPIRES_IN_S) -> Callable[[web.Application], None]:
    """The runtime API routes; answers without an ``expires_in`` of their own get ``expires_in``.

    Without a secret box (``create_app(..., secret_box=None)``) they answer 503, since no
    connection secret could be read.
    """

    def install(app: web.Application) -> None:
        if SECRET_BOX in app:
            app[_SERVICE] = ConnectionService(
                app[DATABASE], app[SECRET_BOX], admins=app[SETTINGS].admins, runtime_expires_in=expires_in
            )
        app.router.add_get(PREFIX + "/integrations/{module}/connection", connection)

    return install


install_manager = manager_installer()


def _error(status: int, message: str) -> web.Response:
    headers = dict(_NO_STORE)
    if status == 401:
        headers["WWW-Authenticate"] = _REALM
    return web.json_response({"error": message}, status=status, headers=headers)


def _bearer(request: web.Request) -> str | None:
    scheme, _, token = request.headers.get("Authorization", "").partition(" ")
    token = token.strip()
    return token if scheme.lower() == "bearer" and token else None


async def connection(request: web.Request) -> web.Response:
    token = _bearer(request)
    if token is None:
        return _error(
            401, "send the environment's runtime token as `Authorization: Bearer <token>` (IB_RUNTIME_TOKEN)"
        )
    service = request.app.get(_SERVICE)
    if service is None:
        return _error(503, "the Integration Manager has no secret keys configured")
    module = request.match_info["module"]
    try:
        answer = await service.runtime_answer(token, module)
    except RuntimeLookupError as refused:
        return _error(_STATUS[refused.reason], str(refused))
    except ConnectionServiceError as failure:
        # A secret that does not decrypt (a removed key) or a database failure: loud in the log,
        # one line for the app, never a value.
        log.error("runtime connection of %r failed: %s", module, failure)
        return _error(
            500, f"the Integration Manager could not read the connection of {module!r}; see its log"
        )
    return web.json_response(answer, headers=_NO_STORE)
