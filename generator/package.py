"""Render a selection into the files of a pip-installable project (pyproject.toml + the package)."""

from __future__ import annotations

import dataclasses
import functools
from dataclasses import dataclass
from pathlib import Path

import jinja2

from generator.render import RenderModel, build_render_model
from generator.selection import Selection, select
from generator.spec import IntegrationSpec
from providers.model import Catalog

REQUIRES_PYTHON = ">=3.11"
BASE_REQUIREMENTS = ("httpx>=0.27,<1",)
_RUNTIME_DIR = Path(__file__).resolve().parents[1] / "providers" / "runtime"
_MODULE_TEMPLATES = {
    "__init__.py": "__init__.py.j2",
    "models.py": "models.py.j2",
    "driver.py": "driver.py.j2",
    "service.py": "service.py.j2",
    "errors.py": "errors.py.j2",
    "README.md": "README.md.j2",
}


@dataclass(frozen=True, slots=True)
class GeneratedPackage:
    """The files of one generated project, keyed by their path in it (``pyproject.toml``,
    ``README.md``, ``<module>/...``), plus what the wheel metadata needs."""

    name: str
    version: str
    summary: str
    requirements: tuple[str, ...]
    requires_python: str
    spec: IntegrationSpec  # as built: its source sha256 is the metadata's
    files: dict[str, bytes]

    def package_files(self) -> dict[str, bytes]:
        """The files of the importable package only (what a wheel holds)."""
        prefix = f"{self.name}/"
        return {path: data for path, data in self.files.items() if path.startswith(prefix)}

    @property
    def readme(self) -> str:
        return self.files["README.md"].decode("utf-8")


def _docstring(lines: list[str], indent: int) -> str:
    if len(lines) == 1:
        return f'"""{lines[0]}"""'
    pad = " " * indent
    return '"""' + f"\n{pad}".join(lines) + f"\n{pad}" + '"""'


@functools.cache
def _environment() -> jinja2.Environment:
    # No HTML escaping: the output is Python and Markdown, and every metadata text reaches it
    # already escaped for its place (see generator.pycode and generator.names.docstring_lines).
    environment = jinja2.Environment(
        loader=jinja2.PackageLoader("generator", "templates"),
        undefined=jinja2.StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
        keep_trailing_newline=True,
        autoescape=False,  # noqa: S701
    )
    environment.filters["docstring"] = _docstring
    return environment


def toml_string(value: str) -> str:
    """``value`` as a TOML basic string."""
    escaped = []
    for char in value:
        if char in '"\\':
            escaped.append("\\" + char)
        elif ord(char) < 0x20 or ord(char) == 0x7F:
            escaped.append(f"\\u{ord(char):04x}")
        else:
            escaped.append(char)
    return '"' + "".join(escaped) + '"'


def _summary(spec: IntegrationSpec) -> str:
    text = " ".join(f"{spec.application_name}: {spec.description}".split()).strip(": ")
    return text[:200] or spec.module_name


def runtime_files(selection: Selection) -> dict[str, bytes]:
    """The provider's runtime modules, copied verbatim into ``<module>/_runtime/``."""
    module = selection.spec.module_name
    files = {f"{module}/_runtime/__init__.py": b""}
    for name in sorted(set(selection.runtime.modules) | {selection.runtime.module}):
        files[f"{module}/_runtime/{name}.py"] = (_RUNTIME_DIR / f"{name}.py").read_bytes()
    return files


@dataclass(frozen=True, slots=True)
class _ProjectModel:
    """What pyproject.toml.j2 prints, as TOML literals."""

    module: str
    name: str
    version: str
    summary: str
    requires_python: str
    requirements: list[str]


def render_files(
    model: RenderModel, project: _ProjectModel, selection: Selection, spec: IntegrationSpec
) -> dict[str, bytes]:
    environment = _environment()
    module = model.module
    files: dict[str, bytes] = {}
    for filename, template in _MODULE_TEMPLATES.items():
        files[f"{module}/{filename}"] = environment.get_template(template).render(m=model).encode("utf-8")
    files[f"{module}/py.typed"] = b""
    files[f"{module}/integration.json"] = spec.to_json().encode("utf-8")
    files.update(runtime_files(selection))
    files["README.md"] = files[f"{module}/README.md"]
    files["pyproject.toml"] = environment.get_template("pyproject.toml.j2").render(p=project).encode("utf-8")
    return dict(sorted(files.items()))


def generate_package(catalog: Catalog, spec: IntegrationSpec) -> GeneratedPackage:
    """The files of the package ``spec`` describes, for the objects of ``catalog``.

    Raises :class:`generator.GenerationError` (one line) when the spec does not fit the catalog.
    """
    selection = select(catalog, spec)
    built_spec = dataclasses.replace(
        spec, source=dataclasses.replace(spec.source, sha256=catalog.source_sha256 or spec.source.sha256)
    )
    requirements = (*BASE_REQUIREMENTS, *selection.runtime.dependencies)
    summary = _summary(spec)
    project = _ProjectModel(
        module=spec.module_name,
        name=toml_string(spec.module_name),
        version=toml_string(spec.version),
        summary=toml_string(summary),
        requires_python=toml_string(REQUIRES_PYTHON),
        requirements=[toml_string(r) for r in requirements],
    )
    return GeneratedPackage(
        name=spec.module_name,
        version=spec.version,
        summary=summary,
        requirements=requirements,
        requires_python=REQUIRES_PYTHON,
        spec=built_spec,
        files=render_files(build_render_model(selection), project, selection, built_spec),
    )
