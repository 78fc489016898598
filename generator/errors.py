"""The generator's one exception: a spec that cannot be applied to a catalog."""

from __future__ import annotations


class GenerationError(ValueError):
    """The spec does not fit the catalog or names something invalid; ``str()`` is one line, safe to show."""
