"""Join a call over WebRTC with aiortc, as a real peer (``docs/webrtc.md``).

    async with RtcCall("http://127.0.0.1:8080", channel_id, token, microphone=ToneTrack()) as call:
        await call.send(MessageType.QUERY_STATE)
        ...

Signalling is WHIP-style and not trickled: the offer (one audio m-line and the ``herald`` data channel,
created before the offer) goes out with all our candidates, ``POST /v1/calls/{ChannelId}/webrtc``
answers ``201`` with the SDP answer and the session's ``Location``; ``DELETE`` on it leaves.
No STUN or TURN server is used: on one host or a LAN, host candidates are enough.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Callable
from typing import Any, Final, Self
from urllib.parse import quote, urljoin

import av
import httpx
import numpy as np
from aiortc import RTCConfiguration, RTCPeerConnection, RTCSessionDescription
from aiortc.mediastreams import MediaStreamError, MediaStreamTrack
from aiortc.rtcdatachannel import RTCDataChannel

from herald.client.audio import AudioChunk, Rechunker
from herald.client.errors import CallFailed, Refused, unreachable
from herald.client.messages import Message
from herald.client.session import CallSession

SAMPLE_RATE_HZ: Final = 48_000
FRAME_SAMPLES: Final = SAMPLE_RATE_HZ // 50
DATA_CHANNEL_LABEL: Final = "herald"


class RtcCall(CallSession):
    """A WebRTC participant of a channel: hears the agent (48 kHz mono), gets and sends messages.

    ``endpoint`` is the server's base URL (``http://127.0.0.1:8080``). With a ``microphone`` track the
    audio m-line is ``sendrecv`` and the track is sent; without one it is ``recvonly``.
    """

    sample_rate_hz = SAMPLE_RATE_HZ

    def __init__(
        self,
        endpoint: str,
        channel_id: str,
        token: str,
        *,
        microphone: MediaStreamTrack | None = None,
        connect_timeout_s: float = 15.0,
        http_timeout_s: float = 10.0,
        clock: Callable[[], float] = time.monotonic,
        keep_audio: bool = True,
        on_audio: Callable[[AudioChunk], None] | None = None,
        on_message: Callable[[Message], None] | None = None,
        on_end: Callable[[str], None] | None = None,
    ) -> None:
        super().__init__(
            clock=clock, keep_audio=keep_audio, on_audio=on_audio, on_message=on_message, on_end=on_end
        )
        self.endpoint = endpoint.rstrip("/")
        self.channel_id = channel_id
        self.offer_url = f"{self.endpoint}/v1/calls/{quote(channel_id, safe='')}/webrtc"
        self.session_url: str | None = None
        """The session's absolute URL (from the answer's ``Location``), once joined."""
        self.session_id: str | None = None
        self.microphone = microphone
        self._token = token
        self._connect_timeout_s = connect_timeout_s
        self._http_timeout_s = http_timeout_s
        self._pc: RTCPeerConnection | None = None
        self._channel: RTCDataChannel | None = None
        self._receiver: asyncio.Task[None] | None = None
        self._leaving = False

    # -- joining --------------------------------------------------------------------------------------

    async def join(self) -> Self:
        """Offer, get the answer, and wait until the data channel is open.

        Raises ``Refused`` (the server's error: ``InvalidToken``, ``ChannelNotFound``, ...),
        ``Unreachable``, or ``CallFailed`` (an unusable answer, or no connection within the timeout).
        """
        # iceServers=[]: aiortc's default is Google's STUN server, which a LAN or an offline host lacks.
        pc = self._pc = RTCPeerConnection(RTCConfiguration(iceServers=[]))
        pc.on("track", self._on_track)
        pc.on("connectionstatechange", self._on_connection_state)
        if self.microphone is not None:
            pc.addTransceiver(self.microphone, direction="sendrecv")
        else:
            pc.addTransceiver("audio", direction="recvonly")
        channel = self._channel = pc.createDataChannel(DATA_CHANNEL_LABEL)
        channel.on("message", self._add_message)
        channel.on("close", lambda: self._lost("the data channel closed"))

        await pc.setLocalDescription(await pc.createOffer())  # aiortc gathers every candidate here
        response = await self._request(
            "POST",
            self.offer_url,
            content=pc.localDescription.sdp.encode(),
            headers={"Content-Type": "application/sdp"},
        )
        if response.status_code != 201:
            raise Refused.from_response(response.status_code, response.content)
        location = response.headers.get("Location")
        if not location:
            raise CallFailed("the server answered 201 without a Location header")
        self.session_url = urljoin(self.offer_url, location)
        self.session_id = response.headers.get("X-Herald-Session-Id") or location.rstrip("/").split("/")[-1]
        try:
            await pc.setRemoteDescription(RTCSessionDescription(sdp=response.text, type="answer"))
        except ValueError as exc:
            raise CallFailed(f"the server's SDP answer is unusable: {exc}") from None

        try:
            await self.wait_until(
                lambda: channel.readyState == "open" or self.ended,
                timeout_s=self._connect_timeout_s,
                what="connection",
            )
        except TimeoutError:
            raise CallFailed(
                f"no connection within {self._connect_timeout_s:g} s "
                f"(ICE {pc.iceConnectionState}, connection {pc.connectionState})"
            ) from None
        if channel.readyState != "open":
            raise CallFailed(f"the connection failed while joining ({self.end_reason})")
        self.joined_s = self.now()
        return self

    async def leave(self) -> None:
        """``DELETE`` the session (one the server already ended is fine) and close the connection.

        Raises ``Refused`` if the server refuses the ``DELETE`` for another reason, or ``Unreachable``;
        the connection is closed in any case.
        """
        if self._leaving:
            return
        self._leaving = True
        try:
            if self.session_url is not None:
                response = await self._request("DELETE", self.session_url)
                if response.status_code not in (200, 404):
                    raise Refused.from_response(response.status_code, response.content)
        finally:
            await self._close()

    async def _close(self) -> None:
        if self._pc is not None:
            await self._pc.close()
        if self._receiver is not None:
            self._receiver.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._receiver
        self._end("left")

    # -- the session, for tools and tests ---------------------------------------------------------

    async def describe_session(self) -> dict[str, Any]:
        """``GET`` the session: ``SessionId``, ``ConnectionState``, ``DataChannel``, ``Microphone``, ..."""
        if self.session_url is None:
            raise CallFailed("not joined")
        response = await self._request("GET", self.session_url)
        if response.status_code != 200:
            raise Refused.from_response(response.status_code, response.content)
        body: dict[str, Any] = response.json()
        return body

    async def _request(
        self, method: str, url: str, *, content: bytes | None = None, headers: dict[str, str] | None = None
    ) -> httpx.Response:
        all_headers = {"Authorization": f"Bearer {self._token}", **(headers or {})}
        try:
            async with httpx.AsyncClient(trust_env=False, timeout=self._http_timeout_s) as http:
                return await http.request(method, url, content=content, headers=all_headers)
        except httpx.TransportError as exc:
            raise unreachable(self.endpoint, exc, self._http_timeout_s) from None

    # -- receiving ------------------------------------------------------------------------------------

    async def send_text(self, text: str) -> None:
        if self._channel is None or self._channel.readyState != "open":
            raise CallFailed("the data channel is not open")
        self._channel.send(text)

    def _on_track(self, track: MediaStreamTrack) -> None:
        if track.kind == "audio" and self._receiver is None:
            self._receiver = asyncio.get_running_loop().create_task(self._receive(track))

    async def _receive(self, track: MediaStreamTrack) -> None:
        # Opus arrives as 48 kHz stereo (PCMU/PCMA as 8 kHz mono): everything becomes 48 kHz mono int16,
        # cut into 20 ms chunks.
        resampler = av.AudioResampler(format="s16", layout="mono", rate=SAMPLE_RATE_HZ)
        rechunker = Rechunker(FRAME_SAMPLES)
        with contextlib.suppress(MediaStreamError):
            while True:
                frame = await track.recv()
                if not isinstance(frame, av.AudioFrame):
                    continue
                for mono in resampler.resample(frame):
                    pcm = mono.to_ndarray().reshape(-1).astype(np.int16, copy=False)
                    for chunk in rechunker.push(pcm):
                        self._add_audio(chunk)

    def _on_connection_state(self) -> None:
        if self._pc is None:
            return
        if self._pc.connectionState == "failed":
            self._lost("the connection failed")
        elif self._pc.connectionState == "closed":
            self._lost("the connection closed")

    def _lost(self, reason: str) -> None:
        if not self._leaving:
            self._end(reason)
