"""The Microsoft identity peer: oauth2-mock-server behind Entra ID's tenant paths (identity.mjs).

Used by the tests (the ``identity_server`` fixture) and the benchmarks::

    with start_identity_server(["11111111-..."]) as identity:
        identity.register_app(client_id, tenant, secret="s3cret")
        # MSAL: authority=identity.authority(tenant), http_client with verify=identity.ca_path

It serves ``/{tenant}/v2.0/.well-known/openid-configuration``, ``/{tenant}/oauth2/v2.0/authorize``,
``/{tenant}/oauth2/v2.0/token`` and ``/{tenant}/discovery/v2.0/keys`` over HTTPS with a certificate
authority made for this run (``ca_path``), and refuses what Entra refuses: unknown tenants and
clients, unregistered redirect URIs, a wrong secret, a client assertion not signed by a certificate
registered for the app, a refresh token it did not issue or that was revoked.
"""

from __future__ import annotations

import os
import re
import signal
import ssl
import subprocess
import tempfile
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from types import TracebackType
from typing import IO, Any

import httpx

from tests.peers.tls import certificate_authority

__all__ = ["IdentityServer", "start_identity_server"]

PEER_DIR = Path(__file__).resolve().parent
_STARTUP_TIMEOUT_S = 30.0
_STOP_TIMEOUT_S = 5.0
_LISTENING = re.compile(r"identity peer listening on (https://127\.0\.0\.1:\d+)")


@dataclass
class IdentityServer:
    """A running identity peer; ``stop()`` (or leaving the ``with`` block) ends it."""

    base_url: str
    ca_path: Path
    tenants: tuple[str, ...]
    process: subprocess.Popen[bytes] = field(repr=False)
    log_file: IO[bytes] = field(repr=False)
    directory: tempfile.TemporaryDirectory[str] = field(repr=False)

    def authority(self, tenant: str) -> str:
        return f"{self.base_url}/{tenant}"

    def _client(self) -> httpx.Client:
        return httpx.Client(base_url=self.base_url, verify=self.tls(), trust_env=False, timeout=10)

    def tls(self) -> ssl.SSLContext:
        """A client context that trusts this run's certificate authority only."""
        return ssl.create_default_context(cafile=self.ca_path)

    def register_app(
        self,
        client_id: str,
        tenant: str,
        *,
        secret: str | None = None,
        certificates: Sequence[str] = (),
        redirect_uris: Sequence[str] = (),
        multi_tenant: bool = False,
    ) -> None:
        """An app registration: its secret and/or uploaded certificates (PEM), redirect URIs."""
        body = {
            "client_id": client_id,
            "tenant": tenant,
            "secret": secret,
            "certificates": list(certificates),
            "redirect_uris": list(redirect_uris),
            "multi_tenant": multi_tenant,
        }
        with self._client() as client:
            client.post("/test/apps", json=body).raise_for_status()

    def upload_certificate(self, client_id: str, certificate_pem: str) -> None:
        """What an administrator does with a certificate: upload it to the app registration."""
        with self._client() as client:
            path = f"/test/apps/{client_id}/certificates"
            client.post(path, json={"certificate": certificate_pem}).raise_for_status()

    def user_token_lifetime(self, seconds: int | None) -> None:
        """Signed-in users' access tokens expire after ``seconds`` (None: the usual hour)."""
        with self._client() as client:
            client.post("/test/user-token-lifetime", json={"seconds": seconds}).raise_for_status()

    def delay_discovery(self, seconds: float) -> None:
        """The OpenID configuration answers ``seconds`` late (0: at once): a slow identity host."""
        with self._client() as client:
            client.post("/test/discovery-delay", json={"seconds": seconds}).raise_for_status()

    def deny_next_consent(self) -> None:
        """The next authorize request redirects back with ``error=access_denied`` (AADSTS65004)."""
        with self._client() as client:
            client.post("/test/deny-next-consent").raise_for_status()

    def revoke_refresh_tokens(self) -> None:
        with self._client() as client:
            client.post("/test/revoke-refresh-tokens").raise_for_status()

    def token_requests(self) -> list[dict[str, Any]]:
        """Every token request since the last clear: tenant, grant_type, client_id, scope, status."""
        with self._client() as client:
            response = client.get("/test/token-requests")
            response.raise_for_status()
            entries: list[dict[str, Any]] = response.json()
            return entries

    def clear_token_requests(self) -> None:
        with self._client() as client:
            client.post("/test/token-requests/clear").raise_for_status()

    def signing_keys(self) -> dict[str, Any]:
        """The JWKS that verifies the access tokens it issues (what a resource server trusts)."""
        with self._client() as client:
            response = client.get(f"/{self.tenants[0]}/discovery/v2.0/keys")
            response.raise_for_status()
            keys: dict[str, Any] = response.json()
            return keys

    def log(self) -> str:
        return Path(self.log_file.name).read_text(errors="replace")

    def stop(self) -> None:
        if self.process.poll() is None:
            os.killpg(self.process.pid, signal.SIGTERM)
            try:
                self.process.wait(_STOP_TIMEOUT_S)
            except subprocess.TimeoutExpired:
                os.killpg(self.process.pid, signal.SIGKILL)
                self.process.wait()
        if not self.log_file.closed:
            self.log_file.close()
            Path(self.log_file.name).unlink(missing_ok=True)
        self.directory.cleanup()

    def __enter__(self) -> IdentityServer:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.stop()


def start_identity_server(tenants: Sequence[str]) -> IdentityServer:
    """Start the peer for ``tenants`` (the first also answers for organizations/common)."""
    script = PEER_DIR / "identity.mjs"
    if not (PEER_DIR / "node_modules" / "oauth2-mock-server").is_dir():
        raise RuntimeError("oauth2-mock-server is missing: run `make peers` to install the peers' packages")
    directory = tempfile.TemporaryDirectory(prefix="identity-peer-")
    ca_path, cert_path, key_path = certificate_authority(Path(directory.name), "Identity peer")
    log_file = tempfile.NamedTemporaryFile(prefix="identity-peer-", suffix=".log", delete=False)
    env = {
        **os.environ,
        "IB_IDENTITY_TLS_KEY": str(key_path),
        "IB_IDENTITY_TLS_CERT": str(cert_path),
        "IB_IDENTITY_TENANTS": ",".join(tenants),
        "NO_COLOR": "1",
    }
    process = subprocess.Popen(
        ["node", str(script)],
        cwd=PEER_DIR,
        env=env,
        stdin=subprocess.DEVNULL,
        stdout=log_file,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    server = IdentityServer("", ca_path, tuple(tenants), process, log_file, directory)
    try:
        server.base_url = _wait_for_url(process, Path(log_file.name))
    except BaseException:
        server.stop()
        raise
    return server


def _wait_for_url(process: subprocess.Popen[bytes], log_path: Path) -> str:
    deadline = time.monotonic() + _STARTUP_TIMEOUT_S
    while time.monotonic() < deadline:
        log = log_path.read_text(errors="replace")
        listening = _LISTENING.search(log)
        if listening:
            return listening.group(1)
        if process.poll() is not None:
            raise RuntimeError(f"the identity peer exited with code {process.returncode} at start:\n{log}")
        time.sleep(0.02)
    raise RuntimeError(f"the identity peer did not listen within {_STARTUP_TIMEOUT_S:.0f} s")
