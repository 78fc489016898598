"""`ib env`, `ib access`, `ib publish` and `ib deploy` through the real CLI entry point."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import TypeVar

import pytest

from bot.cli import main
from storage import Database, Environments, Integrations, PublishJobs, RuntimeTokens
from tests.fixtures.corpora import corpus_file
from tests.fixtures.publish import ADMIN, BOB

T = TypeVar("T")
TEAM = "T0CLI"


@pytest.fixture
def url(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> str:
    """A migrated SQLite database in tmp_path, configured through the environment like a user does."""
    url = f"sqlite+aiosqlite:///{tmp_path / 'ib.db'}"
    monkeypatch.setenv("IB_DATABASE_URL", url)
    monkeypatch.setenv("IB_KEY_FILE", str(tmp_path / "ib.key"))
    monkeypatch.setenv("IB_ADMINS", ADMIN)
    for name in ("IB_SECRET_KEYS", "IB_BASE_URL", "IB_ALLOW_PRIVATE_URLS"):
        monkeypatch.delenv(name, raising=False)
    assert main(["migrate"]) == 0
    return url


@pytest.fixture
def spec_file(tmp_path: Path) -> Path:
    """An integration.json kept in git, next to the metadata file it names."""
    metadata = corpus_file("sap-v2/GWSAMPLE_BASIC.edmx")
    (tmp_path / "GWSAMPLE_BASIC.edmx").write_bytes(metadata.read_bytes())
    spec = {
        "provider": "sap-odata",
        "application_name": "GW Sample",
        "module_name": "gw_sample",
        "objects": ["BusinessPartnerSet", {"name": "ProductSet", "access": "read-only"}],
        "source": {"kind": "file", "location": "GWSAMPLE_BASIC.edmx"},
    }
    path = tmp_path / "integration.json"
    path.write_text(json.dumps(spec), encoding="utf-8")
    return path


def on_database(url: str, work: Callable[[Database], Awaitable[T]]) -> T:
    async def run() -> T:
        database = Database(url)
        try:
            return await work(database)
        finally:
            await database.dispose()

    return asyncio.run(run())


def run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    code = main(list(argv))
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def test_environments_are_added_listed_and_removed(url: str, capsys: pytest.CaptureFixture[str]) -> None:
    assert run(capsys, "env", "add", "qa") == (0, "added environment qa\n", "")
    assert run(capsys, "env", "add", "sandbox", "--development")[0] == 0
    code, out, _ = run(capsys, "env", "list")
    assert code == 0
    assert out.splitlines()[0].split() == ["NAME", "DEVELOPMENT", "DEPLOYMENTS", "CONNECTIONS", "TOKENS"]
    assert [line.split()[:2] for line in out.splitlines()[1:]] == [
        ["dev", "yes"],
        ["qa", "no"],
        ["sandbox", "yes"],
    ]

    assert run(capsys, "env", "add", "qa") == (2, "", "ib env: environment 'qa' already exists\n")
    assert run(capsys, "env", "add", "Q A")[0] == 2
    assert run(capsys, "env", "remove", "sandbox") == (0, "removed environment sandbox\n", "")
    code, _, err = run(capsys, "env", "remove", "dev")
    assert (code, err) == (
        2,
        "ib env: dev is the only development environment and the wizard publishes there; "
        "add another with `ib env add NAME --development` first\n",
    )


def test_a_runtime_token_is_printed_once_and_stored_hashed(
    url: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code, token, note = run(capsys, "env", "token", "create", "dev", "--label", "ci")
    token = token.strip()
    assert code == 0 and token.startswith("ibrt_") and "shown only now" in note

    async def verify(database: Database) -> str | None:
        async with database.session() as session:
            row = await RuntimeTokens(session).verify(token)
        return row.environment.name if row else None

    assert on_database(url, verify) == "dev"
    assert all(token.encode() not in path.read_bytes() for path in tmp_path.glob("ib.db*"))
    _, listing, _ = run(capsys, "env", "token", "list", "dev")
    assert token not in listing
    assert listing.splitlines()[1].split()[:3] == ["#1", "ci", "cli"]

    assert run(capsys, "env", "token", "revoke", "dev", "1") == (0, "revoked runtime token #1 of dev\n", "")
    assert on_database(url, verify) is None
    assert run(capsys, "env", "token", "revoke", "dev", "1") == (
        2,
        "",
        "ib env: dev has no live runtime token #1\n",
    )


def test_roles_are_granted_listed_and_revoked(url: str, capsys: pytest.CaptureFixture[str]) -> None:
    assert run(capsys, "access", "grant", BOB, "deployer", "dev") == (
        0,
        f"{BOB} granted the deployer role in dev\n",
        "",
    )
    assert (
        run(capsys, "access", "grant", BOB, "deployer", "dev")[1]
        == f"{BOB} already had the deployer role in dev\n"
    )
    assert run(capsys, "access", "grant", BOB, "developer", "*")[0] == 0
    _, out, _ = run(capsys, "access", "list")
    assert [line.split() for line in out.splitlines()[1:]] == [
        [ADMIN, "every", "role", "*", "IB_ADMINS"],
        [BOB, "developer", "*", "cli"],
        [BOB, "deployer", "dev", "cli"],
    ]
    assert run(capsys, "access", "grant", "bob", "deployer", "dev")[0] == 2
    assert run(capsys, "access", "grant", BOB, "deployer", "staging") == (
        2,
        "",
        "ib access: no environment named 'staging'\n",
    )
    assert run(capsys, "access", "revoke", BOB, "deployer", "dev")[0] == 0
    assert run(capsys, "access", "revoke", BOB, "deployer", "dev") == (
        2,
        "",
        f"ib access: {BOB} has no deployer grant in dev\n",
    )


def test_publish_prints_the_version_and_sha256_and_deploy_promotes_it(
    url: str, spec_file: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code, out, err = run(capsys, "publish", "--spec", str(spec_file), "--team", TEAM, "--wait")
    assert code == 0, err
    lines = out.splitlines()
    assert lines[0] == "published gw_sample 0.1.0 to dev"
    wheel_name, wheel_hash = lines[1].split(" sha256=")
    assert wheel_name == "gw_sample-0.1.0-py3-none-any.whl"
    assert lines[3] == (
        "pip install --index-url http://__token__:$IB_RUNTIME_TOKEN@127.0.0.1:8080/envs/dev/simple/ gw_sample"
    )
    assert err.splitlines() == ["ib publish: generating", "ib publish: building", "ib publish: publishing"]
    assert run(capsys, "publish", "--spec", str(spec_file), "--wait")[1].splitlines()[0] == (
        "published gw_sample 0.1.1 to dev"
    )

    assert run(capsys, "env", "add", "qa")[0] == 0
    code, out, _ = run(capsys, "deploy", "gw_sample", "qa", "--version", "0.1.0")
    assert code == 0
    assert out.splitlines()[0] == f"deployed gw_sample 0.1.0 to qa (sha256 {wheel_hash})"
    assert out.splitlines()[-1] == "gw_sample has no connection in qa yet: pick one with /ib connections"
    assert run(capsys, "deploy", "gw_sample", "qa", "--as", BOB) == (
        2,
        "",
        f"ib deploy: <@{BOB}> may not deploy to qa: that needs the deployer role "
        f"(`ib access grant {BOB} deployer qa`)\n",
    )


def test_publish_follows_the_wizard_rules(
    url: str, spec_file: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert run(capsys, "env", "add", "qa")[0] == 0
    assert run(capsys, "publish", "--spec", str(spec_file), "--team", TEAM, "--env", "qa", "--wait") == (
        2,
        "",
        "ib publish: the wizard publishes only to development environments; deploy a published version "
        "to qa with `ib deploy` or /ib deploy\n",
    )
    spec = json.loads(spec_file.read_text(encoding="utf-8"))
    spec["open"] = True
    spec_file.write_text(json.dumps(spec), encoding="utf-8")
    assert run(capsys, "publish", "--spec", str(spec_file), "--team", TEAM, "--wait")[0] == 0
    code, out, err = run(capsys, "publish", "--spec", str(spec_file), "--team", TEAM, "--wait")
    assert (code, out) == (2, "")
    assert err == (
        "ib publish: gw_sample is an open integration: it was published once and Integration Builder "
        "never regenerates or republishes it\n"
    )


def test_publish_without_wait_queues_the_job_for_ib_serve(
    url: str, spec_file: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    args = ("publish", "--spec", str(spec_file), "--team", TEAM, "--dedup-key", "pipeline-42")
    code, out, _ = run(capsys, *args)
    assert code == 0 and out.startswith("queued publish job ")
    job_id = out.split()[3]
    assert run(capsys, *args)[1] == out  # a retried CI step gets the same job

    async def state(database: Database) -> tuple[str, int]:
        async with database.session() as session:
            job = await PublishJobs(session).get(job_id)
            dev = await Environments(session).require("dev")
            versions = len(await Integrations(session).in_team(TEAM))
        assert job is not None and dev.id == job.target_environment_id
        return job.state, versions

    assert on_database(url, state) == ("queued", 0)
