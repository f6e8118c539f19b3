"""A live instance: the agent in its call, with its speech scheduler and the room it speaks into."""

from __future__ import annotations

import logging

from herald.agents.settings import AgentConfigModel, voice_settings
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
from herald.speech.handle import SpeechHandle
from herald.speech.scheduler import ArrivalPolicy, SpeechScheduler
from herald.speech.source import text_source
from herald.speech.tts import Synthesizer

_log = logging.getLogger(__name__)


class LiveInstance:
    """Ticked by the pacer every 20 ms; speaks what its scheduler gives it into its room."""

    def __init__(
        self,
        instance_id: str,
        channel_id: str,
        agent_user_id: str,
        config: AgentConfigModel,
        synthesizer: Synthesizer,
        *,
        default_voice_id: str,
    ) -> None:
        self.instance_id = instance_id
        self.room = Room(channel_id, agent_user_id)
        self.scheduler = SpeechScheduler(self._on_speech_event)
        self._synthesizer = synthesizer
        self._default_voice_id = default_voice_id
        self._config = config
        self._state = AgentState.LISTENING
        self._interrupt_reason = InterruptReason.UNKNOWN
        self.handles: dict[str, SpeechHandle] = {}

    def tick(self) -> None:
        frame = self.scheduler.next_frame()
        self.room.send_audio(SILENCE if frame is None else frame)

    def reconfigure(self, config: AgentConfigModel) -> None:
        """Takes effect from the next utterance; what is playing keeps its voice."""
        self._config = config

    def speak(self, utterance_id: str, text: str, policy: ArrivalPolicy) -> SpeechHandle:
        handle = SpeechHandle(utterance_id, text)
        voice = voice_settings(self._config, default_voice_id=self._default_voice_id)
        self._interrupt_reason = InterruptReason.BY_SPEECH_BROADCAST
        self.scheduler.push(handle, text_source(self._synthesizer, text, voice), policy)
        if not handle.done:
            self.handles[utterance_id] = handle
        return handle

    def join(self, user_id: str, sample_rate_hz: int) -> Participant:
        participant = self.room.join(user_id, sample_rate_hz)
        self.room.send_message(MessageType.AGENT_STATE, {"state": int(self._state)}, to=participant)
        return participant

    def leave(self, participant: Participant) -> None:
        self.room.leave(participant)

    async def close(self) -> None:
        await self.scheduler.close()
        self.room.close()

    def _on_speech_event(self, event: SpeechEvent) -> None:
        room = self.room
        match event:
            case SpeakingStarted():
                self._state = AgentState.SPEAKING
                room.send_message(MessageType.AGENT_STATE, {"state": int(self._state)})
            case SpeakingStopped():
                self._state = AgentState.LISTENING
                room.send_message(MessageType.AGENT_STATE, {"state": int(self._state)})
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
                self.handles.pop(handle.utterance_id, None)
                _log.info(
                    "utterance %s of instance %s %s after %d ms%s",
                    handle.utterance_id,
                    self.instance_id,
                    outcome.state.value,
                    outcome.played_ms,
                    f" ({outcome.reason})" if outcome.reason else "",
                )
