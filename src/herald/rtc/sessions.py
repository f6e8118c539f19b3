"""Every WebRTC session of this server: made from an offer, found by id, all closed at shutdown."""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass

from aiortc import RTCConfiguration, RTCIceServer, RTCPeerConnection

from herald import ids
from herald.agents.manager import InstanceManager
from herald.errors import InvalidParameter, ServiceUnavailable, SessionNotFound
from herald.media.frames import SAMPLE_RATE_HZ
from herald.media.room import OPUS
from herald.rtc.session import MessageHandler, RtcSession

_log = logging.getLogger(__name__)
# aioice logs every candidate pair's state change at INFO: per call, dozens of lines nobody needs.
logging.getLogger("aioice").setLevel(logging.WARNING)


@dataclass(frozen=True)
class RtcSettings:
    """``[webrtc]`` of the config file."""

    ice_servers: tuple[str, ...] = ()
    """STUN/TURN URLs (``stun:host:port``, ``turn:host:port?transport=udp``). None by default: on one
    host or a LAN, host candidates are enough; aiortc's own default (a public STUN server) is never
    used, so nothing is contacted that the operator did not name."""
    connect_timeout_s: float = 30.0
    """A session whose connection is not up this long after the answer is dropped."""
    max_sessions: int = 1000
    """More offers than this at once are refused with ``ServiceUnavailable``."""

    def __post_init__(self) -> None:
        if self.connect_timeout_s <= 0:
            raise ValueError(f"connect_timeout_s must be positive, got {self.connect_timeout_s}")
        if self.max_sessions < 1:
            raise ValueError(f"max_sessions must be at least 1, got {self.max_sessions}")
        for url in self.ice_servers:
            if not url.startswith(("stun:", "stuns:", "turn:", "turns:")):
                raise ValueError(f"ice_servers: {url!r} is not a stun:, stuns:, turn: or turns: URL")


class RtcSessions:
    def __init__(self, instances: InstanceManager, on_message: MessageHandler, settings: RtcSettings) -> None:
        self._instances = instances
        self._on_message = on_message
        self._settings = settings
        self._sessions: dict[str, RtcSession] = {}

    def __len__(self) -> int:
        return len(self._sessions)

    async def open(self, channel_id: str, user_id: str, offer_sdp: str) -> tuple[RtcSession, str]:
        """Join ``user_id`` to the call on ``channel_id`` with an SDP offer; the session and the answer.

        Raises ``ChannelNotFound`` (no live instance there), ``InvalidParameter`` (a bad offer).
        """
        if len(self._sessions) >= self._settings.max_sessions:
            raise ServiceUnavailable("This server has as many WebRTC sessions as it is configured for.")
        _check_offer(offer_sdp)
        self._instances.live_in_channel(channel_id)  # ChannelNotFound before any work
        pc = RTCPeerConnection(
            RTCConfiguration(iceServers=[RTCIceServer(urls=url) for url in self._settings.ice_servers])
        )
        session = RtcSession(
            ids.session_id(), channel_id, user_id, pc, on_message=self._on_message, on_closed=self._forget
        )
        try:
            answer = await session.negotiate(offer_sdp)
        except Exception as exc:
            await session.close("the offer was refused")
            raise InvalidParameter("SDP", f"the offer could not be negotiated ({_reason(exc)}).") from None
        # Opus: the room encodes once for every WebRTC listener; otherwise aiortc encodes 48 kHz PCM.
        audio = OPUS if session.track.opus else SAMPLE_RATE_HZ
        try:
            live, participant = await self._instances.join(channel_id, user_id, audio)
        except BaseException:
            await session.close("the call could not be joined")
            raise
        session.attach(live, participant)
        self._sessions[session.session_id] = session
        session.start(self._settings.connect_timeout_s)
        _log.info("WebRTC session %s: user %s joined channel %s", session.session_id, user_id, channel_id)
        return session, answer

    def get(self, session_id: str, *, channel_id: str, user_id: str) -> RtcSession:
        """The session, if it is ``user_id``'s in ``channel_id``; else ``SessionNotFound``."""
        session = self._sessions.get(session_id)
        if session is None or session.channel_id != channel_id or session.user_id != user_id:
            raise SessionNotFound(f"No WebRTC session {session_id!r} of this user in this channel.")
        return session

    async def close(self, session: RtcSession, why: str) -> None:
        await session.close(why)

    async def close_all(self) -> None:
        await asyncio.gather(*(s.close("the server is shutting down") for s in list(self._sessions.values())))

    def _forget(self, session: RtcSession) -> None:
        self._sessions.pop(session.session_id, None)


def _check_offer(sdp: str) -> None:
    """Refuse what is plainly not an audio offer before any work is done for it."""
    if not sdp.lstrip().startswith("v=0"):
        raise InvalidParameter("SDP", "the body must be an SDP offer (starting with v=0).")
    if "\nm=audio " not in sdp.replace("\r\n", "\n"):
        raise InvalidParameter("SDP", "the offer must have an audio m-line (m=audio ...).")


def _reason(exc: Exception) -> str:
    text = str(exc).strip().splitlines()[0][:200] if str(exc).strip() else ""
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__
