"""The unit of audio inside Herald: 20 ms of 16-bit mono PCM at the canonical rate.

Everything upstream (TTS, decoded URLs) is converted to this format once; every output converts from it.
A frame is a read-only ``numpy`` array of ``FRAME_SAMPLES`` int16 samples.
"""

from __future__ import annotations

from typing import Final

import numpy as np
import numpy.typing as npt

SAMPLE_RATE_HZ: Final = 48_000
"""The canonical rate: WebRTC's Opus rate, and an integer multiple of every rate a client may ask for."""

FRAME_MS: Final = 20
FRAME_NS: Final = FRAME_MS * 1_000_000
FRAME_SAMPLES: Final = SAMPLE_RATE_HZ * FRAME_MS // 1000

CLIENT_SAMPLE_RATES_HZ: Final = (8_000, 16_000, 24_000, 48_000)

Pcm = npt.NDArray[np.int16]
"""Mono 16-bit samples."""


def rms(pcm: Pcm) -> float:
    """Root-mean-square level of ``pcm`` on the int16 scale (0 for silence)."""
    if len(pcm) == 0:
        return 0.0
    return float(np.sqrt(np.mean(np.square(pcm.astype(np.float64)))))
