"""A live instance: the agent in its call, with its speech scheduler and the room it speaks into."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable
from dataclasses import dataclass

from herald.agents.requests import SpeechKind, SpeechRequest
from herald.agents.settings import AgentConfigModel, pronunciation_rules, voice_settings
from herald.agents.state import HangupRole
from herald.clock import Clock
from herald.media.frames import SILENCE
from herald.media.messages import AgentState, InterruptReason, MessageType
from herald.media.room import Participant, Room
from herald.speech.events import (
    Interrupted,
    PieceEnded,
    PieceStarted,
    SpeakingStarted,
    SpeakingStopped,
    SpeechEvent,
    UtteranceEnded,
)
from herald.speech.handle import Outcome, SpeechHandle, UtteranceState
from herald.speech.scheduler import SpeechScheduler
from herald.speech.source import AudioSource, ByteSource, PcmDecoder, text_source, url_source
from herald.speech.tts import Synthesizer, VoiceSettings

_log = logging.getLogger(__name__)

GRACEFUL_SHUTDOWN_MAX_S = 10
DEFAULT_MAX_IDLE_S = 600
DEFAULT_USER_ONLINE_TIMEOUT_S = 60
DEFAULT_USER_OFFLINE_TIMEOUT_S = 5
_NS = 1_000_000_000


@dataclass(frozen=True, slots=True)
class SpeechServices:
    """Where audio comes from: the synthesiser for text, the fetcher and decoder for audio URLs."""

    synthesizer: Synthesizer
    fetcher: ByteSource | None = None
    decoder: PcmDecoder | None = None


@dataclass(frozen=True, slots=True)
class Expiry:
    """Why an instance should end on its own, and who is deemed to have hung up."""

    reason: str
    hangup_role: HangupRole


EndedCallback = Callable[["LiveInstance", SpeechRequest, Outcome], None]


class LiveInstance:
    """Ticked by the pacer every 20 ms; speaks what its scheduler gives it into its room."""

    def __init__(
        self,
        instance_id: str,
        owner: str,
        session_id: str,
        channel_id: str,
        agent_user_id: str,
        config: AgentConfigModel,
        services: SpeechServices,
        clock: Clock,
        *,
        default_voice_id: str,
        on_ended: EndedCallback,
    ) -> None:
        self.instance_id = instance_id
        self.owner = owner
        self.session_id = session_id
        self.room = Room(channel_id, agent_user_id)
        self.scheduler = SpeechScheduler(self._on_speech_event)
        self._services = services
        self._clock = clock
        self._default_voice_id = default_voice_id
        self._config = config
        self._on_ended = on_ended
        self._state = AgentState.LISTENING
        self._interrupt_reason = InterruptReason.UNKNOWN
        self._requests: dict[str, SpeechRequest] = {}
        self.accepting = True
        """False once the instance is stopping: no new speech is taken."""
        now = clock.monotonic_ns()
        self._started_ns = now
        self._last_activity_ns = now
        self._ever_joined = False
        self._empty_since_ns: int | None = None

    @property
    def config(self) -> AgentConfigModel:
        return self._config

    def tick(self) -> None:
        frame = self.scheduler.next_frame()
        self.room.send_audio(SILENCE if frame is None else frame)

    def reconfigure(self, config: AgentConfigModel) -> None:
        """Takes effect from the next utterance; what is playing keeps its voice. A new voice is announced."""
        old_voice = self.voice().voice_id
        self._config = config
        new_voice = self.voice().voice_id
        if new_voice != old_voice:
            self.room.send_message(MessageType.VOICE_CHANGED, {"voiceId": new_voice})

    def voice(self, request: SpeechRequest | None = None) -> VoiceSettings:
        base = voice_settings(self._config, default_voice_id=self._default_voice_id)
        if request is None:
            return base
        return VoiceSettings(
            voice_id=request.voice_id or base.voice_id,
            speech_rate=request.speech_rate if request.speech_rate is not None else base.speech_rate,
            volume_percent=request.volume_percent
            if request.volume_percent is not None
            else base.volume_percent,
        )

    def speak(self, request: SpeechRequest) -> SpeechHandle:
        handle = SpeechHandle(request.utterance_id, request.content, protected=request.protected)
        self._requests[request.utterance_id] = request
        self._last_activity_ns = self._clock.monotonic_ns()
        self._interrupt_reason = InterruptReason.BY_SPEECH_BROADCAST
        self.scheduler.push(handle, self._source(request), request.policy)
        return handle

    def _source(self, request: SpeechRequest) -> AudioSource:
        voice = self.voice(request)
        if request.kind is SpeechKind.AUDIO_URL:
            fetcher, decoder = self._services.fetcher, self._services.decoder
            if fetcher is None or decoder is None:
                raise RuntimeError("audio URLs are not enabled on this server")
            return url_source(fetcher, decoder, request.content, voice.volume_percent)
        return text_source(
            self._services.synthesizer, request.content, voice, pronunciation_rules(self._config)
        )

    # ---- people in the call ----

    def join(self, user_id: str, sample_rate_hz: int) -> Participant:
        participant = self.room.join(user_id, sample_rate_hz)
        self._ever_joined = True
        self._empty_since_ns = None
        self._last_activity_ns = self._clock.monotonic_ns()
        self.room.send_message(MessageType.AGENT_STATE, {"state": int(self._state)}, to=participant)
        return participant

    def leave(self, participant: Participant) -> None:
        self.room.leave(participant)
        now = self._clock.monotonic_ns()
        self._last_activity_ns = now
        if not self.room.participants:
            self._empty_since_ns = now

    def expiry(self) -> Expiry | None:
        """Whether a timeout of ``AgentConfig`` has run out (checked about once a second)."""
        now = self._clock.monotonic_ns()
        config = self._config
        if not self._ever_joined:
            limit = _or(config.UserOnlineTimeout, DEFAULT_USER_ONLINE_TIMEOUT_S)
            if now - self._started_ns > limit * _NS:
                return Expiry(f"no user joined within UserOnlineTimeout ({limit} s)", HangupRole.SYSTEM)
        elif self._empty_since_ns is not None:
            limit = _or(config.UserOfflineTimeout, DEFAULT_USER_OFFLINE_TIMEOUT_S)
            if now - self._empty_since_ns > limit * _NS:
                return Expiry(
                    f"every user left more than UserOfflineTimeout ({limit} s) ago", HangupRole.USER
                )
        limit = _or(config.MaxIdleTime, DEFAULT_MAX_IDLE_S)
        if not self.scheduler.busy and now - self._last_activity_ns > limit * _NS:
            return Expiry(f"idle for longer than MaxIdleTime ({limit} s)", HangupRole.SYSTEM)
        return None

    # ---- ending ----

    async def finish_speaking(self, max_s: float = GRACEFUL_SHUTDOWN_MAX_S) -> None:
        """``GracefulShutdown``: take no more speech, drop the queue, let the current utterance end."""
        self.accepting = False
        current = self.scheduler.drop_queued(by="the instance is stopping")
        if current is not None:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(current.wait(), max_s)

    async def close(self, reason: str = "the instance has stopped", *, leave_code: int = 2001) -> None:
        """Leave the call: tell everyone (``1010``), cut what is playing, close the room."""
        self.accepting = False
        self.room.send_message(MessageType.AGENT_WILL_LEAVE, {"reason": leave_code, "message": reason})
        await self.scheduler.close()
        self.room.close()

    # ---- speech events → messages ----

    def _on_speech_event(self, event: SpeechEvent) -> None:
        room = self.room
        match event:
            case SpeakingStarted():
                self._set_state(AgentState.SPEAKING)
            case SpeakingStopped():
                self._last_activity_ns = self._clock.monotonic_ns()
                self._set_state(AgentState.LISTENING)
            case PieceStarted(sentence_id=sentence_id, text=text):
                room.send_message(
                    MessageType.AGENT_SUBTITLE, {"text": text, "sentenceId": sentence_id, "end": False}
                )
            case PieceEnded(sentence_id=sentence_id, text=text):
                room.send_message(
                    MessageType.AGENT_SUBTITLE, {"text": text, "sentenceId": sentence_id, "end": True}
                )
            case Interrupted():
                room.send_message(MessageType.SPEAKING_INTERRUPTED, {"reason": int(self._interrupt_reason)})
            case UtteranceEnded(handle=handle, outcome=outcome):
                self._utterance_ended(handle, outcome)

    def _set_state(self, state: AgentState) -> None:
        self._state = state
        self.room.send_message(MessageType.AGENT_STATE, {"state": int(state)})

    def _utterance_ended(self, handle: SpeechHandle, outcome: Outcome) -> None:
        request = self._requests.pop(handle.utterance_id, None)
        if outcome.state is UtteranceState.FAILED:
            self.room.send_message(
                MessageType.ERROR,
                {"code": "SpeechFailed", "message": outcome.reason, "requestId": handle.utterance_id},
            )
        self.room.send_message(
            MessageType.SPEECH_OUTCOME,
            {
                "requestId": handle.utterance_id,
                "state": outcome.state.value,
                "playedMs": outcome.played_ms,
                "heardText": outcome.heard_text,
                "reason": outcome.reason,
            },
        )
        # Dropped utterances can come by the thousand (drop-if-busy): they are not worth a line each.
        _log.log(
            logging.DEBUG if outcome.state is UtteranceState.DROPPED else logging.INFO,
            "utterance %s of instance %s %s after %d ms%s",
            handle.utterance_id,
            self.instance_id,
            outcome.state.value,
            outcome.played_ms,
            f" ({outcome.reason})" if outcome.reason else "",
        )
        if request is not None:
            self._on_ended(self, request, outcome)


def _or(value: int | None, default: int) -> int:
    return default if value is None else value
