"""Wheel and sdist bytes for a generated package, built in-process and reproducibly.

The same package files give the same bytes (and sha256) every time: entries are sorted, and
timestamps, permissions and owners are fixed.
"""

from __future__ import annotations

import base64
import gzip
import hashlib
import io
import tarfile
import unicodedata
import zipfile
from dataclasses import dataclass

from generator.package import GeneratedPackage

GENERATOR = "integration-builder"
_ZIP_TIMESTAMP = (1980, 1, 1, 0, 0, 0)
_TAR_MTIME = 315532800  # 1980-01-01T00:00:00Z, the earliest time a zip entry can carry
_FILE_MODE = 0o644


@dataclass(frozen=True, slots=True)
class BuiltArtifact:
    filename: str
    data: bytes
    sha256: str


def _artifact(filename: str, data: bytes) -> BuiltArtifact:
    return BuiltArtifact(filename=filename, data=data, sha256=hashlib.sha256(data).hexdigest())


def _header_value(text: str) -> str:
    return "".join(" " if unicodedata.category(ch) == "Cc" else ch for ch in text)


def core_metadata(package: GeneratedPackage) -> str:
    """The METADATA / PKG-INFO document (core metadata 2.1, README as the long description)."""
    headers = [
        ("Metadata-Version", "2.1"),
        ("Name", package.name),
        ("Version", package.version),
        ("Summary", _header_value(package.summary)),
        ("Requires-Python", package.requires_python),
        *(("Requires-Dist", requirement) for requirement in package.requirements),
        ("Description-Content-Type", "text/markdown"),
    ]
    return "".join(f"{key}: {value}\n" for key, value in headers) + "\n" + package.readme


def _record_hash(data: bytes) -> str:
    digest = base64.urlsafe_b64encode(hashlib.sha256(data).digest()).rstrip(b"=").decode("ascii")
    return f"sha256={digest}"


def wheel_filename(package: GeneratedPackage) -> str:
    return f"{package.name}-{package.version}-py3-none-any.whl"


def build_wheel(package: GeneratedPackage) -> BuiltArtifact:
    """A pure-Python ``py3-none-any`` wheel of the package."""
    dist_info = f"{package.name}-{package.version}.dist-info"
    entries = dict(sorted(package.package_files().items()))
    entries[f"{dist_info}/METADATA"] = core_metadata(package).encode("utf-8")
    entries[f"{dist_info}/WHEEL"] = (
        f"Wheel-Version: 1.0\nGenerator: {GENERATOR}\nRoot-Is-Purelib: true\nTag: py3-none-any\n"
    ).encode("ascii")
    entries[f"{dist_info}/top_level.txt"] = f"{package.name}\n".encode("ascii")
    record_path = f"{dist_info}/RECORD"
    record = "".join(f"{path},{_record_hash(data)},{len(data)}\n" for path, data in entries.items())
    entries[record_path] = (record + f"{record_path},,\n").encode("utf-8")

    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        for path, data in entries.items():
            info = zipfile.ZipInfo(path, date_time=_ZIP_TIMESTAMP)
            info.create_system = 3  # Unix, so the permission bits below are honoured
            info.external_attr = (0o100000 | _FILE_MODE) << 16
            info.compress_type = zipfile.ZIP_DEFLATED
            archive.writestr(info, data, compresslevel=9)
    return _artifact(wheel_filename(package), buffer.getvalue())


def build_sdist(package: GeneratedPackage) -> BuiltArtifact:
    """A source distribution: the project files plus PKG-INFO, rebuildable with ``pip wheel``."""
    base = f"{package.name}-{package.version}"
    entries = dict(package.files)
    entries["PKG-INFO"] = core_metadata(package).encode("utf-8")
    buffer = io.BytesIO()
    with gzip.GzipFile(filename="", mode="wb", fileobj=buffer, mtime=0, compresslevel=9) as compressed:
        with tarfile.open(fileobj=compressed, mode="w", format=tarfile.PAX_FORMAT) as archive:
            for path in sorted(entries):
                data = entries[path]
                info = tarfile.TarInfo(f"{base}/{path}")
                info.size = len(data)
                info.mtime = _TAR_MTIME
                info.mode = _FILE_MODE
                info.uid = info.gid = 0
                info.uname = info.gname = ""
                archive.addfile(info, io.BytesIO(data))
    return _artifact(f"{base}.tar.gz", buffer.getvalue())
