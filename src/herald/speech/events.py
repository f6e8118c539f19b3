"""What a speech scheduler reports as it plays, as typed events (the agent layer turns them into messages)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

from herald.speech.handle import Outcome, SpeechHandle


@dataclass(frozen=True, slots=True)
class SpeakingStarted:
    """The agent went from quiet to audible."""


@dataclass(frozen=True, slots=True)
class SpeakingStopped:
    """Nothing is left to play: the agent is quiet again."""


@dataclass(frozen=True, slots=True)
class UtteranceStarted:
    """An utterance's first frame is playing now."""

    handle: SpeechHandle


@dataclass(frozen=True, slots=True)
class PieceStarted:
    """The first frame of a captioned piece is playing now."""

    handle: SpeechHandle
    sentence_id: int
    text: str


@dataclass(frozen=True, slots=True)
class PieceEnded:
    """The last frame of a captioned piece has played."""

    handle: SpeechHandle
    sentence_id: int
    text: str


@dataclass(frozen=True, slots=True)
class Interrupted:
    """A speaking utterance was cut; ``by`` names the utterance (or cause) that cut it."""

    handle: SpeechHandle
    by: str


@dataclass(frozen=True, slots=True)
class UtteranceEnded:
    handle: SpeechHandle
    outcome: Outcome


SpeechEvent = (
    SpeakingStarted
    | SpeakingStopped
    | UtteranceStarted
    | PieceStarted
    | PieceEnded
    | Interrupted
    | UtteranceEnded
)


class SpeechEventSink(Protocol):
    def __call__(self, event: SpeechEvent) -> None:
        """Receive an event. Called on the audio hot path: must not block."""
        ...
