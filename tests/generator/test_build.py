"""Wheels and sdists: valid, installable with pip, rebuildable, and the same bytes every time."""

from __future__ import annotations

import base64
import csv
import hashlib
import io
import subprocess
import sys
import tarfile
import tomllib
import zipfile
from pathlib import Path

import httpx
import pytest

from generator import BuiltArtifact, GeneratedPackage, build_sdist, build_wheel, generate_package
from tests.fixtures.generated import shop_catalog, shop_spec


def _package(version: str = "0.1.0") -> GeneratedPackage:
    spec = shop_spec()
    spec.version = version
    return generate_package(shop_catalog(), spec)


@pytest.fixture(scope="module")
def wheel() -> BuiltArtifact:
    return build_wheel(_package())


@pytest.fixture(scope="module")
def sdist() -> BuiltArtifact:
    return build_sdist(_package())


def test_wheel_layout_and_metadata(wheel: BuiltArtifact) -> None:
    assert wheel.filename == "shop-0.1.0-py3-none-any.whl"
    assert wheel.sha256 == hashlib.sha256(wheel.data).hexdigest()
    with zipfile.ZipFile(io.BytesIO(wheel.data)) as archive:
        names = archive.namelist()
        assert "shop/driver.py" in names and "shop/_runtime/odata.py" in names and "shop/py.typed" in names
        assert not [n for n in names if not n.startswith(("shop/", "shop-0.1.0.dist-info/"))]
        metadata = archive.read("shop-0.1.0.dist-info/METADATA").decode()
        wheel_file = archive.read("shop-0.1.0.dist-info/WHEEL").decode()
        top_level = archive.read("shop-0.1.0.dist-info/top_level.txt").decode()
        assert {(info.date_time, info.external_attr >> 16) for info in archive.infolist()} == {
            ((1980, 1, 1, 0, 0, 0), 0o100644)
        }
    headers, _, description = metadata.partition("\n\n")
    assert headers.splitlines() == [
        "Metadata-Version: 2.1",
        "Name: shop",
        "Version: 0.1.0",
        "Summary: Shop: The shop's catalog.",
        "Requires-Python: >=3.11",
        "Requires-Dist: httpx>=0.27,<1",
        "Description-Content-Type: text/markdown",
    ]
    assert description.startswith("# Shop")
    assert "Root-Is-Purelib: true" in wheel_file and "Tag: py3-none-any" in wheel_file
    assert top_level == "shop\n"


def test_wheel_record_lists_every_file_with_its_hash(wheel: BuiltArtifact) -> None:
    with zipfile.ZipFile(io.BytesIO(wheel.data)) as archive:
        rows = list(csv.reader(io.StringIO(archive.read("shop-0.1.0.dist-info/RECORD").decode())))
        assert [row[0] for row in rows] == archive.namelist()
        for path, digest, size in rows[:-1]:
            data = archive.read(path)
            expected = base64.urlsafe_b64encode(hashlib.sha256(data).digest()).rstrip(b"=").decode()
            assert (digest, size) == (f"sha256={expected}", str(len(data))), path
    assert rows[-1] == ["shop-0.1.0.dist-info/RECORD", "", ""]


def test_builds_are_reproducible(wheel: BuiltArtifact, sdist: BuiltArtifact) -> None:
    assert build_wheel(_package()).sha256 == wheel.sha256
    assert build_sdist(_package()).sha256 == sdist.sha256
    assert build_wheel(_package("0.2.0")).sha256 != wheel.sha256


def test_sdist_holds_the_project_with_fixed_owners_and_times(sdist: BuiltArtifact) -> None:
    assert sdist.filename == "shop-0.1.0.tar.gz"
    assert sdist.data[:2] == b"\x1f\x8b" and sdist.data[4:8] == b"\0\0\0\0"  # gzip header: no timestamp
    with tarfile.open(fileobj=io.BytesIO(sdist.data), mode="r:gz") as archive:
        members = archive.getmembers()
        names = [m.name for m in members]
        assert names == sorted(names)
        assert {"shop-0.1.0/pyproject.toml", "shop-0.1.0/PKG-INFO", "shop-0.1.0/README.md"} <= set(names)
        assert "shop-0.1.0/shop/_runtime/records.py" in names
        assert {(m.mtime, m.uid, m.gid, m.uname, m.gname, m.mode) for m in members} == {
            (315532800, 0, 0, "", "", 0o644)
        }
        pyproject_file = archive.extractfile("shop-0.1.0/pyproject.toml")
        assert pyproject_file is not None
        pyproject = tomllib.loads(pyproject_file.read().decode())
    assert pyproject["project"]["name"] == "shop"
    assert pyproject["project"]["dependencies"] == ["httpx>=0.27,<1"]
    assert pyproject["tool"]["setuptools"]["packages"] == ["shop", "shop._runtime"]


def _run(*command: str | Path, cwd: Path | None = None) -> str:
    result = subprocess.run([str(c) for c in command], capture_output=True, text=True, cwd=cwd, check=False)
    assert result.returncode == 0, result.stdout + result.stderr
    return result.stdout


def _fresh_venv(directory: Path) -> Path:
    """A venv without pip (fast to make); pip from this environment installs into it."""
    _run(sys.executable, "-m", "venv", "--without-pip", directory)
    return directory / "bin" / "python"


@pytest.mark.slow
def test_wheel_installs_with_pip_and_imports(tmp_path: Path, wheel: BuiltArtifact) -> None:
    wheel_path = tmp_path / wheel.filename
    wheel_path.write_bytes(wheel.data)
    python = _fresh_venv(tmp_path / "venv")
    _run(sys.executable, "-m", "pip", "--python", python, "install", "--no-index", "--no-deps", wheel_path)
    # httpx (the one dependency) comes from this environment, after the venv's own site-packages
    site_packages = next((tmp_path / "venv" / "lib").glob("python3.*/site-packages"))
    httpx_home = Path(httpx.__file__).parents[1]
    (site_packages / "zz_test_dependencies.pth").write_text(f"{httpx_home}\n")
    output = _run(
        python,
        "-c",
        "import importlib.metadata as m, shop, shop.service, shop.driver;"
        "print(shop.__file__); print(m.version('shop')); print(m.requires('shop'))",
        cwd=tmp_path,
    )
    location, version, requires = output.splitlines()
    assert location == str(site_packages / "shop" / "__init__.py")
    assert version == "0.1.0" and requires == "['httpx>=0.27,<1']"


@pytest.mark.slow
def test_sdist_rebuilds_into_the_same_package(
    tmp_path: Path, sdist: BuiltArtifact, wheel: BuiltArtifact
) -> None:
    sdist_path = tmp_path / sdist.filename
    sdist_path.write_bytes(sdist.data)
    _run(
        sys.executable, "-m", "pip", "wheel", "--no-index", "--no-deps", "--no-build-isolation",
        "--wheel-dir", tmp_path / "rebuilt", sdist_path,
    )
    (rebuilt_path,) = (tmp_path / "rebuilt").glob("shop-0.1.0-*.whl")
    with zipfile.ZipFile(rebuilt_path) as rebuilt, zipfile.ZipFile(io.BytesIO(wheel.data)) as ours:
        package_files = [n for n in ours.namelist() if n.startswith("shop/")]
        assert sorted(n for n in rebuilt.namelist() if n.startswith("shop/")) == sorted(package_files)
        for name in package_files:
            assert rebuilt.read(name) == ours.read(name), name
