"""Generate typed Python packages from a provider's catalog and an integration spec.

``select`` checks a spec against a catalog, ``generate_package`` renders the package's files,
``build_wheel`` and ``build_sdist`` turn them into reproducible artifacts.
"""

from generator.build import BuiltArtifact, build_sdist, build_wheel
from generator.errors import GenerationError
from generator.package import GeneratedPackage, generate_package
from generator.selection import Selection, select

__all__ = [
    "BuiltArtifact",
    "GeneratedPackage",
    "GenerationError",
    "Selection",
    "build_sdist",
    "build_wheel",
    "generate_package",
    "select",
]
