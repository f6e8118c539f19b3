"""A fake TTS engine for unit tests: each word becomes a 100 ms tone, instantly and deterministically."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from herald.media.frames import SAMPLE_RATE_HZ, Pcm
from herald.speech.tts import VoiceSettings

WORD_MS = 100


class ToneEngine:
    """Speaks ``text`` as one 440 Hz tone of ``WORD_MS`` per word (scaled by the speech rate)."""

    def __init__(self, voice_ids: Sequence[str] = ("tone",), *, fail_on: str | None = None) -> None:
        self._voice_ids = tuple(voice_ids)
        self.fail_on = fail_on
        self.calls: list[str] = []

    @property
    def voice_ids(self) -> Sequence[str]:
        return self._voice_ids

    def synthesize(self, text: str, voice: VoiceSettings) -> Pcm:
        self.calls.append(text)
        if self.fail_on is not None and self.fail_on in text:
            raise RuntimeError(f"cannot say {self.fail_on!r}")
        words = max(1, len(text.split()))
        samples = int(words * WORD_MS * SAMPLE_RATE_HZ / 1000 / voice.speech_rate)
        t = np.arange(samples) / SAMPLE_RATE_HZ
        return (np.sin(2 * np.pi * 440 * t) * 10_000).astype(np.int16)
