"""The SAP OData peer: SAP's own CAP server on 127.0.0.1, serving one service as OData V4 and V2.

Used by the tests (through the `cap_server` fixture) and by the benchmarks::

    with start_cap_server() as cap:
        httpx.get(cap.v2_url + "Products", auth=("alice", cap.users["alice"]))

What it serves (see db/schema.cds and srv/catalog-service.cds beside this file): the service
`CatalogService` with Categories, Products (1,200 seeded rows, ETag on modifiedAt), Orders (UUID key)
and the read-only Suppliers. Writes need a CSRF token fetched with `X-CSRF-Token: Fetch`, as on an
SAP Gateway. Every start has fresh data (in-memory database).
"""

from __future__ import annotations

import os
import re
import signal
import subprocess
import tempfile
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from types import TracebackType
from typing import IO, Any

import httpx

__all__ = ["CAP_USERS", "CapServer", "CapServerError", "start_cap_server"]

PEER_DIR = Path(__file__).resolve().parent
SERVICE_PATH = "catalog"
# The users the peer accepts (tests/peers/package.json, cds.requires.auth); everyone else gets 401.
CAP_USERS: dict[str, str] = {"alice": "alice-secret", "quinn": "quinn-secret"}

_STARTUP_TIMEOUT_S = 30.0
_STOP_TIMEOUT_S = 5.0
_LISTENING = re.compile(r"server listening on \{ url: 'http://localhost:(\d+)' \}")


class CapServerError(RuntimeError):
    """The CAP peer could not be started (missing npm packages, crash at start, no readiness)."""


@dataclass
class CapServer:
    """A running CAP peer. `stop()` (or leaving the `with` block) ends it and its process group."""

    base_url: str
    process: subprocess.Popen[bytes] = field(repr=False)
    log_file: IO[bytes] = field(repr=False)
    users: dict[str, str] = field(default_factory=lambda: dict(CAP_USERS))

    @property
    def v2_url(self) -> str:
        """OData V2 service root (through SAP's V2 adapter), ending with "/"."""
        return f"{self.base_url}/odata/v2/{SERVICE_PATH}/"

    @property
    def v4_url(self) -> str:
        """OData V4 service root, ending with "/"."""
        return f"{self.base_url}/odata/v4/{SERVICE_PATH}/"

    def requests(self) -> list[dict[str, Any]]:
        """The last 200 requests the peer saw, oldest first.

        Each is `{"method", "url" (path and query as sent), "path", "query" (dict), "user" (the
        authenticated user or None), "headers" (lower-case names; no Authorization or Cookie),
        "status" (None while the response is not finished)}`. V2 requests appear once, as sent.
        """
        response = httpx.get(f"{self.base_url}/test/requests", trust_env=False)
        response.raise_for_status()
        entries: list[dict[str, Any]] = response.json()
        return entries

    def clear_requests(self) -> None:
        httpx.post(f"{self.base_url}/test/requests/clear", trust_env=False).raise_for_status()

    def expire_csrf(self) -> None:
        """Invalidate every CSRF token, as a Gateway does when the session ends."""
        httpx.post(f"{self.base_url}/test/expire-csrf", trust_env=False).raise_for_status()

    def log(self) -> str:
        """What the server printed so far (stdout and stderr)."""
        return Path(self.log_file.name).read_text(errors="replace")

    def stop(self) -> None:
        _end(self.process, self.log_file)

    def __enter__(self) -> CapServer:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.stop()


def start_cap_server(*, port: int = 0, env: Mapping[str, str] | None = None) -> CapServer:
    """Start the CAP peer on 127.0.0.1 (`port=0`: a free port) and return once it listens.

    ``env`` adds variables for server.js, e.g. ``IB_PEER_DATAVERSE_JWKS``: the keys whose access
    tokens the Dataverse service at ``/api/data/v9.2/`` accepts.
    """
    serve_js = PEER_DIR / "node_modules" / "@sap" / "cds" / "bin" / "serve.js"
    if not serve_js.is_file():
        raise CapServerError(f"{serve_js} is missing: run `make peers` to install the CAP peer's packages")
    log_file = tempfile.NamedTemporaryFile(prefix="cap-peer-", suffix=".log", delete=False)
    # NODE_ENV=production would change CAP's defaults; NO_COLOR keeps the log line we parse plain.
    env = {**os.environ, **(env or {}), "PORT": str(port), "NODE_ENV": "development", "NO_COLOR": "1"}
    try:
        process = subprocess.Popen(
            ["node", str(serve_js)],
            cwd=PEER_DIR,
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=log_file,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    except FileNotFoundError as exc:
        _end(None, log_file)
        raise CapServerError("`node` is not on PATH: the CAP peer needs Node.js 20") from exc
    try:
        listening_port = _wait_for_port(process, Path(log_file.name))
    except BaseException:
        _end(process, log_file)
        raise
    return CapServer(base_url=f"http://127.0.0.1:{listening_port}", process=process, log_file=log_file)


def _wait_for_port(process: subprocess.Popen[bytes], log_path: Path) -> int:
    deadline = time.monotonic() + _STARTUP_TIMEOUT_S
    while time.monotonic() < deadline:
        log = log_path.read_text(errors="replace")
        listening = _LISTENING.search(log)
        if listening:
            return int(listening.group(1))
        if process.poll() is not None:
            raise CapServerError(f"the CAP peer exited with code {process.returncode} at start:\n{log}")
        time.sleep(0.02)
    log = log_path.read_text(errors="replace")
    raise CapServerError(f"the CAP peer did not listen within {_STARTUP_TIMEOUT_S:.0f} s:\n{log}")


def _end(process: subprocess.Popen[bytes] | None, log_file: IO[bytes]) -> None:
    """Stop the server's whole process group (it is the group leader) and drop its log."""
    if process is not None and process.poll() is None:
        os.killpg(process.pid, signal.SIGTERM)
        try:
            process.wait(_STOP_TIMEOUT_S)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait()
    if not log_file.closed:
        log_file.close()
        Path(log_file.name).unlink(missing_ok=True)
