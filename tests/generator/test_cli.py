"""`ib generate`: what it writes and prints, regeneration from integration.json, and its errors."""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path

import pytest

from bot.cli import main

METADATA = b"""<?xml version="1.0" encoding="utf-8"?>
<edmx:Edmx Version="4.0" xmlns:edmx="http://docs.oasis-open.org/odata/ns/edmx">
  <edmx:DataServices>
    <Schema Namespace="Shop" xmlns="http://docs.oasis-open.org/odata/ns/edm">
      <EntityType Name="Product">
        <Key><PropertyRef Name="ID"/></Key>
        <Property Name="ID" Type="Edm.Int32" Nullable="false"/>
        <Property Name="Name" Type="Edm.String" MaxLength="80"/>
        <Property Name="Price" Type="Edm.Decimal" Precision="10" Scale="2"/>
        <NavigationProperty Name="category" Type="Shop.Category"/>
      </EntityType>
      <EntityType Name="Category">
        <Key><PropertyRef Name="Code"/></Key>
        <Property Name="Code" Type="Edm.String" Nullable="false"/>
      </EntityType>
      <EntityContainer Name="Container">
        <EntitySet Name="Products" EntityType="Shop.Product">
          <NavigationPropertyBinding Path="category" Target="Categories"/>
        </EntitySet>
        <EntitySet Name="Categories" EntityType="Shop.Category"/>
      </EntityContainer>
    </Schema>
  </edmx:DataServices>
</edmx:Edmx>
"""


@pytest.fixture
def metadata_file(tmp_path: Path) -> Path:
    path = tmp_path / "shop.xml"
    path.write_bytes(METADATA)
    return path


def _generate(metadata: Path, out: Path, *extra: str) -> list[str]:
    return [
        *("generate", "--provider", "sap-odata", "--metadata", str(metadata)),
        *("--objects", "Products,Categories", "--read-only", "Categories"),
        *("--app", "Shop app", "--module", "shop_app", "--out", str(out), *extra),
    ]


