"""The Dockerfile's image, as far as this machine can check it without a Docker engine.

The image is `pip install .` of exactly what the Dockerfile COPYs, then `ib serve` as a non-root
user with the SQLite file in /data. A file the service needs at run time but the Dockerfile does
not copy (templates, migrations, the runtime modules generated packages carry) would only show in
a built image, so this builds the same wheel from the same files, installs it into a fresh venv
and runs `ib migrate` and `ib serve` from it, with the database where the image keeps it.
"""

from __future__ import annotations

import os
import shlex
import shutil
import signal
import socket
import subprocess
import sys
import sysconfig
import time
import zipfile
from pathlib import Path

import httpx
import pytest

from tests.fixtures.venvs import fresh_venv

ROOT = Path(__file__).resolve().parents[2]
DOCKERFILE = ROOT / "Dockerfile"
PIP = (sys.executable, "-m", "pip", "--isolated", "--disable-pip-version-check")

pytestmark = pytest.mark.slow


def instructions() -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) of the Dockerfile, continuation lines joined."""
    joined = DOCKERFILE.read_text().replace("\\\n", " ")
    lines = [line.strip() for line in joined.splitlines()]
    return [
        (parts[0].upper(), parts[1] if len(parts) > 1 else "")
        for parts in (line.split(None, 1) for line in lines if line and not line.startswith("#"))
    ]


def copied_sources() -> list[str]:
    sources = []
    for instruction, arguments in instructions():
        if instruction == "COPY":
            *froms, _ = shlex.split(arguments)
            sources += froms
    return sources


def test_the_image_runs_ib_serve_as_a_non_root_user_with_data_on_a_volume() -> None:
    found = dict(instructions())
    assert found["FROM"].startswith("python:3.11-slim")
    assert found["USER"] not in ("root", "0")
    assert '"/data"' in found["VOLUME"]
    assert "sqlite+aiosqlite:////data/" in found["ENV"] + " ".join(a for i, a in instructions() if i == "ENV")
    assert shlex.split(found["CMD"].strip("[]").replace(",", " "))[:2] == ["ib", "serve"]
    assert "/healthz" in found["HEALTHCHECK"]


def test_the_copied_files_install_and_serve(tmp_path: Path) -> None:
    context = tmp_path / "context"
    context.mkdir()
    for source in copied_sources():
        origin = ROOT / source
        if origin.is_dir():
            shutil.copytree(origin, context / source, ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
        else:
            shutil.copy2(origin, context / source)

    # `pip install .` as in the image, offline: this venv has setuptools, the image's pip fetches it
    wheels = tmp_path / "wheels"
    subprocess.run(
        [
            *PIP,
            "wheel",
            "--quiet",
            "--no-deps",
            "--no-build-isolation",
            "--no-index",
            "-w",
            str(wheels),
            str(context),
        ],
        check=True,
        capture_output=True,
        timeout=300,
    )
    [wheel] = wheels.glob("*.whl")
    names = zipfile.ZipFile(wheel).namelist()
    assert any(n.startswith("generator/templates/") and n.endswith(".j2") for n in names)
    assert any(n.startswith("storage/migrations/versions/") for n in names)
    assert "providers/runtime/odata.py" in names

    python = fresh_venv(tmp_path / "venv")
    subprocess.run(
        [*PIP, "--python", str(python), "install", "--quiet", "--no-deps", "--no-index", str(wheel)],
        check=True,
        capture_output=True,
        timeout=300,
    )
    # the dependencies come from this environment (the image installs them from the registry)
    site = Path(sysconfig.get_paths(vars={"base": str(tmp_path / "venv")})["purelib"])
    (site / "deps.pth").write_text(sysconfig.get_paths()["purelib"] + "\n")

    where = subprocess.run(
        [str(python), "-c", "import bot, generator; print(bot.__file__, generator.__file__)"],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        check=True,
    )
    assert all(path.startswith(str(tmp_path / "venv")) for path in where.stdout.split()), where.stdout

    data = tmp_path / "data"
    data.mkdir()
    env = {
        "PATH": os.environ.get("PATH", ""),
        "HOME": str(data),
        "IB_DATABASE_URL": f"sqlite+aiosqlite:///{data}/ib.db",
        "IB_KEY_FILE": str(data / "ib.key"),
    }
    ib = str(tmp_path / "venv" / "bin" / "ib")
    migrated = subprocess.run([ib, "migrate"], cwd=data, env=env, capture_output=True, text=True, timeout=120)
    assert migrated.returncode == 0, migrated.stderr
    assert (data / "ib.db").exists()

    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    server = subprocess.Popen(
        [ib, "serve", "--host", "127.0.0.1", "--port", str(port)],
        cwd=data,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                health = httpx.get(f"http://127.0.0.1:{port}/healthz", timeout=2, trust_env=False)
                break
            except httpx.TransportError:
                assert server.poll() is None, server.stderr.read() if server.stderr else ""
                assert time.monotonic() < deadline, "ib serve did not answer within 60 s"
                time.sleep(0.2)
        assert health.status_code == 200
        assert httpx.get(f"http://127.0.0.1:{port}/readyz", timeout=5, trust_env=False).status_code == 200
    finally:
        server.send_signal(signal.SIGTERM)
        server.wait(timeout=30)
