"""A live instance: the agent in its call, with its speech scheduler and the room it speaks into."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from herald.agents.requests import SpeechKind, SpeechRequest
from herald.agents.settings import AgentConfigModel, pronunciation_rules, voice_settings
from herald.agents.state import HangupRole
from herald.clock import Clock
from herald.conversation.loop import Conversation
from herald.conversation.settings import conversation_settings
from herald.events.model import EventName
from herald.media.clip import SILENT_FRAME
from herald.media.inbound import InboundAudio
from herald.media.messages import AgentState, InterruptReason, MessageType
from herald.media.room import Participant, Room
from herald.observability import metrics
from herald.observability.logs import log_context
from herald.speech.events import (
    Interrupted,
    PieceEnded,
    PieceStarted,
    SpeakingStarted,
    SpeakingStopped,
    SpeechEvent,
    UtteranceEnded,
    UtteranceStarted,
)
from herald.speech.handle import Outcome, SpeechHandle, UtteranceState
from herald.speech.scheduler import ArrivalPolicy, SpeechScheduler
from herald.speech.source import AudioSource, ByteSource, PcmDecoder, text_source, url_source
from herald.speech.tts import Synthesizer, VoiceSettings

_log = logging.getLogger(__name__)

SPEECH_FAILED_CODE = 1
"""``code`` of the ``error`` event of a speech that could not be said."""

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
UserTurnCallback = Callable[["LiveInstance", str, str], None]
"""The user said something: the instance, the turn's round id, the text."""
HangUpCallback = Callable[["LiveInstance", str], None]
"""The agent ends the call on its own (``UserIdle``): the instance and why."""
EventSink = Callable[[EventName, dict[str, Any], int, str], None]
"""Reports an event of this instance: name, ``data``, ``code`` (0: none) and ``message``."""


def _no_events(name: EventName, data: dict[str, Any], code: int, message: str) -> None:
    pass


def _no_turns(live: LiveInstance, round_id: str, text: str) -> None:
    pass


