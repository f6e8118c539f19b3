"""Every utterance is a handle: an id, a state, how much was heard, and a ``wait()`` that never raises.

States and their moves (anything else raises ``IllegalUtteranceTransition``)::

    queued ──► speaking ──► finished
      │            ├──────► interrupted   (cut by a newer speech or a client request)
      │            └──────► failed        (synthesis or decoding broke mid-way)
      ├──────────────────► dropped       (removed from the queue before it spoke)
      └──────────────────► failed        (could not even start)
"""

from __future__ import annotations

import asyncio
import enum
from dataclasses import dataclass, field

from herald.media.frames import FRAME_MS


class UtteranceState(enum.Enum):
    QUEUED = "queued"
    SPEAKING = "speaking"
    FINISHED = "finished"
    INTERRUPTED = "interrupted"
    DROPPED = "dropped"
    FAILED = "failed"

    @property
    def is_final(self) -> bool:
        return self in _FINAL


_FINAL = frozenset(
    {UtteranceState.FINISHED, UtteranceState.INTERRUPTED, UtteranceState.DROPPED, UtteranceState.FAILED}
)

TRANSITIONS: dict[UtteranceState, frozenset[UtteranceState]] = {
    UtteranceState.QUEUED: frozenset(
        {UtteranceState.SPEAKING, UtteranceState.DROPPED, UtteranceState.FAILED}
    ),
    UtteranceState.SPEAKING: frozenset(
        {UtteranceState.FINISHED, UtteranceState.INTERRUPTED, UtteranceState.FAILED}
    ),
    UtteranceState.FINISHED: frozenset(),
    UtteranceState.INTERRUPTED: frozenset(),
    UtteranceState.DROPPED: frozenset(),
    UtteranceState.FAILED: frozenset(),
}


class IllegalUtteranceTransition(RuntimeError):
    def __init__(self, utterance_id: str, source: UtteranceState, target: UtteranceState) -> None:
        super().__init__(f"utterance {utterance_id}: {source.value} → {target.value} is not allowed")


@dataclass(frozen=True, slots=True)
class Outcome:
    """How an utterance ended."""

    state: UtteranceState
    played_ms: int
    heard_text: str
    """The pieces of text whose audio began playing (whole text when finished)."""
    reason: str = ""
    """Why it failed, was dropped or was interrupted."""


@dataclass(eq=False)
class SpeechHandle:
    """One utterance, from the moment it is accepted until its outcome."""

    utterance_id: str
    text: str
    state: UtteranceState = UtteranceState.QUEUED
    played_frames: int = 0
    pieces_started: list[str] = field(default_factory=list)
    reason: str = ""
    _done: asyncio.Event = field(default_factory=asyncio.Event, repr=False)

    @property
    def played_ms(self) -> int:
        return self.played_frames * FRAME_MS

    @property
    def done(self) -> bool:
        return self.state.is_final

    def move_to(self, target: UtteranceState, reason: str = "") -> None:
        if target not in TRANSITIONS[self.state]:
            raise IllegalUtteranceTransition(self.utterance_id, self.state, target)
        self.state = target
        if reason:
            self.reason = reason
        if target.is_final:
            self._done.set()

    def outcome(self) -> Outcome:
        heard = self.text if self.state is UtteranceState.FINISHED else " ".join(self.pieces_started)
        return Outcome(self.state, self.played_ms, heard, self.reason)

    async def wait(self) -> Outcome:
        """Wait for the utterance to end, however it ends."""
        await self._done.wait()
        return self.outcome()
