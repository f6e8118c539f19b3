"""Clips: audio as the pacer plays it, cut into frames, handed to each listener at its own rate.

A clip is a stretch of canonical audio in whole frames: a TTS piece, a decoded chunk of an audio URL, a
cached phrase. Listeners below 48 kHz (every client rate divides it) need each frame downsampled. Doing
that per frame, per call, on the pacer's tick was the largest cost of a tick at hundreds of calls, so a
clip converts itself instead: block by block as playout reaches it (a windowed-sinc low-pass evaluated
at the kept samples only, vectorised over the block), keeping the result. A frame's bytes are then a
slice, and a cached phrase said by five hundred calls at once is converted once.

A clip that continues the one before it without a break (the chunks of one audio file) carries the
tail of that clip as its filter history, so the joins are seamless; a clip that starts afresh (a new
sentence, a new file) starts from silence.
"""

from __future__ import annotations

import weakref
from typing import Final, NamedTuple

import numpy as np
import numpy.typing as npt
from numpy.lib.stride_tricks import as_strided

from herald.media.frames import FRAME_SAMPLES, SAMPLE_RATE_HZ, Pcm

TAPS_PER_FACTOR: Final = 16
"""Filter length per unit of decimation: 49 taps at 3x. Enough to keep speech free of aliasing."""

MAX_FACTOR: Final = 6
"""48 kHz → 8 kHz, the lowest client rate."""

HISTORY_SAMPLES: Final = TAPS_PER_FACTOR * MAX_FACTOR
"""Input before a clip's first sample that the longest filter reads."""

BLOCK_FRAMES: Final = 25
"""Frames converted at a time (0.5 s): little work on any one tick, few steps per clip."""


def lowpass(factor: int) -> npt.NDArray[np.float32]:
    """A Blackman-windowed sinc with its cut-off just below the new Nyquist frequency, unit DC gain."""
    taps = TAPS_PER_FACTOR * factor + 1
    n = np.arange(taps) - (taps - 1) / 2
    cutoff = 0.9 / (2 * factor)  # of the input rate: 10 % below the output's Nyquist
    h = np.sinc(2 * cutoff * n) * np.blackman(taps)
    normalized: npt.NDArray[np.float32] = (h / h.sum()).astype(np.float32)
    return normalized


_REVERSED_FILTERS: dict[int, npt.NDArray[np.float32]] = {
    factor: lowpass(factor)[::-1].copy()  # reversed: a dot product with a window is a convolution
    for factor in range(2, MAX_FACTOR + 1)
    if FRAME_SAMPLES % factor == 0
}


