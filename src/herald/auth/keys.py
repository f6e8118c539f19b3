"""Access keys: the AccessKeyId/AccessKeySecret pairs that sign API requests."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Protocol


@dataclass(frozen=True, slots=True)
class AccessKey:
    access_key_id: str
    secret: str
    active: bool = True


class KeyStore(Protocol):
    def get(self, access_key_id: str) -> AccessKey | None: ...


class StaticKeyStore:
    """Keys known at start-up (environment, config file, the generated development key)."""

    def __init__(self, keys: Iterable[AccessKey]) -> None:
        self._keys = {k.access_key_id: k for k in keys}

    def get(self, access_key_id: str) -> AccessKey | None:
        return self._keys.get(access_key_id)

    def __len__(self) -> int:
        return len(self._keys)
