"""What every provider with an OAuth sign-in shares: how the service reaches the identity server
(:class:`HttpOptions`), PKCE, and the ``state`` that ties a callback to the sign-in that started it.

Salesforce builds its authorize URLs itself with these; the Microsoft providers let MSAL do PKCE
and use :func:`state_matches` to refuse a forged callback before MSAL sees it.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import secrets
import ssl
from dataclasses import dataclass
from typing import Final

import requests


@dataclass(frozen=True, slots=True)
class HttpOptions:
    """How the service reaches an external system: TLS trust (``verify``: a CA bundle path in
    tests), private addresses (``allow_private=None`` follows ``IB_ALLOW_PRIVATE_URLS``), time per
    request."""

    verify: bool | str = True
    allow_private: bool | None = None
    timeout_s: float = 30.0

    def tls(self) -> bool | ssl.SSLContext:
        # httpx deprecates a CA bundle path as ``verify``; a context says the same
        return ssl.create_default_context(cafile=self.verify) if isinstance(self.verify, str) else self.verify

    def requests_session(self) -> requests.Session | None:
        """A session for libraries built on requests (MSAL, simple-salesforce); None: their default.

        A CA bundle of our own needs ``trust_env=False``: REQUESTS_CA_BUNDLE would override it.
        """
        if self.verify is True:
            return None
        session = requests.Session()
        session.trust_env = False
        session.verify = self.verify
        return session


DEFAULT_HTTP: Final = HttpOptions()


def b64url(data: bytes) -> str:
    """Unpadded base64url, as JWTs and PKCE write it."""
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def pkce_verifier() -> str:
    """A new PKCE code verifier: 86 unreserved characters (RFC 7636 allows 43 to 128)."""
    return secrets.token_urlsafe(64)


def pkce_challenge(verifier: str) -> str:
    """The S256 code challenge of ``verifier``."""
    return b64url(hashlib.sha256(verifier.encode("ascii")).digest())


def new_state() -> str:
    """An unguessable ``state`` that ties the callback to the authorization that started it."""
    return secrets.token_urlsafe(32)


def state_matches(received: str | None, expected: str) -> bool:
    """Whether a callback's ``state`` is the one the sign-in was started with (constant time)."""
    return bool(expected) and hmac.compare_digest((received or "").encode(), expected.encode())
