"""A call's room: the people listening to one agent, each with a small bounded queue.

The pacer hands the room one frame of a clip per tick; the room takes its bytes once per sample rate in
use (the clip converts itself, see ``media/clip.py``), or encodes it once to Opus for WebRTC listeners,
and offers them to every participant. A participant's
queue holds at most ``max_queued_frames`` of audio: a slow reader loses its oldest audio rather than
building up delay, and never slows anyone else. Messages are never dropped and keep their place in the
stream relative to audio.
"""

from __future__ import annotations

import asyncio
import itertools
from collections import deque
from typing import Any, Final

from herald.media.clip import Frame
from herald.media.messages import encode
from herald.media.opus import OpusStream

_participant_ids = itertools.count(1)


OPUS: Final = 0
"""The ``sample_rate_hz`` of a participant that takes Opus packets (48 kHz, encoded once per room)."""


class Participant:
    """One listener. ``get()`` yields ``bytes`` (a 20 ms frame: PCM at ``sample_rate_hz``, or an Opus packet
    when that is ``OPUS``) or ``str`` (a JSON message), in order."""

    def __init__(self, user_id: str, sample_rate_hz: int, max_queued_frames: int) -> None:
        self.participant_id = next(_participant_ids)
        self.user_id = user_id
        self.sample_rate_hz = sample_rate_hz
        self.dropped_frames = 0
        self._max_frames = max_queued_frames
        self._items: deque[bytes | str] = deque()
        self._frames = 0
        self._ready = asyncio.Event()
        self.closed = False

    def offer_audio(self, pcm: bytes) -> None:
        if self._frames >= self._max_frames:
            self._drop_oldest_frame()
        self._items.append(pcm)
        self._frames += 1
        self._ready.set()

    def offer_message(self, text: str) -> None:
        self._items.append(text)
        self._ready.set()

    async def get(self) -> bytes | str | None:
        """The next item, or ``None`` once the participant was removed from the room."""
        while not self._items:
            if self.closed:
                return None
            self._ready.clear()
            await self._ready.wait()
        item = self._items.popleft()
        if isinstance(item, bytes):
            self._frames -= 1
        return item

    def close(self) -> None:
        self.closed = True
        self._ready.set()

    def _drop_oldest_frame(self) -> None:
        for i, item in enumerate(self._items):
            if isinstance(item, bytes):
                del self._items[i]
                self._frames -= 1
                self.dropped_frames += 1
                return


class Room:
    """Everyone in one call, as far as the agent's audio and messages are concerned."""

    def __init__(self, channel_id: str, agent_user_id: str, *, max_queued_frames: int = 10) -> None:
        self.channel_id = channel_id
        self.agent_user_id = agent_user_id
        self._max_queued_frames = max_queued_frames
        self._participants: dict[int, Participant] = {}
        self._opus: OpusStream | None = None
        self._seq_ids = itertools.count(1)

    @property
    def participants(self) -> list[Participant]:
        return list(self._participants.values())

    def join(self, user_id: str, sample_rate_hz: int) -> Participant:
        participant = Participant(user_id, sample_rate_hz, self._max_queued_frames)
        self._participants[participant.participant_id] = participant
        if sample_rate_hz == OPUS and self._opus is None:
            self._opus = OpusStream()
        return participant

    def leave(self, participant: Participant) -> None:
        self._participants.pop(participant.participant_id, None)
        participant.close()
        if all(p.sample_rate_hz != OPUS for p in self._participants.values()):
            self._opus = None

    def close(self) -> None:
        for participant in list(self._participants.values()):
            self.leave(participant)

    def send_audio(self, frame: Frame) -> None:
        """Offer one 20 ms frame to everyone, at each one's rate."""
        by_rate: dict[int, bytes] = {}
        for participant in self._participants.values():
            rate = participant.sample_rate_hz
            data = by_rate.get(rate)
            if data is None:
                data = by_rate[rate] = self._encode(frame) if rate == OPUS else frame.payload(rate)
            participant.offer_audio(data)

    def _encode(self, frame: Frame) -> bytes:
        assert self._opus is not None
        return self._opus.encode(frame)

    def send_message(self, msg_type: int, data: dict[str, Any], *, to: Participant | None = None) -> None:
        text = encode(msg_type, data, seq_id=next(self._seq_ids), sender_id=self.agent_user_id)
        targets = [to] if to is not None else self._participants.values()
        for participant in targets:
            participant.offer_message(text)
