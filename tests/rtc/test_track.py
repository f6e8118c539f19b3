"""The agent's WebRTC track: frames in the pacer's order with running timestamps, no backlog, a clean end."""

from __future__ import annotations

import asyncio

import numpy as np
import pytest
from aiortc.mediastreams import MediaStreamError

from herald.media.frames import FRAME_SAMPLES
from herald.rtc.track import MAX_BUFFERED_FRAMES, AgentAudioTrack


def pcm(level: int) -> bytes:
    return np.full(FRAME_SAMPLES, level, dtype=np.int16).tobytes()


async def test_frames_come_out_in_order_as_48_khz_mono_with_running_timestamps() -> None:
    track = AgentAudioTrack(opus=False)
    for level in (1, 2, 3):
        track.push(pcm(level))
    frames = [await track.recv() for _ in range(3)]
    assert [int(f.to_ndarray()[0][0]) for f in frames] == [1, 2, 3]
    assert [f.pts for f in frames] == [0, FRAME_SAMPLES, 2 * FRAME_SAMPLES]
    assert {(f.sample_rate, f.samples, f.layout.name, f.format.name) for f in frames} == {
        (48_000, FRAME_SAMPLES, "mono", "s16")
    }


async def test_recv_waits_for_the_pacer() -> None:
    track = AgentAudioTrack(opus=False)
    pending = asyncio.ensure_future(track.recv())
    await asyncio.sleep(0.01)
    assert not pending.done()  # no frame, no audio: the track never runs ahead of the clock
    track.push(pcm(7))
    frame = await asyncio.wait_for(pending, 1)
    assert int(frame.to_ndarray()[0][0]) == 7


async def test_before_anyone_pulls_only_the_newest_frames_are_kept() -> None:
    track = AgentAudioTrack(opus=False)
    for level in range(1, 21):
        track.push(pcm(level))
    first = await track.recv()
    assert int(first.to_ndarray()[0][0]) == 20 - MAX_BUFFERED_FRAMES + 1


async def test_stopping_ends_a_waiting_recv() -> None:
    track = AgentAudioTrack(opus=False)
    pending = asyncio.ensure_future(track.recv())
    await asyncio.sleep(0)
    track.stop()
    with pytest.raises(MediaStreamError):
        await asyncio.wait_for(pending, 1)
