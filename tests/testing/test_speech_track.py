"""The WebRTC test microphone: silence, and the clips it is told to say, in 20 ms frames on time."""

from __future__ import annotations

import fractions

import numpy as np
import pytest
from aiortc.mediastreams import MediaStreamError

from herald.testing.speech_track import SpeechTrack


class Clock:
    def __init__(self) -> None:
        self.now_s = 100.0

    def __call__(self) -> float:
        return self.now_s


async def frames_of(track: SpeechTrack, clock: Clock, count: int) -> list[np.ndarray]:
    """``count`` frames, each on time (no waiting), as int16 arrays."""
    out = []
    for _ in range(count):
        frame = await track.recv()
        assert (frame.samples, frame.sample_rate, frame.layout.name) == (960, 48_000, "mono")
        assert frame.time_base == fractions.Fraction(1, 48_000)
        assert frame.pts == track.frames_sent * 960 - 960
        out.append(frame.to_ndarray().reshape(-1))
        clock.now_s += 0.02
    return out


def tone(samples: int, level: int = 8000) -> np.ndarray:
    return (np.sin(np.arange(samples) / 5) * level).astype(np.int16)


async def test_it_sends_silence_then_the_clip_then_silence_and_says_when_the_clip_went_out():
    clock = Clock()
    track = SpeechTrack(clock=clock)
    assert not any(f.any() for f in await frames_of(track, clock, 3))

    clip = np.concatenate([np.zeros(960, np.int16), tone(2 * 960 + 100)])  # 20 ms of silence first
    spoken = track.say(clip)
    assert track.speaking
    sent = await frames_of(track, clock, 6)
    assert spoken.done()
    assert not track.speaking
    assert np.array_equal(np.concatenate(sent[:4])[: len(clip)], clip)
    assert not sent[3][100:].any(), "the last frame is padded with silence"
    assert not any(f.any() for f in sent[4:])
    result = spoken.result()
    # Frames 3..6 carry the clip; the clock reads 100.06 s as frame 3 goes out.
    assert result.first_frame_s == pytest.approx(100.06)
    assert result.voice_started_s == pytest.approx(100.08)
    assert result.voice_ended_s == pytest.approx(100.12)
    assert result.last_frame_s == pytest.approx(100.12)


async def test_clips_are_said_in_turn_and_a_16_khz_clip_is_resampled():
    clock = Clock()
    track = SpeechTrack(clock=clock)
    first = track.say(tone(960))
    second = track.say(tone(320 * 5, level=4000), sample_rate_hz=16_000)  # 100 ms
    sent = await frames_of(track, clock, 1)
    assert first.done()
    assert not second.done()
    sent += await frames_of(track, clock, 5)
    assert second.done()
    assert second.result().first_frame_s == pytest.approx(100.02)
    assert second.result().last_frame_s == pytest.approx(100.10)
    assert [bool(f.any()) for f in sent] == [True] * 6


async def test_a_stopped_track_ends_and_fails_what_it_had_still_to_say():
    track = SpeechTrack()
    pending = track.say(tone(960 * 10))
    track.stop()
    with pytest.raises(ConnectionError):
        await pending
    with pytest.raises(MediaStreamError):
        await track.recv()
    with pytest.raises(ConnectionError):
        await track.say(tone(960))
