"""Access keys: the AccessKeyId/AccessKeySecret pairs that sign API requests, and whose they are.

Every key belongs to an account; a key may also belong to a user of that account. An account's own keys
(no user) may do anything within the account, like a cloud account's root keys; a user's keys may do what
the policies attached to the user allow (``herald.auth.authorize``). Everything an account creates
(instances, their events and dialogues, ``ClientToken`` answers) is the account's: other accounts never
see it.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Protocol

DEFAULT_ACCOUNT = "default"
"""The account of keys that name none: the development key, ``HERALD_ACCESS_KEY_ID``, config-file keys."""

NAME_PATTERN = re.compile(r"[a-z0-9](?:[a-z0-9-]{0,62}[a-z0-9])?")
"""Account names: lower-case letters, digits and inner hyphens, 1-64 characters (they appear in resource
names, ``acs:ice:<region>:<account>:...``)."""
USER_PATTERN = re.compile(r"[A-Za-z0-9][A-Za-z0-9._@-]{0,63}")
"""User names: letters, digits, ``.``, ``_``, ``@``, ``-``; 1-64 characters, not starting with a symbol."""


def check_account_name(name: str) -> str:
    if not NAME_PATTERN.fullmatch(name):
        raise ValueError(
            f"account name {name[:80]!r} is invalid: use 1-64 lower-case letters, digits and inner hyphens"
        )
    return name


def check_user_name(name: str) -> str:
    if not USER_PATTERN.fullmatch(name):
        raise ValueError(
            f"user name {name[:80]!r} is invalid: use 1-64 letters, digits, '.', '_', '@' and '-', "
            "starting with a letter or digit"
        )
    return name


@dataclass(frozen=True, slots=True)
class AccessKey:
    access_key_id: str
    secret: str
    active: bool = True
    account_id: str = DEFAULT_ACCOUNT
    user_name: str | None = None
    """``None``: the account's own key, allowed everything within the account."""

    @property
    def principal(self) -> str:
        """Who signs with the key, for messages: ``account`` or ``account/user``."""
        return principal(self.account_id, self.user_name)


def principal(account_id: str, user_name: str | None) -> str:
    return account_id if user_name is None else f"{account_id}/{user_name}"


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
