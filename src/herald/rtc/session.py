"""One person in a call over WebRTC: a peer connection, the agent's track, the data channel, the microphone.

States: ``negotiating`` (the offer is being answered; not yet in the room) → ``connecting`` (answered and
in the room, ICE/DTLS under way) → ``connected`` → ``closed``; a session that does
not connect within ``connect_timeout_s``, whose peer connection fails or closes, whose person leaves
(``DELETE``) or whose instance ends is closed, once, and leaves the room.

Everything the room gives the participant is pumped out in order: audio frames to the track (paced by
the room's pacer), messages to the data channel. Messages that come before the channel opens wait for
it (up to ``MAX_PENDING_MESSAGES``); without a data channel in the offer they are not kept.
"""

from __future__ import annotations

import asyncio
import contextlib
import enum
import logging
from collections import deque
from collections.abc import Awaitable, Callable
from typing import Any

from aiortc import RTCDataChannel, RTCPeerConnection, RTCSessionDescription
from aiortc.mediastreams import MediaStreamTrack
from aiortc.sdp import SessionDescription

from herald.agents.live import LiveInstance
from herald.media.inbound import InboundAudio
from herald.media.room import Participant
from herald.rtc.microphone import receive_microphone
from herald.rtc.track import AgentAudioTrack

_log = logging.getLogger(__name__)

MAX_PENDING_MESSAGES = 1000
MAX_INBOX_MESSAGES = 100
"""Client messages waiting to be acted on; beyond this a flooding client's messages are dropped."""

MessageHandler = Callable[[LiveInstance, Participant, str | bytes], Awaitable[None]]


class SessionState(enum.Enum):
    NEGOTIATING = "negotiating"
    CONNECTING = "connecting"
    CONNECTED = "connected"
    CLOSED = "closed"


