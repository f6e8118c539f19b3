"""A microphone for tests and the terminal: an audio track that sends a tone (or silence), in real time.

As in aiortc, whoever implements ``recv()`` owns the pacing: each call returns the next 20 ms frame,
stamped with its ``pts``, no earlier than its time on a monotonic clock.
"""

from __future__ import annotations

import asyncio
import fractions
import math
import time
from collections.abc import Callable
from typing import Final

import numpy as np
from aiortc.mediastreams import MediaStreamError, MediaStreamTrack
from av import AudioFrame

from herald.client.audio import FRAME_MS

SAMPLE_RATE_HZ: Final = 48_000
FRAME_SAMPLES: Final = SAMPLE_RATE_HZ * FRAME_MS // 1000


class ToneTrack(MediaStreamTrack):
    """A sine of ``frequency_hz`` at ``level`` (0..1 of full scale; 0 is digital silence), 48 kHz mono."""

    kind = "audio"

    def __init__(
        self,
        frequency_hz: float = 440.0,
        level: float = 0.3,
        *,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        super().__init__()
        if not 0.0 <= level <= 1.0:
            raise ValueError(f"level must be between 0 and 1, not {level}")
        self.frequency_hz = frequency_hz
        self.level = level
        self.frames_sent = 0
        self._clock = clock
        self._start_s: float | None = None

    def samples(self, first_sample: int, count: int) -> np.ndarray[tuple[int], np.dtype[np.int16]]:
        """``count`` samples of the tone from sample ``first_sample`` on (the phase runs on)."""
        t = (np.arange(count, dtype=np.float64) + first_sample) / SAMPLE_RATE_HZ
        wave = np.sin(2 * math.pi * self.frequency_hz * t) * (self.level * 32767)
        return wave.astype(np.int16)

    async def recv(self) -> AudioFrame:
        if self.readyState != "live":
            raise MediaStreamError
        now = self._clock()
        if self._start_s is None:
            self._start_s = now
        pts = self.frames_sent * FRAME_SAMPLES
        due_s = self._start_s + pts / SAMPLE_RATE_HZ
        if due_s > now:
            await asyncio.sleep(due_s - now)
        frame = AudioFrame.from_ndarray(
            self.samples(pts, FRAME_SAMPLES).reshape(1, -1), format="s16", layout="mono"
        )
        frame.sample_rate = SAMPLE_RATE_HZ
        frame.pts = pts
        frame.time_base = fractions.Fraction(1, SAMPLE_RATE_HZ)
        self.frames_sent += 1
        return frame


def silence() -> ToneTrack:
    """A microphone that sends digital silence."""
    return ToneTrack(level=0.0)
