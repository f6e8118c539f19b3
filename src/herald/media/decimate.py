"""Integer-factor downsampling of canonical frames for listeners (48 kHz → 24, 16 or 8 kHz), cheaply.

The room converts every frame of every instance for each rate in use, 50 times a second, on the event
loop: at hundreds of instances a general resampler's per-call overhead (PyAV's is ~75 µs a frame) is the
bottleneck, and a buffering one (soxr) adds a frame or two of delay. A windowed-sinc low-pass evaluated
only at the kept samples is one small matrix-vector product per frame (~25 µs), adds no delay beyond
the filter's own half millisecond, and carries its history between frames so the stream is seamless.
Silence that follows silence costs nothing at all: most instances are quiet most of the time.
"""

from __future__ import annotations

import numpy as np
import numpy.typing as npt
from numpy.lib.stride_tricks import as_strided

from herald.media.frames import SILENCE, Pcm

TAPS_PER_FACTOR = 16
"""Filter length per unit of decimation: 49 taps at 3x. Enough to keep speech free of aliasing."""


def lowpass(factor: int) -> npt.NDArray[np.float32]:
    """A Blackman-windowed sinc with its cut-off just below the new Nyquist frequency, unit DC gain."""
    taps = TAPS_PER_FACTOR * factor + 1
    n = np.arange(taps) - (taps - 1) / 2
    cutoff = 0.9 / (2 * factor)  # of the input rate: 10 % below the output's Nyquist
    h = np.sinc(2 * cutoff * n) * np.blackman(taps)
    normalized: npt.NDArray[np.float32] = (h / h.sum()).astype(np.float32)
    return normalized


class Decimator:
    """Streams fixed-size int16 frames down by an integer ``factor`` (``frame_samples // factor`` out)."""

    def __init__(self, factor: int, frame_samples: int) -> None:
        if factor < 2:
            raise ValueError(f"the factor must be at least 2 (got {factor})")
        if frame_samples % factor:
            raise ValueError(f"frames of {frame_samples} samples do not divide by {factor}")
        self.factor = factor
        self._h = lowpass(factor)[::-1].copy()  # reversed: a dot product with a window is a convolution
        self._keep = len(self._h) - 1
        self._frame = frame_samples
        self._buffer = np.zeros(self._keep + frame_samples, dtype=np.float32)
        itemsize = self._buffer.itemsize
        # Each output sample's window of input, as a view: row n starts at input sample n * factor.
        self._windows = as_strided(
            self._buffer[factor - 1 :],
            shape=(frame_samples // factor, len(self._h)),
            strides=(itemsize * factor, itemsize),
            writeable=False,
        )
        self._silent_out: Pcm = np.zeros(frame_samples // factor, dtype=np.int16)
        self._silent_in = len(self._h)  # samples of silence at the end of the history

    def push(self, pcm: Pcm) -> Pcm:
        if len(pcm) != self._frame:
            raise ValueError(f"expected a frame of {self._frame} samples, got {len(pcm)}")
        if pcm is SILENCE and self._silent_in >= len(self._h):
            return self._silent_out  # the filter's whole history is silence too
        buffer = self._buffer
        buffer[: self._keep] = buffer[self._frame :]
        buffer[self._keep :] = pcm
        self._silent_in = self._silent_in + self._frame if pcm is SILENCE else 0
        out: Pcm = np.clip(np.rint(self._windows @ self._h), -32768, 32767).astype(np.int16)
        return out
