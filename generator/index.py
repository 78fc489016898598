"""The pages of an environment's package index: PEP 503 HTML and PEP 691 JSON, as pure functions.

``bot/index.py`` serves them (with authentication and the files); here they are only written.
Links are relative to the page (``../../files/<filename>``), so the index works behind any
prefix or host name a proxy gives it.
"""

from __future__ import annotations

import html
import json
import re
from collections.abc import Sequence
from dataclasses import dataclass

HTML_CONTENT_TYPE = "text/html"
JSON_CONTENT_TYPE = "application/vnd.pypi.simple.v1+json"
API_VERSION = "1.0"
_SEPARATORS = re.compile(r"[-_.]+")


def normalize_project_name(name: str) -> str:
    """PEP 503 normalisation: lowercase, runs of ``-``, ``_`` and ``.`` become one ``-``."""
    return _SEPARATORS.sub("-", name).lower()


@dataclass(frozen=True, slots=True)
class IndexFile:
    """One downloadable file of a project (a wheel or an sdist)."""

    filename: str
    sha256: str
    requires_python: str


def file_url(filename: str) -> str:
    """Where a project page links ``filename`` (relative to ``.../simple/<project>/``)."""
    return f"../../files/{filename}"


def _page(title: str, links: list[str]) -> str:
    body = "\n".join(f"    {link}<br>" for link in links)
    return (
        "<!DOCTYPE html>\n<html>\n  <head>\n"
        f'    <meta name="pypi:repository-version" content="{API_VERSION}">\n'
        f"    <title>{html.escape(title)}</title>\n  </head>\n  <body>\n"
        f"{body}\n  </body>\n</html>\n"
    )


def projects_html(projects: Sequence[str]) -> str:
    """The root page: one link per project."""
    links = [
        f'<a href="{html.escape(normalize_project_name(name))}/">{html.escape(name)}</a>' for name in projects
    ]
    return _page("Simple index", links)


def projects_json(projects: Sequence[str]) -> str:
    return json.dumps(
        {"meta": {"api-version": API_VERSION}, "projects": [{"name": name} for name in projects]}
    )


def project_html(project: str, files: Sequence[IndexFile]) -> str:
    """A project page: every file with its sha256 in the fragment and its Python requirement."""
    links = [
        f'<a href="{html.escape(file_url(item.filename))}#sha256={item.sha256}" '
        f'data-requires-python="{html.escape(item.requires_python)}">{html.escape(item.filename)}</a>'
        for item in files
    ]
    return _page(f"Links for {project}", links)


def project_json(project: str, files: Sequence[IndexFile]) -> str:
    return json.dumps(
        {
            "meta": {"api-version": API_VERSION},
            "name": normalize_project_name(project),
            "files": [
                {
                    "filename": item.filename,
                    "url": file_url(item.filename),
                    "hashes": {"sha256": item.sha256},
                    "requires-python": item.requires_python,
                }
                for item in files
            ],
        }
    )


def wants_json(accept: str) -> bool:
    """Whether the ``Accept`` header prefers PEP 691 JSON over HTML (pip sends both, JSON first)."""
    best_json = best_html = -1.0
    for entry in accept.split(","):
        media, *parameters = (part.strip() for part in entry.split(";"))
        quality = 1.0
        for parameter in parameters:
            key, _, value = parameter.partition("=")
            if key.strip() == "q":
                try:
                    quality = float(value)
                except ValueError:
                    quality = 0.0
        media = media.lower()
        if media in (JSON_CONTENT_TYPE, "application/vnd.pypi.simple.latest+json"):
            best_json = max(best_json, quality)
        elif media in (
            "application/vnd.pypi.simple.v1+html",
            "application/vnd.pypi.simple.latest+html",
            "text/html",
            "text/*",
            "*/*",
        ):
            best_html = max(best_html, quality)
    return best_json > 0 and best_json > best_html
