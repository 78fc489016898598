"""Run-time support shipped inside every generated package as its ``_runtime`` subpackage.

The modules here are copied verbatim into generated packages, so they import only each other
(relatively), the standard library and httpx, and they pass ``mypy --strict``.
"""
