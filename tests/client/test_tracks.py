"""The test microphone: 20 ms frames of a tone (or silence), stamped and paced."""

from __future__ import annotations

import fractions

import numpy as np
import pytest
from aiortc.mediastreams import MediaStreamError

from herald.client.tracks import ToneTrack, silence


class Clock:
    def __init__(self) -> None:
        self.now_s = 100.0

    def __call__(self) -> float:
        return self.now_s


async def test_frames_are_20_ms_of_48_khz_mono_with_running_pts():
    clock = Clock()
    track = ToneTrack(1000.0, 0.5, clock=clock)
    frames = []
    for _ in range(3):
        frames.append(await track.recv())
        clock.now_s += 0.02  # on time: no waiting
    assert [f.pts for f in frames] == [0, 960, 1920]
    for frame in frames:
        assert (frame.samples, frame.sample_rate, frame.format.name, frame.layout.name) == (
            960,
            48_000,
            "s16",
            "mono",
        )
        assert frame.time_base == fractions.Fraction(1, 48_000)
    pcm = np.concatenate([f.to_ndarray().reshape(-1) for f in frames]).astype(np.float64)
    assert np.sqrt(np.mean(pcm**2)) == pytest.approx(0.5 * 32767 / np.sqrt(2), rel=0.01)
    # The phase runs on across frames: no click at the joins.
    assert np.max(np.abs(np.diff(pcm))) < 2 * np.pi * 1000 / 48_000 * 0.5 * 32767 * 1.01


async def test_a_frame_is_not_handed_out_before_its_time():
    clock = Clock()
    track = ToneTrack(clock=clock)
    await track.recv()
    clock.now_s += 0.015  # 5 ms early for the second frame: recv waits those 5 ms (real time)
    await track.recv()
    assert track.frames_sent == 2


async def test_silence_is_digital_silence():
    frame = await silence().recv()
    assert not frame.to_ndarray().any()


async def test_a_stopped_track_ends():
    track = ToneTrack()
    track.stop()
    with pytest.raises(MediaStreamError):
        await track.recv()


def test_level_is_checked():
    with pytest.raises(ValueError, match="level"):
        ToneTrack(level=1.5)
