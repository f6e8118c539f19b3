"""``KeyDirectory``: who each access key is and what each user may do, held in memory for every request.

The keys of the config file and the environment are fixed at start-up; the keys, users and policies in
the database (written by ``herald keys|users|policies``, possibly while the server runs) are read as one
snapshot, again every ``reload_s`` and at once when a request names a key the directory does not know
(at most every ``MISS_RELOAD_S``, so a flood of made-up key ids costs at most two reads a second).
So a new key works at once, and a disabled key, a deleted user or a changed policy takes effect within
``reload_s``.

Lookups are dictionary reads: the API's hot path never waits for the database.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Iterable
from dataclasses import dataclass

from herald.auth.keys import DEFAULT_ACCOUNT, AccessKey
from herald.auth.policy import Policy, PolicyError, parse_policy
from herald.auth.sealing import SealError, SecretBox
from herald.clock import Clock
from herald.observability.outages import OutageLog
from herald.store.iam import IamStore
from herald.store.records import IamSnapshot

_log = logging.getLogger(__name__)

MISS_RELOAD_S = 0.5
DENY_ALL = parse_policy({"Version": "1", "Statement": [{"Effect": "Deny", "Action": "*", "Resource": "*"}]})
"""Stands in for a stored policy that no longer parses: its user is refused everything rather than let a
broken Deny widen access."""


@dataclass(frozen=True, slots=True)
class DirectorySettings:
    """``[auth]`` of the config file."""

    region: str = "local"
    """The region in resource names (``acs:ice:<region>:<account>:<relative id>``)."""
    reload_s: float = 2.0

    def __post_init__(self) -> None:
        if not self.reload_s > 0:
            raise ValueError(f"reload_s must be positive, got {self.reload_s}")
        if not self.region or not all(c.isalnum() or c == "-" for c in self.region):
            raise ValueError(f"region must be letters, digits and '-', got {self.region!r}")


class KeyDirectory:
    def __init__(
        self,
        static_keys: Iterable[AccessKey],
        store: IamStore,
        box: SecretBox,
        clock: Clock,
        settings: DirectorySettings = DirectorySettings(),
    ) -> None:
        self._static = {key.access_key_id: key for key in static_keys}
        self._store = store
        self._box = box
        self._clock = clock
        self.settings = settings
        self._keys: dict[str, AccessKey] = dict(self._static)
        self._policies: dict[tuple[str, str], tuple[Policy, ...]] = {}
        self._last_load_ns: int | None = None
        """When the last reload began (monotonic)."""
        self._pending: asyncio.Future[None] | None = None
        self._lock = asyncio.Lock()
        self._outage = OutageLog(_log, "reloading access keys and policies", clock)

    def get(self, access_key_id: str) -> AccessKey | None:
        return self._keys.get(access_key_id)

    def policies_for(self, account_id: str, user_name: str) -> tuple[Policy, ...]:
        return self._policies.get((account_id, user_name), ())

    async def start(self) -> None:
        """Make sure the default account exists, then load."""
        await self._store.ensure_account(DEFAULT_ACCOUNT, self._clock.now())
        await self.reload()

    async def reload(self) -> None:
        async with self._lock:
            self._last_load_ns = self._clock.monotonic_ns()
            snapshot = await self._store.snapshot()
            self._keys, self._policies = self._index(snapshot)

    async def reload_after_miss(self) -> None:
        """After a request named an unknown key: return once a reload that began after the request came has
        finished. Misses close together share one reload, and reloads for misses are at least
        ``MISS_RELOAD_S`` apart, so a flood of made-up key ids costs at most two reads a second."""
        arrived_ns = self._clock.monotonic_ns()
        while self._last_load_ns is None or self._last_load_ns <= arrived_ns:
            if self._pending is None:
                self._pending = asyncio.ensure_future(self._reload_soon())
            pending = self._pending
            await asyncio.shield(pending)

    async def _reload_soon(self) -> None:
        try:
            if self._last_load_ns is not None:
                await self._clock.sleep_until_ns(self._last_load_ns + int(MISS_RELOAD_S * 1e9))
            await self.reload()
        finally:
            self._pending = None

    async def run(self) -> None:
        """Reload every ``reload_s`` until cancelled."""
        while True:
            await asyncio.sleep(self.settings.reload_s)
            try:
                await self.reload()
            except Exception as exc:
                self._outage.failed(exc, "keeping the last ones")
            else:
                self._outage.succeeded()

    def _index(
        self, snapshot: IamSnapshot
    ) -> tuple[dict[str, AccessKey], dict[tuple[str, str], tuple[Policy, ...]]]:
        keys = dict(self._static)
        for record in snapshot.keys:
            if record.access_key_id in keys:
                _log.warning(
                    "access key %s is both configured and in the database; the configured one wins",
                    record.access_key_id,
                )
                continue
            try:
                secret = self._box.open(record.sealed_secret, bound_to=record.access_key_id)
            except SealError as exc:
                _log.error("access key %s cannot be used: %s", record.access_key_id, exc)
                continue
            keys[record.access_key_id] = AccessKey(
                record.access_key_id, secret, record.active, record.account_id, record.user_name
            )
        parsed: dict[tuple[str, str], Policy] = {}
        for stored in snapshot.policies:
            try:
                parsed[(stored.account_id, stored.policy_name)] = parse_policy(stored.document)
            except PolicyError as exc:
                _log.error(
                    "policy %s of account %s does not parse (%s); its users are refused everything",
                    stored.policy_name,
                    stored.account_id,
                    exc,
                )
                parsed[(stored.account_id, stored.policy_name)] = DENY_ALL
        policies: dict[tuple[str, str], list[Policy]] = {}
        for account_id, user_name, policy_name in snapshot.attachments:
            policy = parsed.get((account_id, policy_name))
            if policy is not None:
                policies.setdefault((account_id, user_name), []).append(policy)
        return keys, {who: tuple(found) for who, found in policies.items()}