class RtcSession:
    def __init__(
        self,
        session_id: str,
        channel_id: str,
        user_id: str,
        pc: RTCPeerConnection,
        *,
        on_message: MessageHandler,
        on_closed: Callable[[RtcSession], None],
    ) -> None:
        self.session_id = session_id
        self.channel_id = channel_id
        self.user_id = user_id
        self.state = SessionState.NEGOTIATING
        self.live: LiveInstance | None = None
        self.participant: Participant | None = None
        self.track = AgentAudioTrack(opus=False)
        self.microphone = InboundAudio(user_id)
        self._pc = pc
        self._on_message = on_message
        self._on_closed = on_closed
        self._channel: RTCDataChannel | None = None
        self._inbox: asyncio.Queue[str | bytes] = asyncio.Queue(maxsize=MAX_INBOX_MESSAGES)
        self._pending: deque[str] | None = None
        self._has_microphone = False
        self._tasks: set[asyncio.Task[None]] = set()
        self._closing: asyncio.Task[None] | None = None
        pc.on("datachannel", self._on_datachannel)
        pc.on("track", self._on_track)
        pc.on("connectionstatechange", self._on_connection_state)

    # ---- what the signalling layer reads ----

    @property
    def connection_state(self) -> str:
        return str(self._pc.connectionState)

    @property
    def data_channel_state(self) -> str:
        if self._channel is None:
            return "none" if self._pending is None else "connecting"
        return str(self._channel.readyState)

    def describe(self) -> dict[str, Any]:
        mic = self.microphone
        return {
            "SessionId": self.session_id,
            "ChannelId": self.channel_id,
            "UserId": self.user_id,
            "State": self.state.value,
            "ConnectionState": self.connection_state,
            "DataChannel": self.data_channel_state,
            "Microphone": {
                "Frames": mic.frames_received,
                "Seconds": round(mic.seconds_received, 3),
                "Rms": round(mic.level(), 1),
            },
        }

    # ---- life ----

    async def negotiate(self, offer_sdp: str) -> str:
        """Answer ``offer_sdp``: the SDP answer, with every local candidate. Raises what aiortc raises."""
        pc = self._pc
        await pc.setRemoteDescription(RTCSessionDescription(sdp=offer_sdp, type="offer"))
        pc.addTrack(self.track)
        await pc.setLocalDescription(await pc.createAnswer())
        answer = pc.localDescription.sdp
        self.track.opus = _first_audio_codec(answer) == "audio/opus"
        if any(media.kind == "application" for media in SessionDescription.parse(offer_sdp).media):
            self._pending = deque(maxlen=MAX_PENDING_MESSAGES)  # a data channel will come
        return answer

    def attach(self, live: LiveInstance, participant: Participant) -> None:
        """In the room now: the instance and this person's place in it."""
        self.live, self.participant = live, participant
        self.state = SessionState.CONNECTING
        if self._has_microphone:
            live.attach_microphone(participant, self.microphone)

    def start(self, connect_timeout_s: float) -> None:
        """Begin pumping the participant's stream, and give the connection ``connect_timeout_s``."""
        self._spawn(self._pump(), "pump")
        self._spawn(self._serve_messages(), "messages")
        self._spawn(self._connect_deadline(connect_timeout_s), "deadline")

    def close(self, why: str) -> asyncio.Task[None]:
        """Close the session (once); the task ends when the peer connection is closed."""
        if self._closing is None:
            _log.info("WebRTC session %s of user %s closes: %s", self.session_id, self.user_id, why)
            self.state = SessionState.CLOSED
            self._closing = asyncio.create_task(self._close(), name=f"rtc-close-{self.session_id}")
        return self._closing

    async def _close(self) -> None:
        if self.live is not None and self.participant is not None:
            self.live.leave(self.participant)
        self.track.stop()
        current = asyncio.current_task()
        tasks = [task for task in self._tasks if task is not current]
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        with contextlib.suppress(Exception):
            await self._pc.close()
        self._on_closed(self)

    def _spawn(self, coroutine: Awaitable[None], what: str) -> None:
        async def run() -> None:
            await coroutine

        task = asyncio.create_task(run(), name=f"rtc-{what}-{self.session_id}")
        self._tasks.add(task)
        task.add_done_callback(self._task_done)

    def _task_done(self, task: asyncio.Task[None]) -> None:
        self._tasks.discard(task)
        if not task.cancelled() and task.exception() is not None:
            _log.error("WebRTC session %s: a task failed", self.session_id, exc_info=task.exception())
            self.close("an internal error")

    async def _connect_deadline(self, timeout_s: float) -> None:
        await asyncio.sleep(timeout_s)
        if self.state is SessionState.CONNECTING:
            self.close(f"not connected within {timeout_s:g} s")

    async def _pump(self) -> None:
        """The room's stream for this person, in order: frames to the track, messages to the channel."""
        participant = self.participant
        assert participant is not None
        while True:
            item = await participant.get()
            if item is None:  # the instance ended (its 1010 went out before)
                self.close("the agent left the call")
                return
            if isinstance(item, bytes):
                self.track.push(item)
            else:
                self._send(item)

    def _send(self, text: str) -> None:
        channel = self._channel
        if channel is not None and channel.readyState == "open":
            channel.send(text)
        elif self._pending is not None:
            self._pending.append(text)

    # ---- peer connection events ----

    def _on_connection_state(self) -> None:
        state = self._pc.connectionState
        if state == "connected" and self.state is SessionState.CONNECTING:
            self.state = SessionState.CONNECTED
            _log.info("WebRTC session %s of user %s connected", self.session_id, self.user_id)
        elif state in ("failed", "closed"):
            self.close(f"the peer connection {state}")

    def _on_datachannel(self, channel: RTCDataChannel) -> None:
        if self._channel is not None:
            return  # the agent's messages go on the first channel the client opened
        self._channel = channel
        channel.on("message", self._on_channel_message)
        if channel.readyState == "open":
            self._flush()
        else:
            channel.on("open", self._flush)

    def _flush(self) -> None:
        pending, self._pending = self._pending, deque(maxlen=MAX_PENDING_MESSAGES)
        channel = self._channel
        assert channel is not None
        for text in pending or ():
            channel.send(text)

    def _on_channel_message(self, message: str | bytes) -> None:
        try:
            self._inbox.put_nowait(message)
        except asyncio.QueueFull:
            _log.warning("WebRTC session %s: client messages dropped (too many at once)", self.session_id)

    async def _serve_messages(self) -> None:
        """Act on the client's messages one at a time, in order. Closing the session does not cut an
        action short (a ``1100`` stop ends the instance, which closes this session)."""
        live, participant = self.live, self.participant
        assert live is not None
        assert participant is not None
        while True:
            message = await self._inbox.get()
            await asyncio.shield(self._on_message(live, participant, message))

    def _on_track(self, track: MediaStreamTrack) -> None:
        if track.kind != "audio" or self._has_microphone:
            return
        self._has_microphone = True
        if self.live is not None and self.participant is not None:
            self.live.attach_microphone(self.participant, self.microphone)
        self._spawn(receive_microphone(track, self.microphone), "microphone")


def _first_audio_codec(sdp: str) -> str:
    """The codec the audio will be sent with: the first of the answer's audio m-line (``audio/opus``)."""
    for media in SessionDescription.parse(sdp).media:
        if media.kind == "audio" and media.rtp.codecs:
            return str(media.rtp.codecs[0].mimeType).lower()
    return ""
