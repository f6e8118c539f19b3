from __future__ import annotations

import numpy as np
import pytest

from herald.media.frames import FRAME_SAMPLES, SAMPLE_RATE_HZ, Pcm
from herald.media.resample import Resampler, resample_once

AMPLITUDE = 10_000


def sine(freq_hz: float, rate_hz: int, seconds: float) -> Pcm:
    t = np.arange(round(rate_hz * seconds)) / rate_hz
    return (np.sin(2 * np.pi * freq_hz * t) * AMPLITUDE).astype(np.int16)


def peak_hz(pcm: Pcm, rate_hz: int) -> float:
    spectrum = np.abs(np.fft.rfft(pcm.astype(np.float64) * np.hanning(len(pcm))))
    return float(np.fft.rfftfreq(len(pcm), 1 / rate_hz)[np.argmax(spectrum)])


def max_jump(pcm: Pcm) -> int:
    return int(np.abs(np.diff(pcm.astype(np.int32))).max())


def test_whole_clip_keeps_frequency_and_duration() -> None:
    clip = sine(1000, 22_050, 1.5)

    out = resample_once(clip, 22_050, SAMPLE_RATE_HZ)

    assert out.dtype == np.int16
    assert abs(len(out) / SAMPLE_RATE_HZ - len(clip) / 22_050) < 0.001
    assert abs(peak_hz(out, SAMPLE_RATE_HZ) - 1000) < 5
    # The middle of the clip keeps its level (no filter tail effects there).
    middle = out[len(out) // 4 : -len(out) // 4]
    assert 0.9 * AMPLITUDE < np.abs(middle).max() <= AMPLITUDE * 1.02


@pytest.mark.parametrize("to_rate_hz", [16_000, 8_000, 24_000])
def test_streamed_frames_are_seamless(to_rate_hz: int) -> None:
    seconds = 2.0
    clip = sine(440, SAMPLE_RATE_HZ, seconds)
    resampler = Resampler(SAMPLE_RATE_HZ, to_rate_hz)

    chunks = [resampler.push(clip[i : i + FRAME_SAMPLES]) for i in range(0, len(clip), FRAME_SAMPLES)]
    chunks.append(resampler.flush())
    out = np.concatenate(chunks)

    assert out.dtype == np.int16
    assert abs(len(out) - seconds * to_rate_hz) <= 4
    # A 440 Hz sine moves at most 2*pi*440/rate of its amplitude per sample; a click at a frame seam
    # would jump far beyond that.
    expected_step = 2 * np.pi * 440 / to_rate_hz * AMPLITUDE
    body = out[64:-64]  # the filter's ramp-in and ramp-out at the clip's ends are not seams
    assert max_jump(body) < 1.1 * expected_step
    assert abs(peak_hz(out, to_rate_hz) - 440) < 5


def test_streaming_matches_whole_clip() -> None:
    clip = sine(300, SAMPLE_RATE_HZ, 0.5)
    resampler = Resampler(SAMPLE_RATE_HZ, 16_000)

    streamed = [resampler.push(clip[i : i + 333]) for i in range(0, len(clip), 333)]
    streamed.append(resampler.flush())

    whole = resample_once(clip, SAMPLE_RATE_HZ, 16_000)
    np.testing.assert_allclose(np.concatenate(streamed), whole, atol=1)


def test_flush_starts_a_new_stream() -> None:
    clip = sine(1000, 24_000, 0.2)
    resampler = Resampler(24_000, SAMPLE_RATE_HZ)

    first = np.concatenate([resampler.push(clip), resampler.flush()])
    second = np.concatenate([resampler.push(clip), resampler.flush()])

    np.testing.assert_array_equal(first, second)
    assert resampler.flush().size == 0


def test_equal_rates_pass_through() -> None:
    clip = sine(1000, SAMPLE_RATE_HZ, 0.1)

    assert resample_once(clip, SAMPLE_RATE_HZ, SAMPLE_RATE_HZ) is clip
    resampler = Resampler(16_000, 16_000)
    assert resampler.push(clip) is clip
    assert resampler.flush().size == 0


def test_empty_input() -> None:
    resampler = Resampler(SAMPLE_RATE_HZ, 16_000)

    assert resampler.push(np.zeros(0, dtype=np.int16)).size == 0
    assert resampler.flush().size == 0
    assert resample_once(np.zeros(0, dtype=np.int16), 22_050, SAMPLE_RATE_HZ).size == 0


def test_rejects_non_positive_rates() -> None:
    with pytest.raises(ValueError, match="positive"):
        Resampler(0, SAMPLE_RATE_HZ)