def test_generate_writes_the_project_and_the_wheel(
    tmp_path: Path, metadata_file: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "out"
    assert main(_generate(metadata_file, out, "--wheel", "--sdist")) == 0
    printed = capsys.readouterr().out.splitlines()
    assert str(out / "pyproject.toml") in printed and str(out / "shop_app" / "driver.py") in printed
    wheel_line, sdist_line = printed[-2:]
    wheel_path, wheel_sha = wheel_line.split(" sha256=")
    assert wheel_path == str(out / "shop_app-0.1.0-py3-none-any.whl")
    assert hashlib.sha256(Path(wheel_path).read_bytes()).hexdigest() == wheel_sha
    assert sdist_line.startswith(str(out / "shop_app-0.1.0.tar.gz"))
    spec = json.loads((out / "shop_app" / "integration.json").read_text())
    assert spec["source"] == {
        "kind": "file",
        "location": "shop.xml",
        "sha256": hashlib.sha256(METADATA).hexdigest(),
        "options": {},
    }
    assert [(o["name"], o["access"]) for o in spec["objects"]] == [
        ("Products", "read-write"),
        ("Categories", "read-only"),
    ]
    driver = (out / "shop_app" / "driver.py").read_text()
    assert "def create_product(" in driver and "def create_category(" not in driver
    assert out.stat().st_mode & 0o777 == 0o777 & ~_umask()


def _umask() -> int:
    current = os.umask(0)
    os.umask(current)
    return current


def test_regenerating_from_the_spec_gives_the_same_wheel(
    tmp_path: Path, metadata_file: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    first = tmp_path / "first"
    assert main(_generate(metadata_file, first, "--wheel")) == 0
    # an integration kept in git: the spec with its metadata file beside it
    repo = tmp_path / "repo"
    repo.mkdir()
    (repo / "integration.json").write_bytes((first / "shop_app" / "integration.json").read_bytes())
    (repo / "shop.xml").write_bytes(METADATA)
    capsys.readouterr()
    second = tmp_path / "second"
    assert main(["generate", "--spec", str(repo / "integration.json"), "--out", str(second), "--wheel"]) == 0
    wheel = "shop_app-0.1.0-py3-none-any.whl"
    assert (second / wheel).read_bytes() == (first / wheel).read_bytes()
    assert capsys.readouterr().err == ""


def test_regenerating_with_other_metadata_records_it_and_says_so(
    tmp_path: Path, metadata_file: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    first = tmp_path / "first"
    assert main(_generate(metadata_file, first)) == 0
    changed = tmp_path / "changed.xml"
    changed.write_bytes(METADATA.replace(b'MaxLength="80"', b'MaxLength="120"'))
    capsys.readouterr()
    spec_path = first / "shop_app" / "integration.json"
    second = tmp_path / "second"
    assert main(["generate", "--spec", str(spec_path), "--metadata", str(changed), "--out", str(second)]) == 0
    assert capsys.readouterr().err == "ib generate: note: the metadata changed since the spec was written\n"
    source = json.loads((second / "shop_app" / "integration.json").read_text())["source"]
    changed_sha256 = hashlib.sha256(changed.read_bytes()).hexdigest()
    assert (source["location"], source["sha256"]) == ("changed.xml", changed_sha256)
    assert "at most 120 characters" in (second / "shop_app" / "models.py").read_text()


def test_regenerating_replaces_the_old_package(tmp_path: Path, metadata_file: Path) -> None:
    out = tmp_path / "out"
    assert main(_generate(metadata_file, out)) == 0
    stale = out / "shop_app" / "stale.py"
    stale.write_text("")
    (out / "notes.txt").write_text("mine")
    assert main(_generate(metadata_file, out)) == 0
    assert not stale.exists()
    assert (out / "notes.txt").read_text() == "mine"
    assert [p.name for p in [*tmp_path.iterdir(), *out.iterdir()] if p.name.startswith(".")] == []


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (["--module", "json"], "module name 'json' would shadow a standard or required module"),
        (["--objects", "Products,Categories,Orders"], "object 'Orders' does not exist"),
        (["--read-only", "Orders"], "--read-only names 'Orders', which is not among the selected objects"),
        (["--metadata", "missing.xml"], "cannot read metadata file missing.xml"),
        (["--password-env", "IB_TEST_UNSET"], "the environment variable IB_TEST_UNSET is not set"),
        (["--provider", "nope"], "unknown provider 'nope'"),
    ],
)
def test_errors_are_one_line_and_write_nothing(
    tmp_path: Path,
    metadata_file: Path,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
    change: list[str],
    message: str,
) -> None:
    monkeypatch.delenv("IB_TEST_UNSET", raising=False)
    monkeypatch.chdir(tmp_path)
    out = tmp_path / "out"
    argv = _generate(metadata_file, out, "--wheel")
    option = argv.index(change[0]) if change[0] in argv else len(argv)
    argv[option : option + 2] = change
    assert main(argv) == 2
    captured = capsys.readouterr()
    assert captured.out == ""
    assert captured.err.startswith("ib generate: ") and captured.err.count("\n") == 1
    assert message in captured.err
    assert not out.exists()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["shop.xml"]


def test_malformed_metadata_is_refused(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    bad = tmp_path / "bad.xml"
    bad.write_bytes(b"<edmx:Edmx")
    assert main(_generate(bad, tmp_path / "out")) == 2
    error = capsys.readouterr().err
    assert error.startswith("ib generate: ") and error.count("\n") == 1
    assert not (tmp_path / "out").exists()


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["generate", "--out", "x"], "missing --provider, --metadata, --objects or --all, --app, --module"),
        (["generate", "--spec", "nope.json", "--out", "x"], "cannot read nope.json"),
    ],
)
def test_incomplete_commands(
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
    argv: list[str],
    message: str,
) -> None:
    monkeypatch.chdir(tmp_path)
    assert main(argv) == 2
    assert message in capsys.readouterr().err


def test_spec_and_choices_do_not_mix(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    spec = tmp_path / "integration.json"
    document = {"provider": "sap-odata", "application_name": "A", "module_name": "a", "objects": ["Products"]}
    spec.write_text(json.dumps(document))
    assert main(["generate", "--spec", str(spec), "--objects", "Products", "--out", str(tmp_path / "o")]) == 2
    assert "drop those options" in capsys.readouterr().err
