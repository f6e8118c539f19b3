"""The listeners' downsampler: right length, speech band kept, aliases removed, seamless, silence free."""

from __future__ import annotations

import numpy as np
import pytest

from herald.media.decimate import Decimator
from herald.media.frames import FRAME_SAMPLES, SAMPLE_RATE_HZ, SILENCE


def tone(hz: float, seconds: float = 1.0, level: int = 10_000) -> np.ndarray:
    t = np.arange(int(SAMPLE_RATE_HZ * seconds)) / SAMPLE_RATE_HZ
    return (np.sin(2 * np.pi * hz * t) * level).astype(np.int16)


def stream(factor: int, pcm: np.ndarray) -> np.ndarray:
    d = Decimator(factor, FRAME_SAMPLES)
    return np.concatenate([d.push(pcm[i : i + FRAME_SAMPLES]) for i in range(0, len(pcm), FRAME_SAMPLES)])


def rms(pcm: np.ndarray) -> float:
    return float(np.sqrt(np.mean(pcm[200:].astype(np.float64) ** 2)))


@pytest.mark.parametrize("rate_hz", [8_000, 16_000, 24_000])
def test_speech_frequencies_pass_and_aliases_are_removed(rate_hz: int) -> None:
    factor = SAMPLE_RATE_HZ // rate_hz
    passed = stream(factor, tone(440))
    assert len(passed) == rate_hz
    assert rms(passed) == pytest.approx(7071, rel=0.01)
    # A tone the new rate cannot carry must not fold back into the band as a false tone.
    assert rms(stream(factor, tone(0.75 * rate_hz))) < 10


def test_frames_join_without_a_seam() -> None:
    out = stream(3, tone(440, level=8000))[100:]
    # At 16 kHz a 440 Hz tone of this level moves at most ~1400 per sample; a seam would jump far more.
    assert int(np.max(np.abs(np.diff(out.astype(np.int32))))) < 1450
    peak_hz = np.argmax(np.abs(np.fft.rfft(out))) * 16_000 / len(out)
    assert abs(peak_hz - 440) < 2


def test_silence_after_silence_is_silence_and_a_tail_is_not_lost() -> None:
    d = Decimator(3, FRAME_SAMPLES)
    loud = tone(1000, seconds=0.02)
    d.push(loud)
    tail = d.push(SILENCE)
    assert np.abs(tail).max() > 0  # the filter's memory of the last sound still comes out
    for _ in range(3):
        quiet = d.push(SILENCE)
    assert not quiet.any()
    assert len(quiet) == FRAME_SAMPLES // 3


def test_bad_shapes_are_refused() -> None:
    with pytest.raises(ValueError, match="at least 2"):
        Decimator(1, FRAME_SAMPLES)
    with pytest.raises(ValueError, match="do not divide"):
        Decimator(7, FRAME_SAMPLES)
    with pytest.raises(ValueError, match="expected a frame"):
        Decimator(3, FRAME_SAMPLES).push(np.zeros(100, dtype=np.int16))
