"""The package index of every environment: ``/envs/<env>/simple/`` (PEP 503, PEP 691) and files.

pip authenticates with HTTP basic auth ``__token__:<runtime token>``; a token opens only the
index of its own environment. The index lists every version ever deployed to the environment
(the current one and the history), so an app pinned to an older version still installs. Files
come from the database, so every replica serves the same bytes.

The generated packages' dependencies (httpx) are public: a project the index does not know is
redirected to PyPI, so ``pip install --index-url <this index> <module>`` needs no second index.
A name that is an integration of this install is never redirected, even where it is not
deployed: an app must not get a public package that happens to share an internal name.
"""

from __future__ import annotations

import base64
import binascii
from collections.abc import Callable

from aiohttp import web

from bot.app_keys import DATABASE
from generator.index import (
    HTML_CONTENT_TYPE,
    JSON_CONTENT_TYPE,
    IndexFile,
    normalize_project_name,
    project_html,
    project_json,
    projects_html,
    projects_json,
    wants_json,
)
from generator.package import REQUIRES_PYTHON
from storage import Deployments, Integrations, RuntimeTokens
from storage.models import Environment

TOKEN_USER = "__token__"  # noqa: S105 (the user name pip and twine use for token logins)
PYPI_SIMPLE_URL = "https://pypi.org/simple/"
_REALM = 'Basic realm="Integration Builder package index"'
_DEPENDENCY_INDEX = web.AppKey("dependency_index", str)


def index_installer(dependency_index: str | None = PYPI_SIMPLE_URL) -> Callable[[web.Application], None]:
    """The index routes; projects it does not know go to ``dependency_index`` (None: 404)."""

    def install(app: web.Application) -> None:
        if dependency_index:
            app[_DEPENDENCY_INDEX] = dependency_index.rstrip("/") + "/"
        app.router.add_get("/envs/{env}/simple", _add_slash)
        app.router.add_get("/envs/{env}/simple/", projects)
        app.router.add_get("/envs/{env}/simple/{project}", _add_slash)
        app.router.add_get("/envs/{env}/simple/{project}/", project)
        app.router.add_get("/envs/{env}/files/{filename}", download)

    return install


install_index = index_installer()


def _token(authorization: str) -> str | None:
    scheme, _, encoded = authorization.partition(" ")
    if scheme.lower() != "basic":
        return None
    try:
        decoded = base64.b64decode(encoded.strip(), validate=True).decode("utf-8")
    except (binascii.Error, UnicodeDecodeError):
        return None
    user, separator, token = decoded.partition(":")
    return token if separator and user == TOKEN_USER and token else None


async def _environment(request: web.Request) -> Environment:
    """The environment of the URL if the request carries a live runtime token of it; else 401."""
    token = _token(request.headers.get("Authorization", ""))
    if token is not None:
        async with request.app[DATABASE].session() as session:
            found = await RuntimeTokens(session).verify(token)
        # Unknown environments answer like forbidden ones, so the index reveals no names.
        if found is not None and found.environment.name == request.match_info["env"]:
            return found.environment
    raise web.HTTPUnauthorized(
        headers={"WWW-Authenticate": _REALM},
        text=f"log in as {TOKEN_USER} with a runtime token of this environment (`ib env token create`)\n",
    )


def _negotiated(request: web.Request, html_page: str, json_page: str) -> web.Response:
    if wants_json(request.headers.get("Accept", "")):
        response = web.Response(text=json_page, content_type=JSON_CONTENT_TYPE)
    else:
        response = web.Response(text=html_page, content_type=HTML_CONTENT_TYPE)
    response.headers["Vary"] = "Accept, Authorization"
    return response


async def _add_slash(request: web.Request) -> web.Response:
    await _environment(request)
    raise web.HTTPMovedPermanently(request.path + "/")


async def projects(request: web.Request) -> web.Response:
    environment = await _environment(request)
    async with request.app[DATABASE].session() as session:
        names = [integration.module_name for integration in await Deployments(session).served(environment)]
    return _negotiated(request, projects_html(names), projects_json(names))


async def project(request: web.Request) -> web.Response:
    environment = await _environment(request)
    requested = request.match_info["project"]
    normalized = normalize_project_name(requested)
    if requested != normalized:
        raise web.HTTPMovedPermanently(f"../{normalized}/")
    # Module names are lowercase identifiers: the normalized name maps back to exactly one.
    module = normalized.replace("-", "_")
    async with request.app[DATABASE].session() as session:
        versions = await Deployments(session).served_versions(environment, module)
        internal = bool(versions) or bool(await Integrations(session).teams(module))
    if not versions:
        dependency_index = request.app.get(_DEPENDENCY_INDEX)
        if internal or dependency_index is None:
            raise web.HTTPNotFound(text=f"{normalized} is not deployed to {environment.name}\n")
        raise web.HTTPFound(f"{dependency_index}{normalized}/")
    files = [IndexFile(v.wheel_filename, v.sha256, REQUIRES_PYTHON) for v in versions]
    files += [
        IndexFile(v.sdist_filename, v.sdist_sha256, REQUIRES_PYTHON)
        for v in versions
        if v.sdist_filename is not None and v.sdist_sha256 is not None
    ]
    return _negotiated(request, project_html(module, files), project_json(module, files))


async def download(request: web.Request) -> web.Response:
    environment = await _environment(request)
    filename = request.match_info["filename"]
    async with request.app[DATABASE].session() as session:
        data = await Deployments(session).served_file(environment, filename)
    if data is None:
        raise web.HTTPNotFound(text=f"no file {filename} in the {environment.name} index\n")
    return web.Response(
        body=data,
        content_type="application/gzip" if filename.endswith(".tar.gz") else "application/zip",
        headers={
            "Content-Disposition": f'attachment; filename="{filename}"',
            # Versions are immutable: a file never changes under its name.
            "Cache-Control": "private, max-age=31536000, immutable",
        },
    )
