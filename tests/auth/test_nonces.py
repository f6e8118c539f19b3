"""The nonce replay cache on a virtual clock."""

from __future__ import annotations

import pytest

from herald.auth.nonces import NonceCache
from herald.testing.clock import VirtualClock

MINUTE_NS = 60 * 10**9


def test_a_nonce_is_accepted_once_per_key() -> None:
    cache = NonceCache(VirtualClock())
    assert cache.check_and_remember("ak-1", "n")
    assert not cache.check_and_remember("ak-1", "n")
    assert cache.check_and_remember("ak-2", "n")
    assert cache.check_and_remember("ak-1", "m")


def test_key_and_nonce_do_not_run_together() -> None:
    cache = NonceCache(VirtualClock())
    assert cache.check_and_remember("ab", "c")
    assert cache.check_and_remember("a", "bc")


async def test_a_nonce_is_remembered_for_the_whole_ttl_and_then_forgotten() -> None:
    clock = VirtualClock()
    cache = NonceCache(clock, ttl_ns=30 * MINUTE_NS)
    assert cache.check_and_remember("ak", "n")
    await clock.advance(30 * MINUTE_NS)
    assert not cache.check_and_remember("ak", "n")  # an age of exactly ttl is still within it
    await clock.advance(1)
    assert cache.check_and_remember("ak", "n")


async def test_expired_entries_are_dropped() -> None:
    clock = VirtualClock()
    cache = NonceCache(clock, ttl_ns=MINUTE_NS)
    for i in range(100):
        cache.check_and_remember("ak", f"old-{i}")
    await clock.advance(MINUTE_NS // 2)
    cache.check_and_remember("ak", "young")
    await clock.advance(MINUTE_NS // 2 + 1)
    cache.check_and_remember("ak", "new")
    assert len(cache) == 2  # "young" and "new"
    assert not cache.check_and_remember("ak", "young")


def test_max_entries_evicts_the_oldest() -> None:
    cache = NonceCache(VirtualClock(), max_entries=3)
    for nonce in ("a", "b", "c", "d"):
        assert cache.check_and_remember("ak", nonce)
    assert len(cache) == 3
    assert not cache.check_and_remember("ak", "b")
    assert not cache.check_and_remember("ak", "d")
    assert cache.check_and_remember("ak", "a")  # forgotten early, the price of bounded memory
    assert len(cache) == 3


def test_memory_stays_bounded_under_a_flood() -> None:
    cache = NonceCache(VirtualClock(), max_entries=1000)
    for i in range(10_000):
        cache.check_and_remember("ak", str(i))
    assert len(cache) == 1000


@pytest.mark.parametrize(("ttl_ns", "max_entries"), [(0, 10), (10, 0), (-1, 10)])
def test_limits_must_be_positive(ttl_ns: int, max_entries: int) -> None:
    with pytest.raises(ValueError, match="positive"):
        NonceCache(VirtualClock(), ttl_ns=ttl_ns, max_entries=max_entries)
