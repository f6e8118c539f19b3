"""What a caller asks an agent to say, with every option of Herald's speak-now contract."""

from __future__ import annotations

import enum
from dataclasses import dataclass

from herald.speech.scheduler import ArrivalPolicy


class SpeechKind(enum.Enum):
    TEXT = "Text"
    AUDIO_URL = "AudioUrl"


class DialogueType(enum.StrEnum):
    SPEECH = "speech"
    GREETING = "greeting"
    NORMAL = "normal"
    """The conversation's own: an answer, a prompt, a filler, an apology."""


@dataclass(frozen=True, slots=True)
class SpeechRequest:
    utterance_id: str
    """The ``RequestId`` of the request that pushed it."""
    content: str
    """The text to say, or the URL of the audio to play."""
    kind: SpeechKind = SpeechKind.TEXT
    policy: ArrivalPolicy = ArrivalPolicy.INTERRUPT
    protected: bool = False
    """The user's voice may not barge in on it."""
    end_call_after: bool = False
    """Stop the instance once this utterance has played to the end."""
    voice_id: str | None = None
    speech_rate: float | None = None
    volume_percent: int | None = None
    dialogue_type: DialogueType = DialogueType.SPEECH
    add_to_history: bool = False
    """What was heard of it joins the LLM's history (pushed speeches that ask; answers and greetings do)."""
    round_id: str | None = None
    """The user turn it answers (dialogue records' ``RoundId``); ``None``: its own."""
