"""A room: per-rate frames to every participant, messages in order, slow readers lose old audio only."""

from __future__ import annotations

import json

import numpy as np

from herald.media.clip import Clip, Frame
from herald.media.frames import FRAME_SAMPLES
from herald.media.room import Room


def frame(level: int) -> Frame:
    return Frame(Clip(np.full(FRAME_SAMPLES, level, dtype=np.int16)), 0)


async def test_each_participant_gets_frames_at_its_own_rate() -> None:
    room = Room("ch", "agent")
    p16 = room.join("u1", 16_000)
    p48 = room.join("u2", 48_000)
    p8 = room.join("u3", 8_000)
    for _ in range(3):
        room.send_audio(frame(1000))
    sizes = {p.user_id: [] for p in (p16, p48, p8)}
    for p in (p16, p48, p8):
        for _ in range(3):
            item = await p.get()
            assert isinstance(item, bytes)
            sizes[p.user_id].append(len(item))
    # Every frame is exactly 20 ms at its rate, the first one included.
    assert sizes == {"u1": [640] * 3, "u2": [1920] * 3, "u3": [320] * 3}


async def test_messages_keep_their_place_among_frames_and_carry_the_envelope() -> None:
    room = Room("ch", "agent-1")
    p = room.join("u", 48_000)
    room.send_audio(frame(1))
    room.send_message(1001, {"state": 3})
    room.send_audio(frame(2))
    first, message, last = await p.get(), await p.get(), await p.get()
    assert isinstance(first, bytes)
    assert isinstance(last, bytes)
    assert isinstance(message, str)
    envelope = json.loads(message)
    assert envelope["type"] == 1001
    assert envelope["data"] == {"state": 3}
    assert envelope["senderId"] == "agent-1"
    assert isinstance(envelope["seqId"], int)


async def test_a_slow_reader_loses_its_oldest_audio_not_its_messages() -> None:
    room = Room("ch", "agent", max_queued_frames=3)
    p = room.join("u", 48_000)
    room.send_message(1001, {"state": 3})
    for level in range(1, 11):
        room.send_audio(frame(level))
    items = [await p.get() for _ in range(4)]
    assert isinstance(items[0], str)
    levels = [int(np.frombuffer(i, dtype=np.int16)[0]) for i in items[1:] if isinstance(i, bytes)]
    assert levels == [8, 9, 10]
    assert p.dropped_frames == 7


async def test_leaving_ends_the_participant_stream() -> None:
    room = Room("ch", "agent")
    p = room.join("u", 16_000)
    room.leave(p)
    assert await p.get() is None
    room.send_audio(frame(1))  # nobody left: nothing to do, nothing breaks


async def test_resampled_frames_stay_exact_and_continuous_over_a_long_stream() -> None:
    room = Room("ch", "agent", max_queued_frames=1000)
    p = room.join("u", 16_000)
    t = np.arange(500 * FRAME_SAMPLES) / 48_000
    sine = (np.sin(2 * np.pi * 440 * t) * 8000).astype(np.int16)
    clip = Clip(sine)
    for i in range(500):
        room.send_audio(Frame(clip, i))
    out = []
    for _ in range(500):
        item = await p.get()
        assert isinstance(item, bytes)
        assert len(item) == 640
        out.append(np.frombuffer(item, dtype=np.int16))
    pcm = np.concatenate(out)[64:]  # past the filter's start-up
    # A 440 Hz sine at 16 kHz moves at most ~1400 per sample at this level; a seam would jump far more.
    assert int(np.max(np.abs(np.diff(pcm.astype(np.int32))))) < 1600
