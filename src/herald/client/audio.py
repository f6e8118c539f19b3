"""Received audio: 20 ms chunks of 16-bit mono PCM with their arrival time, and their level."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Final

import numpy as np
import numpy.typing as npt

from herald.media.frames import rms

Pcm = npt.NDArray[np.int16]

FRAME_MS: Final = 20
SILENCE_RMS: Final = 200.0
"""Chunks whose RMS (int16 scale) is at or below this count as silence; speech is typically > 1000."""


@dataclass(frozen=True, slots=True)
class AudioChunk:
    """20 ms of mono PCM as received, and when (the session's clock, seconds)."""

    received_s: float
    pcm: Pcm
    sample_rate_hz: int

    @property
    def duration_s(self) -> float:
        return len(self.pcm) / self.sample_rate_hz

    @property
    def rms(self) -> float:
        return rms(self.pcm)

    @property
    def is_speech(self) -> bool:
        return self.rms > SILENCE_RMS


class Rechunker:
    """Cuts a stream of PCM pieces of any length into chunks of exactly ``samples`` samples."""

    def __init__(self, samples: int) -> None:
        self.samples = samples
        self._pending = np.zeros(0, dtype=np.int16)

    def push(self, pcm: Pcm) -> list[Pcm]:
        """Add ``pcm``; return the whole chunks now available (what is left waits for more)."""
        if len(self._pending):
            pcm = np.concatenate([self._pending, pcm])
        whole = len(pcm) // self.samples * self.samples
        self._pending = pcm[whole:].copy()
        return [pcm[i : i + self.samples] for i in range(0, whole, self.samples)]
