"""The synthesis cache: an LRU bounded by bytes, and its place in front of the Synthesizer's pool."""

from __future__ import annotations

import asyncio
import threading

import numpy as np
import pytest

from herald.media.frames import Pcm
from herald.speech.cache import CacheKey, SynthesisCache
from herald.speech.tts import Synthesizer, VoiceSettings
from herald.testing.tts import ToneEngine

VOICE = VoiceSettings("tone")


def clip(samples: int, value: int = 1000) -> Pcm:
    return np.full(samples, value, dtype=np.int16)


def key(text: str) -> CacheKey:
    return CacheKey.of(text, VOICE)


def test_a_miss_then_a_hit() -> None:
    cache = SynthesisCache()

    assert cache.get(key("hello")) is None
    cache.put(key("hello"), clip(100))
    got = cache.get(key("hello"))

    assert got is not None
    assert np.array_equal(got, clip(100))
    assert (cache.hits, cache.misses) == (1, 1)


def test_the_key_is_voice_rate_and_text_not_volume() -> None:
    assert CacheKey.of("hi", VoiceSettings("a", 1.0, 50)) == CacheKey.of("hi", VoiceSettings("a", 1.0, 200))
    assert CacheKey.of("hi", VoiceSettings("a", 1.0)) != CacheKey.of("hi", VoiceSettings("a", 1.5))
    assert CacheKey.of("hi", VoiceSettings("a")) != CacheKey.of("hi", VoiceSettings("b"))


def test_least_recently_used_clips_go_first_to_stay_within_the_byte_bound() -> None:
    cache = SynthesisCache(max_bytes=10_000, max_entry_fraction=0.5)
    for name in "abc":
        cache.put(key(name), clip(1000))  # ~2.3 kB each with its overhead
    cache.get(key("a"))  # "a" is now more recent than "b"
    cache.put(key("d"), clip(1000))
    cache.put(key("e"), clip(1000))

    assert cache.size_bytes <= 10_000
    assert [name for name in "abcde" if cache.get(key(name)) is not None] == ["a", "c", "d", "e"]


def test_replacing_a_clip_counts_its_size_once() -> None:
    cache = SynthesisCache(max_bytes=10_000, max_entry_fraction=0.5)
    cache.put(key("a"), clip(1000))
    size = cache.size_bytes
    cache.put(key("a"), clip(1000, value=7))

    assert cache.size_bytes == size
    assert len(cache) == 1
    assert cache.get(key("a")) == pytest.approx(clip(1000, value=7))


def test_clips_larger_than_a_fraction_of_the_bound_are_not_kept() -> None:
    cache = SynthesisCache(max_bytes=100_000, max_entry_fraction=0.1)
    cache.put(key("short"), clip(1000))
    cache.put(key("long"), clip(10_000))

    assert cache.get(key("short")) is not None
    assert cache.get(key("long")) is None


def test_empty_clips_still_count_against_the_bound() -> None:
    cache = SynthesisCache(max_bytes=10_000)
    for n in range(1000):
        cache.put(key(f"...{n}"), clip(0))

    assert 0 < len(cache) < 100
    assert cache.size_bytes <= 10_000


def test_stored_clips_are_private_read_only_copies() -> None:
    cache = SynthesisCache()
    pcm = clip(10)
    cache.put(key("a"), pcm)
    pcm[:] = 0

    got = cache.get(key("a"))
    assert got is not None
    assert got[0] == 1000
    with pytest.raises(ValueError, match="read-only"):
        got[0] = 1


def test_rejects_a_bad_bound() -> None:
    with pytest.raises(ValueError, match="max_bytes"):
        SynthesisCache(0)
    with pytest.raises(ValueError, match="max_entry_fraction"):
        SynthesisCache(max_entry_fraction=0)


class GatedEngine(ToneEngine):
    """A ToneEngine whose syntheses wait until ``gate`` opens: the pool's workers stay busy meanwhile."""

    def __init__(self) -> None:
        super().__init__()
        self.gate = threading.Event()
        self.gate.set()
        self.waiting = threading.Event()

    def synthesize(self, text: str, voice: VoiceSettings) -> Pcm:
        self.waiting.set()
        self.gate.wait(timeout=10)
        return super().synthesize(text, voice)


async def test_a_hit_returns_without_the_pool() -> None:
    engine = GatedEngine()
    synth = Synthesizer(engine, workers=1, cache=SynthesisCache())
    first = await synth.synthesize("please hold", VOICE)

    engine.gate.clear()  # the only worker will be stuck on the next miss
    engine.waiting.clear()
    stuck = asyncio.create_task(synth.synthesize("something new", VOICE))
    assert await asyncio.to_thread(engine.waiting.wait, 5)
    # The coroutine finishes on its first step: it never waits for the loop, let alone the pool.
    coro = synth.synthesize("please hold", VOICE)
    with pytest.raises(StopIteration) as done:
        coro.send(None)

    assert np.array_equal(done.value.value, first)
    assert synth.cache is not None
    assert (synth.cache.hits, synth.cache.misses) == (1, 2)
    engine.gate.set()
    await stuck
    assert engine.calls == ["please hold", "something new"]
    synth.close()


async def test_volume_is_applied_after_the_cache() -> None:
    engine = ToneEngine()
    synth = Synthesizer(engine, cache=SynthesisCache())

    loud = await synth.synthesize("hello there", VoiceSettings("tone", volume_percent=200))
    normal = await synth.synthesize("hello there", VoiceSettings("tone"))
    quiet = await synth.synthesize("hello there", VoiceSettings("tone", volume_percent=50))
    again = await synth.synthesize("hello there", VoiceSettings("tone", volume_percent=200))

    assert engine.calls == ["hello there"]
    # Louder, through the soft limiter: the tone peaks at 10000; twice that, softened, stays under full scale.
    assert 1.4 * np.abs(normal).max() < np.abs(loud).max() < 32767
    assert np.abs(quiet).max() == np.abs(normal).max() // 2
    assert np.array_equal(loud, again)
    # The cached clip itself stayed at the engine's level.
    stored = synth.cache.get(CacheKey.of("hello there", VOICE)) if synth.cache else None
    assert stored is not None
    assert np.array_equal(stored, normal)
    synth.close()


async def test_other_rates_and_voices_are_separate_entries() -> None:
    engine = ToneEngine(("tone", "tone-2"))
    synth = Synthesizer(engine, cache=SynthesisCache())

    await synth.synthesize("hi", VoiceSettings("tone"))
    await synth.synthesize("hi", VoiceSettings("tone", speech_rate=1.5))
    await synth.synthesize("hi", VoiceSettings("tone-2"))
    await synth.synthesize("hi", VoiceSettings("tone"))

    assert len(engine.calls) == 3
    synth.close()


async def test_without_a_cache_every_call_synthesises() -> None:
    engine = ToneEngine()
    synth = Synthesizer(engine)

    await synth.synthesize("hi", VOICE)
    await synth.synthesize("hi", VOICE)

    assert engine.calls == ["hi", "hi"]
    synth.close()


async def test_failures_are_not_cached() -> None:
    engine = ToneEngine(fail_on="boom")
    synth = Synthesizer(engine, cache=SynthesisCache())

    for _ in range(2):
        with pytest.raises(RuntimeError, match="boom"):
            await synth.synthesize("boom", VOICE)

    assert engine.calls == ["boom", "boom"]
    synth.close()
