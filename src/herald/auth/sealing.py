"""Secrets at rest: access-key secrets are kept in the database sealed with AES-256-GCM.

A hash cannot serve here: verifying an HMAC request signature needs the secret itself. So the database
holds each secret encrypted under a master key that lives outside it (``HERALD_MASTER_KEY``, else the
file ``master-key`` in the data directory, created with mode 0600 on first use). The key id is the
associated data, so a sealed secret copied onto another key's row does not open. A stolen database
without the master key reveals no secret.
"""

from __future__ import annotations

import base64
import binascii
import os

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

KEY_BYTES = 32
_NONCE_BYTES = 12
_PREFIX = "v1:"


class SealError(ValueError):
    """A sealed value cannot be opened: another master key, a damaged value, or a row tampered with."""


def parse_master_key(text: str) -> bytes:
    """The master key from its text form: 32 bytes as URL-safe base64 (what ``new_master_key`` makes)."""
    try:
        key = base64.urlsafe_b64decode(text.strip().encode("ascii") + b"==")
    except (binascii.Error, UnicodeEncodeError, ValueError):
        raise ValueError("the master key must be 32 bytes in URL-safe base64") from None
    if len(key) != KEY_BYTES:
        raise ValueError(f"the master key must be {KEY_BYTES} bytes in URL-safe base64, got {len(key)}")
    return key


def new_master_key() -> str:
    return base64.urlsafe_b64encode(os.urandom(KEY_BYTES)).decode().rstrip("=")


class SecretBox:
    def __init__(self, master_key: bytes) -> None:
        if len(master_key) != KEY_BYTES:
            raise ValueError(f"the master key must be {KEY_BYTES} bytes")
        self._aead = AESGCM(master_key)

    def seal(self, secret: str, *, bound_to: str) -> str:
        nonce = os.urandom(_NONCE_BYTES)
        sealed = self._aead.encrypt(nonce, secret.encode(), bound_to.encode())
        return _PREFIX + base64.urlsafe_b64encode(nonce + sealed).decode()

    def open(self, sealed: str, *, bound_to: str) -> str:
        if not sealed.startswith(_PREFIX):
            raise SealError("unknown sealing format")
        try:
            raw = base64.urlsafe_b64decode(sealed[len(_PREFIX) :].encode())
            return self._aead.decrypt(raw[:_NONCE_BYTES], raw[_NONCE_BYTES:], bound_to.encode()).decode()
        except (InvalidTag, binascii.Error, ValueError):
            raise SealError(
                "the sealed secret does not open with this master key (another key, or a damaged row)"
            ) from None
