"""Sample-rate conversion of mono int16 PCM, streamed or whole, on libswresample (through PyAV)."""

from __future__ import annotations

from fractions import Fraction

import av
import numpy as np

from herald.media.frames import Pcm

_EMPTY: Pcm = np.zeros(0, dtype=np.int16)
_EMPTY.setflags(write=False)


class Resampler:
    """Converts a stream of mono int16 PCM from one rate to another.

    ``push`` returns whatever output is ready and keeps the filter state, so consecutive pushes join without
    clicks; ``flush`` drains the tail the filter holds back and resets the stream, ready for a new one.
    Not thread-safe: one stream, one owner.
    """

    def __init__(self, from_rate_hz: int, to_rate_hz: int) -> None:
        if from_rate_hz <= 0 or to_rate_hz <= 0:
            raise ValueError(f"sample rates must be positive, got {from_rate_hz} -> {to_rate_hz}")
        self.from_rate_hz = from_rate_hz
        self.to_rate_hz = to_rate_hz
        self._time_base = Fraction(1, from_rate_hz)
        self._resampler: av.AudioResampler | None = None
        self._next_pts = 0

    def push(self, pcm: Pcm) -> Pcm:
        """Feed ``pcm`` (mono int16 at ``from_rate_hz``); return the output ready so far at ``to_rate_hz``."""
        if self.from_rate_hz == self.to_rate_hz:
            return pcm
        if len(pcm) == 0:
            return _EMPTY
        if self._resampler is None:
            self._resampler = av.AudioResampler(format="s16", layout="mono", rate=self.to_rate_hz)
            self._next_pts = 0
        frame = av.AudioFrame.from_ndarray(
            np.ascontiguousarray(pcm, dtype=np.int16).reshape(1, -1), format="s16", layout="mono"
        )
        frame.sample_rate = self.from_rate_hz
        # The filter graph wants contiguous timestamps; without them it may insert or drop samples.
        frame.time_base = self._time_base
        frame.pts = self._next_pts
        self._next_pts += len(pcm)
        return _concat(self._resampler.resample(frame))

    def flush(self) -> Pcm:
        """End the stream: return the samples still held in the filter, then start afresh."""
        if self._resampler is None:
            return _EMPTY
        tail = _concat(self._resampler.resample(None))
        self._resampler = None
        return tail


def resample_once(pcm: Pcm, from_rate_hz: int, to_rate_hz: int) -> Pcm:
    """Convert a whole clip of mono int16 PCM from ``from_rate_hz`` to ``to_rate_hz``."""
    resampler = Resampler(from_rate_hz, to_rate_hz)
    head = resampler.push(pcm)
    tail = resampler.flush()
    return np.concatenate([head, tail]) if len(tail) else head


def _concat(frames: list[av.AudioFrame]) -> Pcm:
    if not frames:
        return _EMPTY
    return np.concatenate([frame.to_ndarray().reshape(-1) for frame in frames]).astype(np.int16, copy=False)
