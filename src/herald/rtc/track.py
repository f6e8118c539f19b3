"""The agent's voice as a WebRTC audio track, fed by the pacer through a room participant.

aiortc's sender pulls ``recv()`` as fast as it returns and encodes each frame to Opus at once, so the
track itself sets the pace: it hands out a frame only when the pacer (``media/ticker.py``, the one
real-time clock every output shares) has put one in. Before the connection is up nothing pulls, so the
track keeps only the newest few frames: a late connection starts with current audio, not a backlog.

With Opus negotiated the frames are already packets (the room encodes once for everyone, see
``media/opus.py``) and go out as they are; otherwise (PCMU/PCMA peers) they are 48 kHz PCM that aiortc
encodes.
"""

from __future__ import annotations

import asyncio
import fractions
from collections import deque
from typing import Any

import av
from aiortc.mediastreams import MediaStreamError, MediaStreamTrack

from herald.media.frames import FRAME_SAMPLES, SAMPLE_RATE_HZ

MAX_BUFFERED_FRAMES = 5
_TIME_BASE = fractions.Fraction(1, SAMPLE_RATE_HZ)


class AgentAudioTrack(MediaStreamTrack):
    """20 ms frames (Opus packets, or 48 kHz mono PCM), in the order and at the pace the pacer gives them."""

    kind = "audio"

    def __init__(self, *, opus: bool) -> None:
        super().__init__()
        self.opus = opus
        self._frames: deque[bytes] = deque(maxlen=MAX_BUFFERED_FRAMES)
        self._ready = asyncio.Event()
        self._pts = 0
        self.frames_sent = 0

    def push(self, data: bytes) -> None:
        """One frame: an Opus packet, or 16-bit little-endian PCM at 48 kHz (the oldest is dropped when
        nobody pulls)."""
        self._frames.append(data)
        self._ready.set()

    async def recv(self) -> av.AudioFrame | av.Packet[Any]:
        while not self._frames:
            if self.readyState != "live":
                raise MediaStreamError
            self._ready.clear()
            await self._ready.wait()
        if self.readyState != "live":
            raise MediaStreamError
        data = self._frames.popleft()
        out: av.AudioFrame | av.Packet[Any]
        if self.opus:
            out = av.Packet(data)
        else:
            out = av.AudioFrame(format="s16", layout="mono", samples=FRAME_SAMPLES)
            out.planes[0].update(data)
            out.sample_rate = SAMPLE_RATE_HZ
        out.time_base = _TIME_BASE
        out.pts = self._pts
        self._pts += FRAME_SAMPLES
        self.frames_sent += 1
        return out

    def stop(self) -> None:
        super().stop()
        self._ready.set()  # a pending recv() ends
