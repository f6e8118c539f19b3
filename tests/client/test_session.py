"""What a joined call records and how callers wait on it, with a transport that is fed by hand."""

from __future__ import annotations

import asyncio
import json
from typing import Self

import numpy as np
import pytest

from herald.client.audio import AudioChunk
from herald.client.errors import CallFailed
from herald.client.messages import Message
from herald.client.session import CallSession


class FakeCall(CallSession):
    sample_rate_hz = 16_000

    def __init__(self, **kwargs) -> None:
        self.now_s = 0.0
        super().__init__(clock=lambda: self.now_s, **kwargs)
        self.sent: list[str] = []

    async def join(self) -> Self:
        self.joined_s = self.now()
        return self

    async def leave(self) -> None:
        self._end("left")

    async def send_text(self, text: str) -> None:
        self.sent.append(text)


def frame(value: int) -> np.ndarray:
    return np.full(320, value, dtype=np.int16)


async def test_audio_and_messages_are_kept_in_arrival_order_and_seen_as_they_come():
    heard: list[AudioChunk] = []
    shown: list[Message] = []
    async with FakeCall(on_audio=heard.append, on_message=shown.append) as call:
        call._add_audio(frame(0))
        call.now_s = 0.02
        call._add_message('{"type": 1001, "data": {"state": 3}}')
        call._add_audio(frame(5000))
        assert [type(item).__name__ for item in call.items] == ["AudioChunk", "Message", "AudioChunk"]
        assert [m.data for m in call.messages(1001)] == [{"state": 3}]
        assert call.messages(1002) == []
        assert len(call.pcm()) == 640
        assert call.audio_s == pytest.approx(0.04)
        assert [c.is_speech for c in heard] == [False, True]
        assert shown[0].received_s == 0.02
    assert call.end_reason == "left"


async def test_audio_can_be_left_to_the_callback_alone():
    heard: list[AudioChunk] = []
    call = FakeCall(keep_audio=False, on_audio=heard.append)
    call._add_audio(frame(1))
    assert (call.items, len(heard), call.audio_s) == ([], 1, 0.02)


async def test_waiting_wakes_on_what_arrives_and_times_out_naming_what_it_waited_for():
    call = FakeCall()
    waiter = asyncio.create_task(
        call.wait_until(lambda: bool(call.messages(1011)), timeout_s=5, what="a custom message")
    )
    await asyncio.sleep(0)
    call._add_message('{"type": 1001, "data": {}}')
    await asyncio.sleep(0)
    assert not waiter.done()
    call._add_message('{"type": 1011, "data": {"message": "hi"}}')
    await asyncio.wait_for(waiter, 1)

    with pytest.raises(TimeoutError, match=r"no speech within 0\.01 s"):
        await call.wait_until(lambda: False, timeout_s=0.01, what="speech")


async def test_send_builds_the_envelope_and_refuses_after_the_end():
    call = FakeCall()
    await call.send(1103, {"voiceId": "espeak-ng/de"})
    assert json.loads(call.sent[0]) == {"type": 1103, "data": {"voiceId": "espeak-ng/de"}}
    call._end("the server closed the connection (code 1000)")
    call._end("a later reason does not replace the first")
    assert call.ended
    assert call.end_reason == "the server closed the connection (code 1000)"
    with pytest.raises(CallFailed, match="has ended"):
        await call.send(1119)
