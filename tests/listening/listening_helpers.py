"""Helpers shared by the listening tests (fixtures are in conftest.py)."""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from herald.media.frames import FRAME_MS, FRAME_SAMPLES, SAMPLE_RATE_HZ, Pcm
from herald.media.resample import resample_once

Say = Callable[[str], Pcm]
"""``say(text)``: a session's Piper clip of ``text`` (48 kHz mono int16)."""


def silence(seconds: float) -> Pcm:
    return np.zeros(round(seconds * SAMPLE_RATE_HZ), dtype=np.int16)


def frames(*pieces: Pcm) -> list[Pcm]:
    """The pieces joined and cut into canonical 20 ms frames, the last one padded with silence."""
    pcm = np.concatenate(pieces)
    pcm = np.concatenate([pcm, np.zeros(-len(pcm) % FRAME_SAMPLES, dtype=np.int16)])
    return list(pcm.reshape(-1, FRAME_SAMPLES))


def voiced_ms(pcm: Pcm, *, level: float = 300.0) -> tuple[int, int]:
    """Where the sound in a 48 kHz clip starts and ends (ms): the first and last 20 ms frame whose RMS
    passes ``level`` (about -40 dBFS)."""
    blocks = frames(pcm)
    loud = [i for i, block in enumerate(blocks) if np.sqrt(np.mean(block.astype(np.float64) ** 2)) > level]
    assert loud, "the clip is silent"
    return loud[0] * FRAME_MS, (loud[-1] + 1) * FRAME_MS


def to_16k(pcm: Pcm) -> Pcm:
    return resample_once(pcm, SAMPLE_RATE_HZ, 16_000)


def voiced(pcm: Pcm) -> Pcm:
    """The clip without its leading and trailing silence (see ``voiced_ms``)."""
    start_ms, end_ms = voiced_ms(pcm)
    return pcm[start_ms * SAMPLE_RATE_HZ // 1000 : end_ms * SAMPLE_RATE_HZ // 1000]
