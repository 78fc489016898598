"""The layout rule of DESIGN.md section 3 and STYLE.md: handlers, the bot and the generator never
branch on a provider's name. Provider differences go through providers/base.py (the Provider
interface, DesignSignIn) or data the providers return, so a new provider is one module in
providers/ plus its tests.

Checked on the source with ``ast``: no import of a provider's own module, and no string literal
that is a registered provider's key or design-time sign-in family (comments are not in the tree,
and user-facing text says "Salesforce", not ``salesforce``).
"""

from __future__ import annotations

import ast
import copy
from collections.abc import Iterator
from pathlib import Path

import pytest
from aiohttp import web
from aiohttp.test_utils import make_mocked_request

from bot.oauth import install_oauth
from providers import base
from providers.base import all_providers, design_sign_in, get_provider

ROOT = Path(__file__).resolve().parents[1]
CHECKED = ("handlers", "bot", "generator")
# The provider modules every provider shares: the interface and registry, the neutral model,
# and the certificates the service generates for any provider that needs one.
GENERIC_PROVIDER_MODULES = frozenset({"providers.base", "providers.model", "providers.certificates"})


def provider_names() -> frozenset[str]:
    """Every registered provider's key and design-time sign-in family."""
    providers = all_providers()
    families = {sign_in.family for p in providers if (sign_in := design_sign_in(p)) is not None}
    return frozenset({p.key for p in providers} | families)


def _imported(node: ast.AST) -> Iterator[str]:
    if isinstance(node, ast.Import):
        yield from (alias.name for alias in node.names)
    elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module == "providers":
        yield from (f"providers.{alias.name}" for alias in node.names)  # from providers import x
    elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
        yield node.module


def violations(source: str, names: frozenset[str]) -> list[str]:
    """Where ``source`` imports a provider's own module or names a provider (line: what)."""
    found: list[str] = []
    for node in ast.walk(ast.parse(source)):
        line = getattr(node, "lineno", 0)
        for module in _imported(node):
            if module.partition(".")[0] == "providers" and module not in GENERIC_PROVIDER_MODULES:
                found.append(f"{line}: imports {module}")
        if isinstance(node, ast.Constant) and isinstance(node.value, str) and node.value in names:
            found.append(f"{line}: names the provider {node.value!r}")
    return sorted(found)


def checked_files() -> list[Path]:
    return sorted(path for folder in CHECKED for path in (ROOT / folder).rglob("*.py"))


def test_the_rule_is_checked_on_every_handler_bot_and_generator_module() -> None:
    files = {path.relative_to(ROOT).as_posix() for path in checked_files()}
    assert {"handlers/signin.py", "handlers/wizard.py", "bot/oauth.py", "generator/package.py"} <= files


@pytest.mark.parametrize("path", checked_files(), ids=lambda path: path.relative_to(ROOT).as_posix())
def test_no_handler_bot_or_generator_module_branches_on_a_provider(path: Path) -> None:
    assert violations(path.read_text(encoding="utf-8"), provider_names()) == []


def test_the_check_finds_provider_imports_and_names() -> None:
    names = provider_names()
    assert {"salesforce", "sharepoint", "microsoft"} <= names
    source = (
        "from providers import salesforce\n"
        "import providers.sharepoint\n"
        "from providers.microsoft import SignInClient\n"
        "from providers.base import Provider\n"
        "from providers.model import Catalog\n"
        "FAMILIES = {'dataverse': 'microsoft'}\n"
        "def f(provider):\n"
        "    return provider.key != 'salesforce'\n"
        "HELP = 'Sign in with Microsoft'\n"
    )
    assert violations(source, names) == [
        "1: imports providers.salesforce",
        "2: imports providers.sharepoint",
        "3: imports providers.microsoft",
        "6: names the provider 'dataverse'",
        "6: names the provider 'microsoft'",
        "8: names the provider 'salesforce'",
    ]


async def test_a_new_providers_sign_in_gets_its_callback_route_without_changes_outside_providers(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    builtin = get_provider("salesforce")
    sign_in = design_sign_in(builtin)
    assert sign_in is not None
    acme_sign_in = copy.copy(sign_in)
    acme_sign_in.family = "acme"
    acme = copy.copy(builtin)
    acme.key = "acme-crm"
    acme.sign_in = acme_sign_in  # type: ignore[attr-defined]  # Provider has it optionally
    monkeypatch.setitem(base._REGISTRY, acme.key, acme)
    app = web.Application()
    install_oauth(app)

    async def route(path: str) -> str | None:
        match = await app.router.resolve(make_mocked_request("GET", path))
        return None if match.http_exception is not None else match.get("provider")

    assert await route("/oauth/acme/callback") == "acme"
    assert await route("/oauth/microsoft/callback") == "microsoft"
    assert await route("/oauth/salesforce/callback") == "salesforce"
    assert await route("/oauth/nobody/callback") is None
