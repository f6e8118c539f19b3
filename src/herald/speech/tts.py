"""The TTS engine contract, and the async front that keeps inference off the event loop."""

from __future__ import annotations

import asyncio
import functools
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Protocol

import numpy as np

from herald.media.frames import Pcm
from herald.speech.cache import CacheKey, SynthesisCache
from herald.speech.workers import NORMAL, URGENT, PriorityPool


@dataclass(frozen=True, slots=True)
class VoiceSettings:
    """How one utterance is voiced."""

    voice_id: str
    speech_rate: float = 1.0
    """1.0 is the voice's natural pace; 0.5 is half as fast, 2.0 twice as fast."""
    volume_percent: int = 100
    """0 to 400: a gain applied after synthesis."""


class TtsEngine(Protocol):
    """A speech synthesiser. ``synthesize`` blocks (it runs inference) and is called from worker threads."""

    @property
    def voice_ids(self) -> Sequence[str]: ...

    def synthesize(self, text: str, voice: VoiceSettings) -> Pcm:
        """Speak ``text`` (one clause or a few sentences) and return mono PCM at the canonical 48 kHz rate."""
        ...


_KNEE = 0.6
"""Above this share of full scale, amplified samples are bent smoothly towards full scale."""


def apply_volume(pcm: Pcm, volume_percent: int) -> Pcm:
    """Scale ``pcm`` by ``volume_percent`` (100 = unchanged).

    Above 100 % the amplified signal passes a soft-knee limiter: linear up to 60 % of full scale, then
    compressed smoothly towards it. Speech from most engines already peaks near full scale, so plain
    gain would clip harshly; this keeps it louder without the distortion.
    """
    if volume_percent == 100:
        return pcm
    if volume_percent < 100:
        return (pcm.astype(np.int32) * volume_percent // 100).astype(np.int16)
    x = pcm.astype(np.float32) * (volume_percent / 100 / 32768.0)
    magnitude = np.abs(x)
    over = magnitude > _KNEE
    bent = _KNEE + (1 - _KNEE) * np.tanh((magnitude[over] - _KNEE) / (1 - _KNEE))
    x[over] = np.sign(x[over]) * bent
    limited: Pcm = (x * 32767.0).astype(np.int16)
    return limited


TTS_NICENESS = 10


class Synthesizer:
    """Runs a ``TtsEngine`` on a small thread pool so inference never blocks the event loop.

    ``urgent`` jobs (the first piece of an utterance: what a listener is waiting for) run before queued
    look-ahead work. Cancelling the awaiting task withdraws a job that has not started yet. With a ``cache``,
    a phrase synthesised before returns at once, without waiting for the pool.
    """

    def __init__(self, engine: TtsEngine, *, workers: int = 2, cache: SynthesisCache | None = None) -> None:
        self.engine = engine
        self.cache = cache
        # Below the event loop's priority: on a busy machine synthesis may run late, the 20 ms pacer must not.
        self._pool = PriorityPool(workers, name="tts", niceness=TTS_NICENESS)

    async def synthesize(self, text: str, voice: VoiceSettings, *, urgent: bool = False) -> Pcm:
        if self.cache is not None:
            cached = self.cache.get(CacheKey.of(text, voice))
            if cached is not None:
                return apply_volume(cached, voice.volume_percent)
        job = functools.partial(self._run, text, voice)
        return await asyncio.wrap_future(self._pool.submit(job, priority=URGENT if urgent else NORMAL))

    def _run(self, text: str, voice: VoiceSettings) -> Pcm:
        pcm = self.engine.synthesize(text, voice)
        # Stored here, not by the awaiting task: a clip finished after its caller gave up is still kept.
        if self.cache is not None:
            self.cache.put(CacheKey.of(text, voice), pcm)
        return apply_volume(pcm, voice.volume_percent)

    def close(self) -> None:
        self._pool.shutdown()
