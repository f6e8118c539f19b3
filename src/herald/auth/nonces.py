"""The signature-nonce replay cache: a nonce may sign one request per AccessKeyId within its lifetime."""

from __future__ import annotations

import hashlib
from collections import OrderedDict

from herald.clock import Clock


class NonceCache:
    """Remembers ``(access_key_id, nonce)`` pairs for ``ttl_ns`` of monotonic time, in bounded memory.

    Entries are kept in insertion order, which is time order, so expiry pops from the front. When
    ``max_entries`` is reached the oldest entry is dropped even if it has not expired: memory stays bounded
    (about 170 bytes an entry, whatever the nonce's length), at the price of forgetting the oldest nonce
    early under a flood. Not thread-safe; use from one event loop.
    """

    def __init__(self, clock: Clock, *, ttl_ns: int = 30 * 60 * 10**9, max_entries: int = 1_000_000) -> None:
        if ttl_ns <= 0 or max_entries <= 0:
            raise ValueError("ttl_ns and max_entries must be positive")
        self._clock = clock
        self._ttl_ns = ttl_ns
        self._max_entries = max_entries
        self._seen: OrderedDict[bytes, int] = OrderedDict()  # pair digest -> monotonic ns first seen

    def check_and_remember(self, access_key_id: str, nonce: str) -> bool:
        """``False`` if this key used this nonce within the last ``ttl_ns``; else remember it and ``True``."""
        now_ns = self._clock.monotonic_ns()
        self._expire(now_ns)
        entry = _digest(access_key_id, nonce)
        if entry in self._seen:
            return False
        self._seen[entry] = now_ns
        if len(self._seen) > self._max_entries:
            self._seen.popitem(last=False)
        return True

    def __len__(self) -> int:
        return len(self._seen)

    def _expire(self, now_ns: int) -> None:
        # An entry is kept while its age is at most ttl_ns: with a +-15 min timestamp window and a 30 min ttl,
        # a nonce is remembered for as long as any request carrying it could still pass the timestamp check.
        while self._seen:
            first_ns = next(iter(self._seen.values()))
            if now_ns - first_ns <= self._ttl_ns:
                return
            self._seen.popitem(last=False)


def _digest(access_key_id: str, nonce: str) -> bytes:
    # 128 bits: a fixed, small size per entry; length-prefixed so ("ab", "c") and ("a", "bc") differ.
    key = access_key_id.encode("utf-8", "surrogatepass")
    data = len(key).to_bytes(4, "big") + key + nonce.encode("utf-8", "surrogatepass")
    return hashlib.blake2b(data, digest_size=16).digest()