class Clip:
    """Canonical PCM in whole frames (a partial last frame is padded with silence), read-only."""

    __slots__ = ("__weakref__", "_conversions", "_history", "frames", "pcm")

    def __init__(self, pcm: Pcm, *, follows: Clip | None = None) -> None:
        whole = -(-len(pcm) // FRAME_SAMPLES) * FRAME_SAMPLES
        if whole != len(pcm):
            padded = np.zeros(whole, dtype=np.int16)
            padded[: len(pcm)] = pcm
            pcm = padded
        elif pcm.flags.writeable:
            pcm = pcm.view()
        pcm.setflags(write=False)
        self.pcm: Pcm = pcm
        self.frames = whole // FRAME_SAMPLES
        self._history: Pcm | None = None if follows is None else follows.tail()
        self._conversions: dict[int, _Conversion] = {}

    @classmethod
    def shared(cls, pcm: Pcm) -> Clip:
        """The clip of ``pcm`` (a fresh start), shared by everyone who plays that same array while any
        of them does: a cached phrase is then converted once for all the calls saying it."""
        clip = _shared.get(id(pcm))
        if clip is None:
            clip = _shared[id(pcm)] = _SharedClip(pcm)
        return clip

    def tail(self) -> Pcm:
        """The last samples, as history for a clip that continues this one."""
        tail = self.pcm[-HISTORY_SAMPLES:]
        if len(tail) < HISTORY_SAMPLES:
            before = self._history if self._history is not None else np.zeros(HISTORY_SAMPLES, np.int16)
            tail = np.concatenate((before, tail))[-HISTORY_SAMPLES:]
        return tail.copy()

    def frame(self, index: int) -> Pcm:
        """Frame ``index`` at the canonical rate (a view)."""
        return self.pcm[index * FRAME_SAMPLES : (index + 1) * FRAME_SAMPLES]

    def payload(self, index: int, rate_hz: int) -> bytes:
        """Frame ``index`` as 16-bit little-endian PCM at ``rate_hz`` (48 kHz or a divisor of it)."""
        if rate_hz == SAMPLE_RATE_HZ:
            return self.frame(index).tobytes()
        conversion = self._conversions.get(rate_hz)
        if conversion is None:
            conversion = self._conversions[rate_hz] = _Conversion(self, SAMPLE_RATE_HZ // rate_hz)
        return conversion.payload(index)

    def input_with_history(self, start: int, stop: int, before: int) -> npt.NDArray[np.float32]:
        """Samples ``start - before`` to ``stop`` as float32; before the clip: its history, or silence."""
        if start >= before:
            return self.pcm[start - before : stop].astype(np.float32)
        missing = before - start
        history = self._history
        head = (
            np.zeros(missing, dtype=np.float32)
            if history is None
            else history[len(history) - missing :].astype(np.float32)
        )
        return np.concatenate((head, self.pcm[:stop].astype(np.float32)))


class _SharedClip(Clip):
    __slots__ = ("_source",)

    def __init__(self, pcm: Pcm) -> None:
        super().__init__(pcm)
        self._source = pcm  # while the clip lives, so does the array: its id cannot be reused


_shared: weakref.WeakValueDictionary[int, _SharedClip] = weakref.WeakValueDictionary()


class _Conversion:
    """One clip at one lower rate, converted ``BLOCK_FRAMES`` at a time as playout asks for them."""

    __slots__ = ("_clip", "_done", "_factor", "_filter", "_out", "_out_frame")

    def __init__(self, clip: Clip, factor: int) -> None:
        self._clip = clip
        self._factor = factor
        self._filter = _REVERSED_FILTERS[factor]
        self._out_frame = FRAME_SAMPLES // factor
        self._out: Pcm = np.empty(clip.frames * self._out_frame, dtype=np.int16)
        self._done = 0  # frames converted so far

    def payload(self, index: int) -> bytes:
        while index >= self._done:
            self._convert(self._done, min(self._done + BLOCK_FRAMES, self._clip.frames))
        n = self._out_frame
        return self._out[index * n : (index + 1) * n].tobytes()

    def _convert(self, first: int, stop: int) -> None:
        factor, h = self._factor, self._filter
        keep = len(h) - 1
        start_sample, stop_sample = first * FRAME_SAMPLES, stop * FRAME_SAMPLES
        out = self._out[first * self._out_frame : stop * self._out_frame]
        signal = self._clip.input_with_history(start_sample, stop_sample, keep)
        if not signal.any():
            out[:] = 0
        else:
            # Output n reads the ``len(h)`` inputs ending at input sample n * factor + factor - 1: a causal
            # filter, as a stream would run it (half a millisecond of delay, no look-ahead across clips).
            windows = as_strided(
                signal[factor - 1 :],
                shape=(len(out), len(h)),
                strides=(signal.itemsize * factor, signal.itemsize),
                writeable=False,
            )
            out[:] = np.clip(np.rint(windows @ h), -32768, 32767)
        self._done = stop


class Frame(NamedTuple):
    """One frame of a clip: what the pacer hands the outputs every 20 ms."""

    clip: Clip
    position: int
    """The frame's number within the clip."""

    @property
    def pcm(self) -> Pcm:
        return self.clip.frame(self.position)

    def payload(self, rate_hz: int) -> bytes:
        return self.clip.payload(self.position, rate_hz)


SILENT_FRAME: Final = Frame(Clip(np.zeros(FRAME_SAMPLES, dtype=np.int16)), 0)
"""20 ms of silence: what the pacer sends while an agent says nothing."""
