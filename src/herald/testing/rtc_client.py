"""A recording WebRTC client for end-to-end tests: ``AudioRecorder``'s API over a real aiortc peer.

``RtcRecorder`` joins a channel with ``herald.client.rtc.RtcCall`` and keeps everything it receives in
one list, in arrival order: the decoded agent audio as ``AudioFrame`` (20 ms of 48 kHz mono) and the
data-channel messages as ``DataMessage``. So ``mark()``, ``frames()``, ``messages(type, after=...)``,
``wait_until``, ``wait_for_message``, ``heard_s``, ``nonsilent_frames`` and ``describe`` work as they do
for the WebSocket, and tests read the same way for both transports.

    async with RtcRecorder(server.url, call.channel_id, call.token, microphone=ToneTrack()) as rec:
        await rec.wait_for_message(MSG_AGENT_STATE, is_listening)
        await rec.send_json({"type": 1119})

Audio and messages travel apart over WebRTC (RTP and SCTP), and aiortc's jitter buffer holds a few
packets: audio arrives some tens of milliseconds after the messages sent with it.
``refused_offer`` reports how the server refused an offer (status and parsed envelope).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import time
from collections.abc import Callable
from typing import Any, Self
from urllib.parse import quote

import httpx
from aiortc.mediastreams import MediaStreamTrack

from herald.client.audio import AudioChunk
from herald.client.messages import Message
from herald.client.rtc import SAMPLE_RATE_HZ, RtcCall
from herald.testing.audio_client import AudioRecorder, Refusal

_END = object()


class RtcRecorder(AudioRecorder):
    """Records everything a WebRTC participant receives; ``call`` is the underlying ``RtcCall``."""

    def __init__(
        self,
        endpoint: str,
        channel_id: str,
        token: str,
        *,
        microphone: MediaStreamTrack | None = None,
        clock: Callable[[], float] = time.monotonic,
        connect_timeout_s: float = 15.0,
    ) -> None:
        self.call = RtcCall(
            endpoint,
            channel_id,
            token,
            microphone=microphone,
            clock=clock,
            connect_timeout_s=connect_timeout_s,
            keep_audio=False,
            on_audio=self._received,
            on_message=self._received,
            on_end=self._ended,
        )
        super().__init__(self.call.offer_url, sample_rate_hz=SAMPLE_RATE_HZ, clock=clock)
        self.token = token
        self.end_reason = ""
        self._inbox: asyncio.Queue[AudioChunk | Message | object] = asyncio.Queue()
        self._pump: asyncio.Task[None] | None = None

    @property
    def session_url(self) -> str:
        """The session's absolute URL (``Location`` of the answer)."""
        if self.call.session_url is None:
            raise RuntimeError("not joined")
        return self.call.session_url

    async def connect(self) -> Self:
        """Join; raises ``herald.client.errors.Refused`` with the server's error if the offer is refused."""
        self._pump = asyncio.create_task(self._record_all(), name=f"RtcRecorder({self.url})")
        try:
            await self.call.join()
        except BaseException:
            await self.close()
            raise
        self.connected_s = self.call.joined_s
        return self

    async def __aenter__(self) -> Self:
        return await self.connect()

    async def close(self) -> None:
        """Leave (``DELETE`` the session, close the peer connection) and stop recording."""
        try:
            await self.call.leave()
        finally:
            if self._pump is not None:
                self._inbox.put_nowait(_END)
                with contextlib.suppress(asyncio.CancelledError):
                    await self._pump
            await self._notify_closed()

    async def send_json(self, message: dict[str, Any]) -> None:
        """Send a client -> agent envelope over the data channel (e.g. ``{"type": 1119}``)."""
        await self.call.send_text(json.dumps(message))

    async def send_text(self, text: str) -> None:
        """Send ``text`` as it is (for malformed messages)."""
        await self.call.send_text(text)

    async def describe_session(self) -> dict[str, Any]:
        """``GET`` the session (``Microphone.Frames``, ``Rms``, ``ConnectionState``, ...)."""
        return await self.call.describe_session()

    # Items come from aiortc's callbacks; one task records them in order and wakes the waiters, as the
    # WebSocket recorder's reader does.

    def _received(self, item: AudioChunk | Message) -> None:
        self._inbox.put_nowait(item)

    def _ended(self, reason: str) -> None:
        self.end_reason = reason
        self._inbox.put_nowait(_END)

    async def _record_all(self) -> None:
        while (item := await self._inbox.get()) is not _END:
            if isinstance(item, AudioChunk):
                self._record(item.pcm.astype("<i2").tobytes())
            elif isinstance(item, Message):
                self._record(item.raw)
            async with self._changed:
                self._changed.notify_all()
        await self._notify_closed()


async def refused_offer(
    endpoint: str,
    channel_id: str,
    body: bytes | str,
    *,
    token: str | None,
    content_type: str = "application/sdp",
    timeout_s: float = 10.0,
) -> Refusal:
    """POST ``body`` as an offer and return how it was refused; ``AssertionError`` if it was accepted."""
    headers = {"Content-Type": content_type}
    if token is not None:
        headers["Authorization"] = f"Bearer {token}"
    url = f"{endpoint.rstrip('/')}/v1/calls/{quote(channel_id, safe='')}/webrtc"
    async with httpx.AsyncClient(trust_env=False, timeout=timeout_s) as http:
        response = await http.post(url, content=body, headers=headers)
    if response.status_code == 201:
        location = response.headers.get("Location", "")
        async with httpx.AsyncClient(trust_env=False, timeout=timeout_s) as http:
            if location and token is not None:
                await http.delete(httpx.URL(url).join(location), headers={"Authorization": f"Bearer {token}"})
        raise AssertionError(f"the offer to {url} was accepted")
    try:
        parsed: Any = response.json()
    except ValueError:
        parsed = response.text
    return Refusal(response.status_code, parsed, response.content)
