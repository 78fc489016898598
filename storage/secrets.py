"""Encryption of secrets at rest with Fernet keys.

Keys come from ``IB_SECRET_KEYS`` (comma-separated; the first encrypts, all decrypt, so a new key
goes first and an old one stays until ``ib keys rotate`` has re-encrypted everything). Without it,
the embedded default keeps the keys in a file (``IB_KEY_FILE``, default ``./ib.key``) created with
mode 0600 on first start. A token that none of the keys opens raises, never returns garbage.
"""

from __future__ import annotations

import binascii
import json
import logging
import os
import re
import secrets
import stat
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from cryptography.fernet import Fernet, InvalidToken, MultiFernet

from storage.errors import SecretDecryptionError, SecretKeyError

log = logging.getLogger(__name__)

DEFAULT_KEY_FILE = Path("ib.key")
_KEY_SEPARATORS = re.compile(r"[,\s]+")


def generate_key() -> str:
    """A new random Fernet key, as text."""
    return Fernet.generate_key().decode("ascii")


def parse_keys(text: str) -> list[str]:
    """Keys from ``IB_SECRET_KEYS`` or a key file: separated by commas or whitespace."""
    return [key for key in _KEY_SEPARATORS.split(text) if key]


class SecretBox:
    """Encrypts with the first key, decrypts with any of them."""

    def __init__(self, keys: Sequence[str]) -> None:
        if not keys:
            raise SecretKeyError("no secret key configured: set IB_SECRET_KEYS or IB_KEY_FILE")
        fernets: list[Fernet] = []
        for position, key in enumerate(keys, start=1):
            try:
                fernets.append(Fernet(key.encode("ascii")))
            except (ValueError, UnicodeEncodeError, binascii.Error):
                raise SecretKeyError(
                    f"secret key #{position} is not a Fernet key (32 url-safe base64-encoded bytes); "
                    "make one with `ib keys generate`"
                ) from None
        self._fernet = MultiFernet(fernets)
        self.key_count = len(fernets)

    def __repr__(self) -> str:
        return f"SecretBox(<{self.key_count} key(s)>)"

    @classmethod
    def load(cls, keys: str | None, key_file: Path = DEFAULT_KEY_FILE, *, create: bool = True) -> SecretBox:
        """Keys from ``keys`` (the value of IB_SECRET_KEYS) when set, else from ``key_file``.

        A missing key file is created with a new key when ``create`` is true; commands that only
        read secrets pass ``create=False`` so that a wrong path fails instead of minting a key
        that opens nothing.
        """
        if keys and keys.strip():
            return cls(parse_keys(keys))
        try:
            text = key_file.read_text(encoding="ascii")
        except FileNotFoundError:
            if not create:
                raise SecretKeyError(
                    f"no secret keys: IB_SECRET_KEYS is not set and the key file {key_file} does not exist"
                ) from None
            text = _create_key_file(key_file)
        except (OSError, UnicodeDecodeError) as exc:
            raise SecretKeyError(f"cannot read the key file {key_file}: {exc.__class__.__name__}") from None
        else:
            _warn_if_readable_by_others(key_file)
        return cls(parse_keys(text))

    def encrypt(self, plaintext: bytes) -> bytes:
        return self._fernet.encrypt(plaintext)

    def decrypt(self, token: bytes) -> bytes:
        try:
            return self._fernet.decrypt(token)
        except InvalidToken:
            raise SecretDecryptionError(
                "a stored secret cannot be decrypted with the configured keys: was a key removed from "
                "IB_SECRET_KEYS or the key file replaced?"
            ) from None

    def encrypt_json(self, value: Mapping[str, Any]) -> bytes:
        return self.encrypt(json.dumps(dict(value), separators=(",", ":")).encode("utf-8"))

    def decrypt_json(self, token: bytes) -> dict[str, Any]:
        value = json.loads(self.decrypt(token))
        if not isinstance(value, dict):
            raise SecretDecryptionError("a stored secret is not a JSON object")
        return value

    def rotate(self, token: bytes) -> bytes:
        """The same secret, encrypted with the first key."""
        try:
            return self._fernet.rotate(token)
        except InvalidToken:
            raise SecretDecryptionError(
                "a stored secret cannot be decrypted with the configured keys; keep the old key in "
                "IB_SECRET_KEYS (after the new one) until the rotation is done"
            ) from None


def _create_key_file(path: Path) -> str:
    """Write a new key to ``path`` atomically with mode 0600; if another process won, use its key."""
    key = generate_key()
    temporary = path.with_name(f".{path.name}.{secrets.token_hex(8)}")
    try:
        descriptor = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except OSError as exc:
        raise SecretKeyError(f"cannot create the key file {path}: {exc.strerror}") from None
    try:
        with os.fdopen(descriptor, "w", encoding="ascii") as handle:
            handle.write(key + "\n")
            handle.flush()
            os.fsync(handle.fileno())
        # link() fails if the name exists, so two first starts never end up with two keys.
        os.link(temporary, path)
    except FileExistsError:
        return path.read_text(encoding="ascii")
    finally:
        temporary.unlink(missing_ok=True)
    log.warning(
        "created the secret key file %s (mode 0600); it encrypts stored credentials: back it up, "
        "or set IB_SECRET_KEYS instead",
        path,
    )
    return key


def _warn_if_readable_by_others(path: Path) -> None:
    mode = stat.S_IMODE(path.stat().st_mode)
    if mode & 0o077:
        log.warning("the key file %s has mode %o; make it private with `chmod 600 %s`", path, mode, path)
