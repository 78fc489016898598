"""Saved describe payloads -> catalog -> a generated package that compiles, lints and type-checks."""

from __future__ import annotations

import asyncio
import io
import json
import zipfile
from pathlib import Path
from typing import Any

import pytest

from bot.cli import main
from generator import generate_package
from generator.spec import IntegrationSpec, ObjectSelection
from providers import base
from providers.base import MetadataError
from providers.model import Catalog, ValueType
from tests.fixtures.generated import imported, mypy_problems, ruff_problems, write_package
from tests.fixtures.salesforce import (
    account_describe,
    audit_event_describe,
    corpus_describes,
    file_source,
    org_describes,
    sf_field,
    sobject_describe,
)


def _discover(payload: Any, name: str = "describes.json") -> Catalog:
    return asyncio.run(base.get_provider("salesforce").discover(file_source(payload, name)))


def test_the_corpus_describe_becomes_typed_attributes() -> None:
    whizbang, _ = corpus_describes()
    catalog = _discover(whizbang, "sobject_describe_Whizbang.json")
    obj = catalog.object("Whizbang")
    types = {a.name: (a.type, a.wire_type) for a in obj.attributes}
    assert types["Id"] == (ValueType.STRING, "id")
    assert types["Currency_Field"] == (ValueType.DECIMAL, "currency")
    assert types["Percent_Field"] == (ValueType.DECIMAL, "percent")
    assert types["Number_Field"] == (ValueType.FLOAT, "double")
    assert types["Date_Field"] == (ValueType.DATE, "date")
    assert types["DateTime_Field"] == (ValueType.DATETIME, "datetime")
    assert types["Checkbox_Field"] == (ValueType.BOOLEAN, "boolean")
    assert {types[name][0] for name in ("Email_Field", "Phone_Field", "URL_Field")} == {ValueType.STRING}
    assert obj.keys == (obj.attribute("Id"),)
    picklist = obj.attribute("Picklist_Field")
    assert picklist.type is ValueType.ENUM and picklist.enum is not None
    assert [m.value for m in picklist.enum.members][:3] == ["one", "two", "three"]
    multi = obj.attribute("Picklist_Multiselect_Field")
    assert (
        multi.collection
        and multi.enum is not None
        and [m.value for m in multi.enum.members] == ["four", "five", "six"]
    )
    parent = obj.attribute("ParentWhizbang__c")
    assert parent.type is ValueType.STRING and "Id of Whizbang" in parent.label
    assert "Id of Group or User" in obj.attribute("OwnerId").label
    assert obj.attribute("Id").read_only and obj.attribute("CreatedDate").read_only
    created_only = obj.attribute("CreateableButNotUpdateableField")
    assert (created_only.creatable, created_only.updatable) == (True, False)
    updated_only = obj.attribute("UpdateableButNotCreateableField")
    assert (updated_only.creatable, updated_only.updatable) == (False, True)
    assert obj.attribute("Name").max_length == 80 and not obj.attribute("Id").nullable
    assert not obj.attribute("TextAreaLong_Field").filterable
    assert obj.group == "Custom objects" and obj.label == "Whizbang"
    assert catalog.runtime == {"api_version": "62.0"} and len(catalog.source_sha256) == 64


def test_hand_built_types_cover_what_the_corpus_lacks() -> None:
    obj = _discover(account_describe()).object("Account")
    types = {a.name: a.type for a in obj.attributes}
    assert types["NumberOfEmployees"] is ValueType.INTEGER
    assert types["Opens_At__c"] is ValueType.TIME
    assert types["Logo__c"] is ValueType.BINARY
    assert types["BillingAddress"] is ValueType.JSON
    assert obj.attribute("AnnualRevenue").precision == 18 and obj.attribute("AnnualRevenue").scale == 2


def test_capabilities_decide_the_generated_actions(tmp_path: Path) -> None:
    describes = [account_describe(), audit_event_describe()]
    catalog = _discover(describes)
    spec = IntegrationSpec(
        provider="salesforce",
        application_name="Capabilities",
        module_name="sf_capabilities",
        objects=[ObjectSelection("Account"), ObjectSelection("Audit_Event__e")],
    )
    directory = write_package(generate_package(catalog, spec), tmp_path)
    with imported(tmp_path, directory.name) as package:
        verbs = {"search", "count", "iter", "get", "create", "update", "delete"}
        actions = sorted(
            n for n in vars(package.driver) if n.split("_")[0] in verbs and not n.endswith("_async")
        )
    # sObject names are singular, so every action takes the object's name; an object the user
    # cannot query (Audit_Event__e) gets no search, count or get
    assert actions == [
        "count_account",
        "create_account",
        "create_audit_event_e",
        "delete_account",
        "get_account",
        "iter_account",
        "search_account",
        "update_account",
    ]


def test_describe_global_orders_the_objects_of_a_json_array_and_a_zip() -> None:
    describes, describe_global = org_describes()
    from_array = _discover([*describes, describe_global])
    archive = io.BytesIO()
    with zipfile.ZipFile(archive, "w") as zipped:
        zipped.writestr("describe_global.json", json.dumps(describe_global))
        for describe in describes:
            zipped.writestr(f"sobjects/{describe['name']}.json", json.dumps(describe))
        zipped.writestr("README.txt", "ignored")
    from_zip = _discover(archive.getvalue(), "org.zip")
    # Account is listed in describe-global; the others follow by name
    assert from_array.object_names() == ["Account", "Audit_Event__e", "User", "Whizbang"]
    assert from_zip.object_names() == from_array.object_names()


