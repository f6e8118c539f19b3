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
    """The captioned text whose audio was played (for a cut piece, the share its played time suggests)."""
    reason: str = ""
    """Why it failed, was dropped or was interrupted."""


@dataclass(eq=False)
class SpeechHandle:
    """One utterance, from the moment it is accepted until its outcome."""

    utterance_id: str
    text: str
    protected: bool = False
    """Whether the user's voice may not barge in on it (other interrupts still cut it)."""
    state: UtteranceState = UtteranceState.QUEUED
    played_frames: int = 0
    pieces_heard: list[str] = field(default_factory=list)
    """Captioned pieces whose audio played to the end."""
    reason: str = ""
    _piece: str | None = None
    _piece_frames: int = 0
    _piece_played: int = 0
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

    def piece_started(self, text: str, frames: int) -> None:
        self._piece, self._piece_frames, self._piece_played = text, frames, 0

    def frame_played(self) -> None:
        self.played_frames += 1
        self._piece_played += 1

    def piece_ended(self) -> None:
        if self._piece is not None:
            self.pieces_heard.append(self._piece)
        self._piece = None

    def heard_text(self) -> str:
        """What a listener heard: whole pieces, plus the share of a cut piece its played time suggests."""
        heard = list(self.pieces_heard)
        if self._piece is not None and self._piece_frames > 0:
            partial = _leading_share(self._piece, self._piece_played / self._piece_frames)
            if partial:
                heard.append(partial)
        return " ".join(heard)

    def outcome(self) -> Outcome:
        return Outcome(self.state, self.played_ms, self.heard_text(), self.reason)

    async def wait(self) -> Outcome:
        """Wait for the utterance to end, however it ends."""
        await self._done.wait()
        return self.outcome()


def _leading_share(text: str, fraction: float) -> str:
    """The first ``fraction`` of ``text``, by words (by characters for text written without spaces)."""
    fraction = min(max(fraction, 0.0), 1.0)
    words = text.split()
    if len(words) > 1:
        return " ".join(words[: round(len(words) * fraction)])
    return text[: round(len(text) * fraction)]