def _no_hang_up(live: LiveInstance, reason: str) -> None:
    pass


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
        on_event: EventSink = _no_events,
        on_user_turn: UserTurnCallback = _no_turns,
        on_hang_up: HangUpCallback = _no_hang_up,
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
        self._on_event = on_event
        self._on_user_turn = on_user_turn
        self._on_hang_up = on_hang_up
        self._thinking = False
        self.conversation: Conversation | None = None
        """The agent listening and answering (``None``: the manager has no listening services, as in
        unit tests; with ``[asr] engine = "off"`` it exists and answers typed turns only)."""
        self._accepted_ns: dict[str, int] = {}
        self._cut_ns: int | None = None
        self._state = AgentState.LISTENING
        self._interrupt_reason = InterruptReason.UNKNOWN
        self._requests: dict[str, SpeechRequest] = {}
        self.microphones: dict[int, InboundAudio] = {}
        """The recent audio of each participant who sends any (WebRTC), by participant id."""
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

    @property
    def state(self) -> AgentState:
        return self._state

    def tick(self) -> None:
        frame = self.scheduler.next_frame()
        self.room.send_audio(SILENT_FRAME if frame is None else frame)
        if self._cut_ns is not None:  # the first frame since a cut went out: the old audio has ended
            metrics.INTERRUPT_OLD_AUDIO_SECONDS.observe((self._clock.monotonic_ns() - self._cut_ns) / 1e9)
            self._cut_ns = None

    def reconfigure(self, config: AgentConfigModel) -> None:
        """Takes effect from the next utterance; what is playing keeps its voice. A new voice is announced."""
        old_voice = self.voice().voice_id
        self._config = config
        if self.conversation is not None:
            self.conversation.reconfigure(conversation_settings(config))
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

    def speak(self, request: SpeechRequest, source: AudioSource | None = None) -> SpeechHandle:
        """Say ``request`` (from ``source`` when given: an answer streaming in)."""
        handle = SpeechHandle(request.utterance_id, request.content, protected=request.protected)
        self._requests[request.utterance_id] = request
        self._last_activity_ns = self._accepted_ns[request.utterance_id] = self._clock.monotonic_ns()
        if request.policy is ArrivalPolicy.INTERRUPT:
            self._interrupt_reason = InterruptReason.BY_SPEECH_BROADCAST
        self.scheduler.push(handle, source if source is not None else self._source(request), request.policy)
        return handle

    @property
    def speaking(self) -> bool:
        return self.scheduler.busy

    @property
    def protected_speaking(self) -> bool:
        current = self.scheduler.current
        return current is not None and current.protected

    def pronunciation(self) -> list[tuple[str, str]]:
        return pronunciation_rules(self._config)

    def send_message(self, msg_type: MessageType, data: dict[str, Any]) -> None:
        """A message to everyone in the call."""
        self.room.send_message(msg_type, data)

    def set_thinking(self, thinking: bool) -> None:
        """The LLM is working on an answer (``1001`` Thinking), or no longer."""
        self._thinking = thinking
        state = AgentState.THINKING if thinking else AgentState.LISTENING
        if self._state is not AgentState.SPEAKING and self._state is not state:
            self._set_state(state)

    def record_user_turn(self, round_id: str, text: str) -> None:
        self._last_activity_ns = self._clock.monotonic_ns()
        self._on_user_turn(self, round_id, text)

    def report_error(self, code: int, message: str) -> None:
        """Something the agent tried failed (the LLM, speech recognition): ``1000`` and an ``error`` event."""
        self.room.send_message(MessageType.ERROR, {"code": "AgentError", "message": message})
        self._on_event(EventName.ERROR, {}, code, message)

    def hang_up(self, reason: str) -> None:
        self._on_hang_up(self, reason)

    def user_text(self, text: str, reason: InterruptReason) -> str:
        """``SendAIAgentText`` or ``1111``: ``text`` is the user's turn. Returns its round id."""
        if self.conversation is None:
            raise RuntimeError("this instance does not converse")
        return self.conversation.user_turn(text, interrupt=reason)

    def attach_microphone(self, participant: Participant, microphone: InboundAudio) -> None:
        """``participant`` sends audio: keep it, and let the agent listen to it."""
        self.microphones[participant.participant_id] = microphone
        conversation = self.conversation
        if conversation is not None and conversation.listens:
            participant_id = participant.participant_id
            microphone.listener = lambda frame: conversation.hear(participant_id, frame)

    def pending_requests(self) -> list[SpeechRequest]:
        """The speeches accepted that have no outcome yet (playing or queued)."""
        return list(self._requests.values())

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

    def interrupt(self, reason: InterruptReason, by: str, *, by_voice: bool = False) -> bool:
        """Cut what is speaking and drop the queue (``1016`` with ``reason``); whether anything was.
        ``by_voice``: the user's voice, which a protected speech does not yield to."""
        self._interrupt_reason = reason
        return self.scheduler.interrupt(by=by, by_voice=by_voice)

    def send_custom_message(self, message: str) -> None:
        """``1011`` to everyone in the call (``SendAIAgentDataChannelMessage``)."""
        self.room.send_message(MessageType.CUSTOM_MESSAGE, {"message": message})

    def send_state(self, to: Participant) -> None:
        """``1001`` with the current state, to one participant (the answer to ``1119``)."""
        self.room.send_message(MessageType.AGENT_STATE, {"state": int(self._state)}, to=to)

    def send_error(self, to: Participant, code: str, message: str) -> None:
        """``1000`` to one participant: something they asked for could not be done."""
        self.room.send_message(MessageType.ERROR, {"code": code, "message": message}, to=to)

    # ---- people in the call ----

    def join(self, user_id: str, sample_rate_hz: int) -> Participant:
        participant = self.room.join(user_id, sample_rate_hz)
        self._ever_joined = True
        self._empty_since_ns = None
        self._last_activity_ns = self._clock.monotonic_ns()
        self.send_state(participant)
        if self.conversation is not None:
            self.conversation.joined()
        return participant

    def leave(self, participant: Participant) -> None:
        self.room.leave(participant)
        microphone = self.microphones.pop(participant.participant_id, None)
        if microphone is not None:
            microphone.listener = None
        if self.conversation is not None:
            self.conversation.forget(participant.participant_id)
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
        if self.conversation is not None:
            await self.conversation.close()
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
                self._set_state(AgentState.THINKING if self._thinking else AgentState.LISTENING)
            case PieceStarted(sentence_id=sentence_id, text=text):
                room.send_message(
                    MessageType.AGENT_SUBTITLE, {"text": text, "sentenceId": sentence_id, "end": False}
                )
            case PieceEnded(sentence_id=sentence_id, text=text):
                room.send_message(
                    MessageType.AGENT_SUBTITLE, {"text": text, "sentenceId": sentence_id, "end": True}
                )
            case UtteranceStarted(handle=handle):
                self._first_audio(handle)
            case Interrupted():
                self._cut_ns = self._clock.monotonic_ns()
                room.send_message(MessageType.SPEAKING_INTERRUPTED, {"reason": int(self._interrupt_reason)})
            case UtteranceEnded(handle=handle, outcome=outcome):
                self._utterance_ended(handle, outcome)

    def _set_state(self, state: AgentState) -> None:
        self._state = state
        self.room.send_message(MessageType.AGENT_STATE, {"state": int(state)})

    def _first_audio(self, handle: SpeechHandle) -> None:
        accepted_ns = self._accepted_ns.pop(handle.utterance_id, None)
        if accepted_ns is None:
            return
        latency_s = (self._clock.monotonic_ns() - accepted_ns) / 1e9
        metrics.FIRST_AUDIO_SECONDS.observe(latency_s)
        data = {"requestId": handle.utterance_id, "firstAudioMs": round(latency_s * 1000)}
        self._on_event(EventName.TTS_DATA_RECEIVED, data, 0, "")

    def _utterance_ended(self, handle: SpeechHandle, outcome: Outcome) -> None:
        request = self._requests.pop(handle.utterance_id, None)
        self._accepted_ns.pop(handle.utterance_id, None)
        if outcome.state is UtteranceState.FAILED:
            self.room.send_message(
                MessageType.ERROR,
                {"code": "SpeechFailed", "message": outcome.reason, "requestId": handle.utterance_id},
            )
            self._on_event(
                EventName.ERROR, {"requestId": handle.utterance_id}, SPEECH_FAILED_CODE, outcome.reason
            )
        elif outcome.state in (UtteranceState.FINISHED, UtteranceState.INTERRUPTED) and request is not None:
            self._on_event(EventName.AUDIO_RECORD, _audio_record(request, outcome), 0, "")
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
        with log_context(instance_id=self.instance_id):  # on the pacer's task, which serves every instance
            self._log_outcome(handle, outcome)
        if request is not None:
            self._on_ended(self, request, outcome)
            if self.conversation is not None:
                self.conversation.utterance_ended(request, outcome)

    def _log_outcome(self, handle: SpeechHandle, outcome: Outcome) -> None:
        _log.log(
            logging.DEBUG if outcome.state is UtteranceState.DROPPED else logging.INFO,
            "utterance %s of instance %s %s after %d ms%s",
            handle.utterance_id,
            self.instance_id,
            outcome.state.value,
            outcome.played_ms,
            f" ({outcome.reason})" if outcome.reason else "",
        )


def _audio_record(request: SpeechRequest, outcome: Outcome) -> dict[str, Any]:
    """``audio_record`` for an utterance of the agent that played: what was heard, how it ended."""
    return {
        "role": "agent",
        "requestId": request.utterance_id,
        "outcome": outcome.state.value,
        "heardText": outcome.heard_text,
        "playedMs": outcome.played_ms,
        "text": request.content,
        "kind": request.kind.value,
        "dialogueType": request.dialogue_type.value,
        "reason": outcome.reason,
    }


def _or(value: int | None, default: int) -> int:
    return default if value is None else value
