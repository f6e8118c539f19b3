"""The TTS engine contract, and the async front that keeps inference off the event loop."""

from __future__ import annotations

import asyncio
import functools
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Protocol

import numpy as np

from herald.clock import Clock, SystemClock
from herald.media.frames import Pcm
from herald.speech.cache import CacheKey, SynthesisCache
from herald.speech.urgency import current_slack_ns
from herald.speech.workers import PriorityPool


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

    Jobs run earliest-deadline-first: a job is due when its call would run out of audio (now plus the
    slack its producer reports), so a new utterance's first clause, with nothing buffered, goes before
    look-ahead work for calls that still have seconds to play. Cancelling the awaiting task withdraws a
    job that has not started yet. With a ``cache``, a phrase synthesised before returns at once.
    """

    def __init__(
        self,
        engine: TtsEngine,
        *,
        workers: int = 2,
        cache: SynthesisCache | None = None,
        clock: Clock | None = None,
    ) -> None:
        self._clock = clock or SystemClock()
        self.engine = engine
        self.cache = cache
        # Below the event loop's priority: on a busy machine synthesis may run late, the 20 ms pacer must not.
        self._pool = PriorityPool(workers, name="tts", niceness=TTS_NICENESS)

    async def synthesize(self, text: str, voice: VoiceSettings) -> Pcm:
        """Synthesise ``text``, queued earliest-deadline-first by the caller's slack (``speech.urgency``)."""
        if self.cache is not None:
            cached = self.cache.get(CacheKey.of(text, voice))
            if cached is not None:
                return apply_volume(cached, voice.volume_percent)
        job = functools.partial(self._run, text, voice)
        deadline_ns = self._clock.monotonic_ns() + current_slack_ns()
        return await asyncio.wrap_future(self._pool.submit(job, priority=deadline_ns))

    def _run(self, text: str, voice: VoiceSettings) -> Pcm:
        pcm = self.engine.synthesize(text, voice)
        # Stored here, not by the awaiting task: a clip finished after its caller gave up is still kept.
        if self.cache is not None:
            self.cache.put(CacheKey.of(text, voice), pcm)
        return apply_volume(pcm, voice.volume_percent)

    def close(self) -> None:
        self._pool.shutdown()
