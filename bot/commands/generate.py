"""`ib generate`: metadata + choices (or an integration.json kept in git) -> package files and wheel.

Everything is generated and built in memory first; only then are the files written, into a
staging directory beside ``--out`` that is moved into place, so a failure leaves nothing behind.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import io
import os
import shutil
import sys
import tempfile
import zipfile
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

from bot.commands import CommandError
from generator import GenerationError, build_sdist, build_wheel, generate_package
from generator.build import BuiltArtifact
from generator.spec import IntegrationSpec, ObjectSelection, SourceRef, SpecError
from providers.base import MetadataSource, Provider, ProviderError, complete_catalog, get_provider
from providers.model import Catalog

ALLOW_PRIVATE_ENV = "IB_ALLOW_PRIVATE_URLS"


def register(sub: Any) -> None:
    parser: argparse.ArgumentParser = sub.add_parser(
        "generate",
        help="generate an integration package from metadata or from an integration.json",
        description="Generate a typed Python package for the chosen objects; with --wheel/--sdist also "
        "build it. Either give --provider, --metadata, the objects and the names, or --spec.",
    )
    parser.add_argument("--spec", type=Path, help="regenerate from this integration.json")
    parser.add_argument("--provider", help="provider key, e.g. sap-odata")
    parser.add_argument(
        "--metadata",
        help="metadata file, folder (read like a .zip of its files, for providers that take archives) or "
        "URL (with --spec: instead of the spec's source)",
    )
    parser.add_argument("--user", help="user for a metadata URL behind basic auth")
    parser.add_argument(
        "--password-env", metavar="VAR", help="environment variable holding the password for --user"
    )
    parser.add_argument("--odata-version", choices=("2.0", "4.0"), help="when the metadata does not say")
    selection = parser.add_mutually_exclusive_group()
    selection.add_argument("--objects", help="comma-separated object names (entity sets, tables, ...)")
    selection.add_argument("--all", action="store_true", help="every object in the metadata")
    parser.add_argument("--read-only", help="comma-separated objects that get read actions only")
    parser.add_argument("--app", help="application name")
    parser.add_argument("--module", help="Python module and distribution name, e.g. sales_orders")
    parser.add_argument("--description", default="", help="one-paragraph description")
    parser.add_argument("--out", type=Path, required=True, help="directory to write the project into")
    parser.add_argument("--wheel", action="store_true", help="also build the wheel into --out")
    parser.add_argument("--sdist", action="store_true", help="also build the sdist into --out")
    parser.add_argument(
        "--allow-private-urls",
        action="store_true",
        help=f"let --metadata reach private or loopback addresses (like {ALLOW_PRIVATE_ENV}=1)",
    )
    parser.set_defaults(handler=run_generate)


def run_generate(args: argparse.Namespace) -> int:
    spec_file: Path | None = args.spec
    base_spec = _read_spec(spec_file) if spec_file else None
    if base_spec is None:
        _require_choices(args)
    elif any((args.provider, args.objects, args.all, args.read_only, args.app, args.module)):
        raise CommandError("--spec already names the provider, objects and module; drop those options")
    provider_key = base_spec.provider if base_spec else args.provider
    source, source_ref = _metadata_source(args, _password(args), base_spec, spec_file)
    wanted: list[str] | None = None  # --all: every object
    if base_spec is not None:
        wanted = [o.name for o in base_spec.objects]
    elif not args.all:
        wanted = _names(args.objects)
    catalog = _discover(provider_key, source, args.allow_private_urls, wanted)
    if base_spec is None:
        spec = _spec_from_arguments(args, catalog, source_ref)
    else:
        spec = base_spec
        recorded = base_spec.source.sha256
        if recorded and catalog.source_sha256 and recorded != catalog.source_sha256:
            print("ib generate: note: the metadata changed since the spec was written", file=sys.stderr)
        spec.source = source_ref
    builders = [build for wanted, build in ((args.wheel, build_wheel), (args.sdist, build_sdist)) if wanted]
    try:
        package = generate_package(catalog, spec)
        artifacts = [build(package) for build in builders]
    except GenerationError as exc:
        raise CommandError(str(exc)) from None
    written = _write(args.out, package.files, artifacts)
    for path in written:
        print(path)
    for artifact in artifacts:
        print(f"{args.out / artifact.filename} sha256={artifact.sha256}")
    return 0


def _read_spec(path: Path) -> IntegrationSpec:
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise CommandError(f"cannot read {path}: {getattr(exc, 'strerror', None) or exc}") from None
    try:
        return IntegrationSpec.from_json(text)
    except SpecError as exc:
        raise CommandError(f"{path}: {exc}") from None


def _require_choices(args: argparse.Namespace) -> None:
    missing = [
        option
        for option, value in (
            ("--provider", args.provider),
            ("--metadata", args.metadata),
            ("--objects or --all", args.objects or args.all),
            ("--app", args.app),
            ("--module", args.module),
        )
        if not value
    ]
    if missing:
        raise CommandError(f"missing {', '.join(missing)} (or give --spec integration.json)")


def _names(text: str | None) -> list[str]:
    return [name.strip() for name in (text or "").split(",") if name.strip()]


def _password(args: argparse.Namespace) -> str | None:
    if not args.password_env:
        return None
    password = os.environ.get(args.password_env)
    if password is None:
        raise CommandError(f"--password-env: the environment variable {args.password_env} is not set")
    return password


def _public_location(url: str) -> str:
    """The URL without any user:password part, for the spec (which must never hold credentials)."""
    parts = urlsplit(url)
    host = parts.netloc.rsplit("@", 1)[-1]
    return urlunsplit((parts.scheme, host, parts.path, parts.query, ""))


def _metadata_source(
    args: argparse.Namespace, password: str | None, spec: IntegrationSpec | None, spec_file: Path | None
) -> tuple[MetadataSource, SourceRef]:
    options = dict(spec.source.options) if spec and not args.metadata else {}
    if args.odata_version:
        options["odata_version"] = args.odata_version
    if args.metadata:
        location, kind = args.metadata, "url" if _is_url(args.metadata) else "file"
        path = Path(location)
    elif spec is not None and spec.source.kind in ("url", "file") and spec.source.location:
        location, kind = spec.source.location, spec.source.kind
        path = (spec_file.parent if spec_file else Path()) / location
    else:
        raise CommandError("the spec does not say where its metadata came from: give --metadata FILE|URL")
    if kind == "url":
        source = MetadataSource(
            kind="url", location=location, user=args.user, password=password, options=options
        )
        return source, SourceRef(kind="url", location=_public_location(location), options=options)
    try:
        data = _folder_archive(path) if path.is_dir() else path.read_bytes()
    except OSError as exc:
        raise CommandError(f"cannot read metadata file {path}: {exc.strerror or exc}") from None
    source = MetadataSource(kind="file", location=path.name, data=data, options=options)
    return source, SourceRef(kind="file", location=path.name, options=options)


def _folder_archive(folder: Path) -> bytes:
    """The files of ``folder`` (and its subfolders) as an uncompressed .zip: a provider that reads
    archives (Salesforce's saved describes) then reads a folder exactly like the .zip of it. Fixed
    timestamps keep the bytes (and the spec's sha256) the same while the files are."""
    files = sorted(p for p in folder.rglob("*") if p.is_file() and not p.name.startswith("."))
    if not files:
        raise CommandError(f"the metadata folder {folder} holds no files")
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_STORED) as archive:
        for path in files:
            member = zipfile.ZipInfo(path.relative_to(folder).as_posix(), date_time=(1980, 1, 1, 0, 0, 0))
            archive.writestr(member, path.read_bytes())
    return buffer.getvalue()


def _is_url(text: str) -> bool:
    return text.lower().startswith(("http://", "https://"))


@contextlib.contextmanager
def _private_urls_allowed(allowed: bool) -> Iterator[None]:
    """Providers read the private-address switch from the environment; set it for this call only."""
    if not allowed:
        yield
        return
    previous = os.environ.get(ALLOW_PRIVATE_ENV)
    os.environ[ALLOW_PRIVATE_ENV] = "1"
    try:
        yield
    finally:
        if previous is None:
            del os.environ[ALLOW_PRIVATE_ENV]
        else:
            os.environ[ALLOW_PRIVATE_ENV] = previous


def _discover(
    provider_key: str, source: MetadataSource, allow_private: bool, wanted: Sequence[str] | None
) -> Catalog:
    """The catalog, with the ``wanted`` objects (None: all) described where it only lists them."""

    async def read(provider: Provider) -> Catalog:
        catalog = await provider.discover(source)
        names = catalog.object_names() if wanted is None else wanted
        return await complete_catalog(provider, catalog, source, names)

    try:
        provider = get_provider(provider_key)
        with _private_urls_allowed(allow_private):
            return asyncio.run(read(provider))
    except ProviderError as exc:
        raise CommandError(str(exc)) from None


def _spec_from_arguments(args: argparse.Namespace, catalog: Catalog, source: SourceRef) -> IntegrationSpec:
    selected = catalog.object_names() if args.all else _names(args.objects)
    if not selected:
        raise CommandError("--objects names no object")
    read_only = _names(args.read_only)
    stray = [name for name in read_only if name not in selected]
    if stray:
        raise CommandError(f"--read-only names {stray[0]!r}, which is not among the selected objects")
    return IntegrationSpec(
        provider=catalog.provider,
        application_name=args.app,
        module_name=args.module,
        description=args.description,
        objects=[
            ObjectSelection(name=name, access="read-only" if name in read_only else "read-write")
            for name in selected
        ],
        source=source,
    )


def _write(out: Path, files: dict[str, bytes], artifacts: list[BuiltArtifact]) -> list[Path]:
    """Write into a staging directory beside ``out``, then move each top-level entry into place."""
    if out.exists() and not out.is_dir():
        raise CommandError(f"cannot write to {out}: it is not a directory")
    # Stage on the same file system as the target, so the final moves are renames.
    staging_parent = out if out.is_dir() else out.resolve().parent
    if not staging_parent.is_dir():
        raise CommandError(f"cannot write to {out}: {staging_parent} does not exist")
    everything = dict(files) | {artifact.filename: artifact.data for artifact in artifacts}
    try:
        staging = Path(tempfile.mkdtemp(prefix=".ib-generate-", dir=staging_parent))
    except OSError as exc:
        raise CommandError(f"cannot write to {out}: {exc.strerror or exc}") from None
    tree = staging / "tree"  # mkdtemp's directory is private (0700); this one follows the umask
    try:
        for relative, data in everything.items():
            target = tree / relative
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_bytes(data)
        if out.exists():
            for entry in sorted(tree.iterdir()):
                _replace(entry, out / entry.name)
        else:
            tree.rename(out)
    except OSError as exc:
        raise CommandError(f"cannot write to {out}: {exc.strerror or exc}") from None
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return [out / relative for relative in files]


def _replace(source: Path, target: Path) -> None:
    if target.is_dir() and not target.is_symlink():
        old = target.with_name(f".{target.name}.old")
        shutil.rmtree(old, ignore_errors=True)
        target.rename(old)
        source.rename(target)
        shutil.rmtree(old, ignore_errors=True)
    else:
        os.replace(source, target)
