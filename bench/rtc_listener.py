"""A WebRTC listener for the benchmark: an aiortc peer that records when each decoded frame arrived."""

from __future__ import annotations

import asyncio
import contextlib
import json
import time
from collections.abc import Iterable
from dataclasses import dataclass, field
from types import TracebackType
from typing import Any, Protocol

import httpx
import numpy as np
from aiortc import RTCConfiguration, RTCPeerConnection, RTCSessionDescription
from aiortc.mediastreams import MediaStreamError, MediaStreamTrack

from herald.testing.audio_client import SILENCE_RMS


@dataclass(frozen=True)
class Heard:
    received_s: float
    rms: float


@dataclass
class RtcListener:
    """Joins ``channel_id`` with ``token`` at ``base_url``; ``frames`` and ``messages`` fill as they come."""

    base_url: str
    channel_id: str
    token: str
    frames: list[Heard] = field(default_factory=list)
    messages: list[tuple[float, dict[str, Any]]] = field(default_factory=list)

    def __post_init__(self) -> None:
        self._pc = RTCPeerConnection(RTCConfiguration(iceServers=[]))
        self._reader: asyncio.Task[None] | None = None
        self._location = ""

    async def __aenter__(self) -> RtcListener:
        pc = self._pc
        pc.addTransceiver("audio", direction="recvonly")
        channel = pc.createDataChannel("herald")
        channel.on("message", lambda m: self.messages.append((time.monotonic(), json.loads(m))))
        pc.on("track", self._on_track)
        await pc.setLocalDescription(await pc.createOffer())
        async with httpx.AsyncClient(base_url=self.base_url) as http:
            response = await http.post(
                f"/v1/calls/{self.channel_id}/webrtc",
                content=pc.localDescription.sdp,
                headers={"Content-Type": "application/sdp", "Authorization": f"Bearer {self.token}"},
            )
        if response.status_code != 201:
            raise RuntimeError(f"WebRTC offer refused: HTTP {response.status_code} {response.text[:300]}")
        self._location = response.headers["location"]
        await pc.setRemoteDescription(RTCSessionDescription(sdp=response.text, type="answer"))
        deadline = time.monotonic() + 10
        while pc.connectionState != "connected" or channel.readyState != "open":
            if time.monotonic() > deadline:
                raise RuntimeError(
                    f"WebRTC did not connect ({pc.connectionState}, channel {channel.readyState})"
                )
            await asyncio.sleep(0.02)
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self._pc.close()
        if self._reader is not None:
            self._reader.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._reader

    def _on_track(self, track: MediaStreamTrack) -> None:
        self._reader = asyncio.ensure_future(self._read(track))

    async def _read(self, track: MediaStreamTrack) -> None:
        while True:
            try:
                frame = await track.recv()
            except MediaStreamError:
                return
            pcm = frame.to_ndarray().astype(np.float64)  # type: ignore[union-attr]
            self.frames.append(Heard(time.monotonic(), float(np.sqrt(np.mean(pcm**2)))))

    def first_audible_after(self, t_s: float) -> float | None:
        """Arrival time of the first audible frame received after ``t_s``."""
        return next((f.received_s for f in self.frames if f.received_s > t_s and f.rms > SILENCE_RMS), None)

    def last_audible_before_gap(self, t_s: float, gap_frames: int = 3) -> float:
        """Arrival of the last audible frame after ``t_s`` before the first run of ``gap_frames`` silent
        frames (``t_s`` itself if the first frames after it are silent)."""
        return last_audible_before_gap(self.frames, t_s, gap_frames)


class Arrival(Protocol):
    @property
    def received_s(self) -> float: ...

    @property
    def rms(self) -> float: ...


def last_audible_before_gap(frames: Iterable[Arrival], t_s: float, gap_frames: int = 3) -> float:
    """Of ``frames`` (in arrival order), the arrival of the last audible one after ``t_s`` before the first
    run of ``gap_frames`` silent ones (``t_s`` itself if the first frames after it are silent)."""
    last, quiet = t_s, 0
    for frame in (f for f in frames if f.received_s > t_s):
        if frame.rms > SILENCE_RMS:
            last, quiet = frame.received_s, 0
        else:
            quiet += 1
            if quiet >= gap_frames:
                break
    return last