@pytest.mark.parametrize(
    ("payload", "message"),
    [
        (b"", "is empty"),
        (b"{not json", "is not valid JSON"),
        (b'{"hello": "world"}', "neither an sObject describe nor describe-global"),
        (b'{"sobjects": [{"name": "Account"}]}', "describe-global lists 1 objects but no object describe"),
        (json.dumps(sobject_describe("Bad Name", [])).encode(), "'Bad Name' is not a Salesforce API name"),
        (
            json.dumps(sobject_describe("Thing__c", [sf_field("x') OR Id != ('", "string")])).encode(),
            "is not a Salesforce API name",
        ),
        (b"PK\x03\x04broken", "is not a readable .zip file"),
    ],
    ids=["empty", "malformed", "other-json", "global-only", "object-name", "field-name", "bad-zip"],
)
def test_unusable_describe_files_give_one_clear_line(payload: bytes, message: str) -> None:
    with pytest.raises(MetadataError) as caught:
        _discover(payload)
    assert message in str(caught.value) and "\n" not in str(caught.value)


def test_a_live_source_needs_the_authorization() -> None:
    source = base.MetadataSource(kind="url", location="https://acme.my.salesforce.com")
    with pytest.raises(base.SourceError, match="authorize Salesforce first"):
        asyncio.run(base.get_provider("salesforce").discover(source))


def test_generated_packages_pass_ruff_and_mypy_strict(tmp_path: Path) -> None:
    describes, describe_global = org_describes()
    catalog = _discover([*describes, describe_global])
    spec = IntegrationSpec(
        provider="salesforce",
        application_name="Whole org",
        module_name="sf_org",
        objects=[ObjectSelection(name) for name in catalog.object_names()],
    )
    package = write_package(generate_package(catalog, spec), tmp_path)
    for source in sorted(package.glob("*.py")):
        compile(source.read_text(), str(source), "exec", dont_inherit=True)
    assert ruff_problems(package) == ""
    assert mypy_problems(package) == ""


def test_ib_generate_reads_a_saved_describe_file(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    whizbang, describe_global = corpus_describes()
    metadata = tmp_path / "org.json"
    metadata.write_text(json.dumps([describe_global, whizbang]))
    out = tmp_path / "out"
    arguments = [
        *("generate", "--provider", "salesforce", "--metadata", str(metadata), "--all"),
        *("--app", "Whizbangs", "--module", "whizbangs", "--out", str(out)),
    ]
    assert main(arguments) == 0
    driver = (out / "whizbangs" / "driver.py").read_text()
    assert "def search_whizbang(" in driver and "def create_whizbang(" in driver
    assert (out / "whizbangs" / "_runtime" / "salesforce.py").is_file()


def _generate(metadata: Path, out: Path) -> int:
    return main(
        [
            *("generate", "--provider", "salesforce", "--metadata", str(metadata), "--all"),
            *("--app", "Whole org", "--module", "whole_org", "--out", str(out)),
        ]
    )


def test_ib_generate_reads_a_folder_of_saved_describes(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    describes, describe_global = org_describes()
    folder = tmp_path / "describes"
    (folder / "sobjects").mkdir(parents=True)
    (folder / "describe_global.json").write_text(json.dumps(describe_global))
    for describe in describes:
        (folder / "sobjects" / f"{describe['name']}.json").write_text(json.dumps(describe))
    (folder / "README.md").write_text("saved with curl")
    out = tmp_path / "out"
    assert _generate(folder, out) == 0
    driver = (out / "whole_org" / "driver.py").read_text()
    for describe in describes:
        if describe.get("queryable"):
            assert f"def search_{describe['name'].lower()}(" in driver, describe["name"]
    spec = json.loads((out / "whole_org" / "integration.json").read_text())
    assert (spec["source"]["kind"], spec["source"]["location"]) == ("file", "describes")
    # The spec kept beside the folder regenerates from it, and the folder counts as unchanged.
    (tmp_path / "integration.json").write_text(json.dumps(spec))
    capsys.readouterr()
    assert main(["generate", "--spec", str(tmp_path / "integration.json"), "--out", str(out)]) == 0
    assert "changed" not in capsys.readouterr().err


def test_ib_generate_refuses_an_empty_folder_or_a_foreign_file_in_one_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    empty = tmp_path / "empty"
    empty.mkdir()
    assert _generate(empty, tmp_path / "out") != 0
    said = capsys.readouterr().err.strip()
    assert "empty holds no files" in said and "\n" not in said

    mixed = tmp_path / "mixed"
    mixed.mkdir()
    whizbang, _ = corpus_describes()
    (mixed / "Whizbang.json").write_text(json.dumps(whizbang))
    (mixed / "notes.json").write_text('{"saved": "by hand"}')
    assert _generate(mixed, tmp_path / "out") != 0
    said = capsys.readouterr().err.strip()
    assert "notes.json in mixed is neither an sObject describe" in said and "\n" not in said
    assert not (tmp_path / "out").exists()
