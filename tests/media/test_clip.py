"""Clips: whole frames, listener rates of the right length, speech band kept, aliases removed, seamless
joins between the chunks of one file, one conversion for a phrase many calls say."""

from __future__ import annotations

import numpy as np
import pytest

from herald.media.clip import BLOCK_FRAMES, SILENT_FRAME, Clip
from herald.media.frames import FRAME_SAMPLES, SAMPLE_RATE_HZ


def tone(hz: float, seconds: float = 1.0, level: int = 10_000) -> np.ndarray:
    t = np.arange(int(SAMPLE_RATE_HZ * seconds)) / SAMPLE_RATE_HZ
    return (np.sin(2 * np.pi * hz * t) * level).astype(np.int16)


def play(clips: list[Clip], rate_hz: int) -> np.ndarray:
    """What a listener at ``rate_hz`` receives for ``clips`` played in a row, frame by frame."""
    frames = [clip.payload(i, rate_hz) for clip in clips for i in range(clip.frames)]
    return np.frombuffer(b"".join(frames), dtype=np.int16)


def rms(pcm: np.ndarray) -> float:
    return float(np.sqrt(np.mean(pcm[200:].astype(np.float64) ** 2)))


@pytest.mark.parametrize("rate_hz", [8_000, 16_000, 24_000])
def test_speech_frequencies_pass_and_aliases_are_removed(rate_hz: int) -> None:
    passed = play([Clip(tone(440))], rate_hz)
    assert len(passed) == rate_hz
    assert rms(passed) == pytest.approx(7071, rel=0.01)
    # A tone the new rate cannot carry must not fold back into the band as a false tone.
    assert rms(play([Clip(tone(0.75 * rate_hz))], rate_hz)) < 10


def test_48_khz_is_the_audio_itself_and_a_partial_frame_is_padded_with_silence() -> None:
    pcm = tone(440, seconds=0.05)  # two and a half frames
    clip = Clip(pcm)
    assert clip.frames == 3
    out = play([clip], 48_000)
    assert np.array_equal(out[: len(pcm)], pcm)
    assert not out[len(pcm) :].any()


def test_the_chunks_of_one_file_join_without_a_seam() -> None:
    pcm = tone(440, level=8000)
    chunk = 5 * FRAME_SAMPLES  # 100 ms, as the decoder sends them
    clips: list[Clip] = []
    for start in range(0, len(pcm), chunk):
        clips.append(Clip(pcm[start : start + chunk], follows=clips[-1] if clips else None))
    out = play(clips, 16_000)[100:]
    # At 16 kHz a 440 Hz tone of this level moves at most ~1400 per sample; a seam would jump far more.
    assert int(np.max(np.abs(np.diff(out.astype(np.int32))))) < 1450
    assert np.array_equal(out, play([Clip(pcm)], 16_000)[100:])  # the same as one clip
    peak_hz = np.argmax(np.abs(np.fft.rfft(out))) * 16_000 / len(out)
    assert abs(peak_hz - 440) < 2


def test_a_clip_longer_than_a_block_is_converted_in_order_and_completely() -> None:
    pcm = tone(300, seconds=(3 * BLOCK_FRAMES + 7) * 0.02)
    clip = Clip(pcm)
    # Asking for a late frame first converts everything up to it; every frame stays exact.
    late = clip.payload(clip.frames - 1, 16_000)
    whole = play([clip], 16_000)
    assert late == whole[-(FRAME_SAMPLES // 3) :].tobytes()
    assert len(whole) == clip.frames * FRAME_SAMPLES // 3


def test_silence_stays_silence_at_every_rate() -> None:
    for rate_hz in (8_000, 16_000, 24_000, 48_000):
        data = SILENT_FRAME.payload(rate_hz)
        assert len(data) == 2 * rate_hz // 50
        assert not any(data)


def test_a_phrase_many_calls_say_at_once_is_one_clip_converted_once() -> None:
    phrase = tone(440, seconds=0.2)
    first, second = Clip.shared(phrase), Clip.shared(phrase)
    assert first is second
    assert Clip.shared(tone(440, seconds=0.2)) is not first  # another array: another clip


def test_a_clip_cannot_be_changed_through_its_audio() -> None:
    pcm = tone(440, seconds=0.02)
    clip = Clip(pcm)
    with pytest.raises(ValueError, match="read-only"):
        clip.pcm[0] = 1
