"""``ClientToken``: a retried request gets the first answer (its ``RequestId`` included) and acts once."""

from __future__ import annotations

import asyncio
import hashlib
import json
from collections.abc import Awaitable, Callable, Mapping
from contextlib import AbstractAsyncContextManager, nullcontext
from datetime import timedelta
from typing import Any

from herald.clock import Clock
from herald.errors import IdempotentParameterMismatch, InvalidParameter
from herald.store.idempotency import IdempotencyStore
from herald.store.records import IdempotencyRecord

TOKEN_PARAM = "ClientToken"
MAX_TOKEN_CHARS = 64
DEFAULT_TTL = timedelta(hours=24)


def params_hash(params: Mapping[str, str]) -> str:
    """The request's business parameters, order-independent; the token itself is not part of it."""
    canonical = json.dumps(sorted((k, v) for k, v in params.items() if k != TOKEN_PARAM), ensure_ascii=False)
    return hashlib.sha256(canonical.encode()).hexdigest()


def digest_key(owner: str, action: str, token: str) -> str:
    """A fixed-length name for the (owner, action, token) triple, fit for a lock's key."""
    return hashlib.sha256(json.dumps([owner, action, token]).encode()).hexdigest()


def check_token(token: str) -> None:
    if not 1 <= len(token) <= MAX_TOKEN_CHARS or not token.isascii() or not token.isprintable():
        raise InvalidParameter(TOKEN_PARAM, f"must be 1 to {MAX_TOKEN_CHARS} printable ASCII characters.")


SharedLock = Callable[[str], AbstractAsyncContextManager[object]]
"""A lock by name held across processes (a cluster's nodes share ``ClientToken`` answers)."""


class Idempotency:
    def __init__(
        self,
        store: IdempotencyStore,
        clock: Clock,
        *,
        ttl: timedelta = DEFAULT_TTL,
        shared_lock: SharedLock | None = None,
    ) -> None:
        self._store = store
        self._clock = clock
        self._ttl = ttl
        self._shared_lock = shared_lock
        self._locks: dict[tuple[str, str, str], _KeyLock] = {}

    async def run(
        self,
        owner: str,
        action: str,
        params: Mapping[str, str],
        produce: Callable[[], Awaitable[dict[str, Any]]],
    ) -> dict[str, Any]:
        """``produce()`` once per (owner, action, ClientToken) within the TTL; replays get its answer.

        Without a ``ClientToken`` this is just ``produce()``. The same token with other parameters is
        ``IdempotentParameterMismatch``. A failed ``produce()`` is not remembered: the retry runs again.
        """
        token = params.get(TOKEN_PARAM)
        if token is None:
            return await produce()
        check_token(token)
        digest = params_hash(params)
        key = (owner, action, token)
        entry = self._locks.setdefault(key, _KeyLock())
        entry.users += 1
        try:
            shared = (
                self._shared_lock(digest_key(owner, action, token)) if self._shared_lock else nullcontext()
            )
            async with entry.lock, shared:
                now = self._clock.now()
                earlier = await self._store.get(owner, action, token)
                if earlier is not None and now - earlier.created_at < self._ttl:
                    if earlier.params_hash != digest:
                        raise IdempotentParameterMismatch(
                            f"The ClientToken {token!r} was used with other parameters for {action}."
                        )
                    return dict(earlier.response)
                response = await produce()
                await self._store.put(IdempotencyRecord(owner, action, token, digest, response, now))
                return response
        finally:
            entry.users -= 1
            if entry.users == 0:
                del self._locks[key]


class _KeyLock:
    """A lock per key, dropped when nobody holds or awaits it."""

    def __init__(self) -> None:
        self.lock = asyncio.Lock()
        self.users = 0
