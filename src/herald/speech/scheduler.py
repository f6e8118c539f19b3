"""One speech scheduler per instance: it decides what plays, the pacer pulls it 20 ms at a time.

``push`` accepts an utterance under an arrival policy; ``next_frame`` is called by the real-time pacer once
per frame and never blocks. Synthesis runs ahead in producer tasks, at most ``lookahead_frames`` (6 s) ahead
of playout and for at most the current and the next utterance, so an interrupt throws away little work and
nothing already buffered can be heard after it: the cut takes effect on the very next frame.
"""

from __future__ import annotations

import asyncio
import contextlib
import enum
import logging
from collections import deque
from dataclasses import dataclass, field

from herald.media.clip import Clip, Frame
from herald.media.frames import FRAME_NS
from herald.speech.events import (
    Interrupted,
    PieceEnded,
    PieceStarted,
    SpeakingStarted,
    SpeakingStopped,
    SpeechEventSink,
    UtteranceEnded,
    UtteranceStarted,
)
from herald.speech.handle import SpeechHandle, UtteranceState
from herald.speech.source import AudioSource
from herald.speech.urgency import slack_ns

_log = logging.getLogger(__name__)


class ArrivalPolicy(enum.Enum):
    """What a new utterance does to what is already playing or queued."""

    INTERRUPT = "interrupt"
    """Cut the current utterance, drop the queue, speak now (ICE ``EnableInterrupt=true``)."""
    APPEND = "append"
    """Play after the current and every queued utterance (ICE ``EnableInterrupt=false``)."""
    DROP_IF_BUSY = "drop-if-busy"
    """Play now if the agent is quiet, else drop this one."""


@dataclass(frozen=True, slots=True)
class _PieceStart:
    sentence_id: int
    text: str
    frames: int


@dataclass(frozen=True, slots=True)
class _PieceEnd:
    sentence_id: int
    text: str


_Item = Clip | _PieceStart | _PieceEnd


@dataclass(eq=False)
class _Utterance:
    handle: SpeechHandle
    source: AudioSource
    buffer: deque[_Item] = field(default_factory=deque)
    buffered_frames: int = 0
    played_in_clip: int = 0
    """Frames of the clip at the head of ``buffer`` already played."""
    last_clip: Clip | None = None
    producer: asyncio.Task[None] | None = None
    produced_all: bool = False
    error: str = ""
    space: asyncio.Event = field(default_factory=asyncio.Event)


class SpeechScheduler:
    """Plays utterances one at a time, in the order the arrival policies give them."""

    def __init__(self, emit: SpeechEventSink, *, lookahead_frames: int = 300) -> None:
        self._emit = emit
        self._lookahead_frames = lookahead_frames
        self._current: _Utterance | None = None
        self._queue: deque[_Utterance] = deque()
        self._audible = False
        self._next_sentence_id = 1
        self._closed = False

    # ---- control (called from API handlers) ----

    @property
    def busy(self) -> bool:
        """True while anything is playing, synthesising or queued."""
        return self._current is not None or bool(self._queue)

    @property
    def current(self) -> SpeechHandle | None:
        """The utterance playing (or about to), if any."""
        return self._current.handle if self._current is not None else None

    @property
    def queued(self) -> int:
        return len(self._queue)

    def push(self, handle: SpeechHandle, source: AudioSource, policy: ArrivalPolicy) -> None:
        """Accept an utterance. Returns at once; the handle reports how it ends."""
        utterance = _Utterance(handle, source)
        if self._closed:
            self._finish(utterance, UtteranceState.DROPPED, "the instance has stopped")
            return
        if policy is ArrivalPolicy.DROP_IF_BUSY and self.busy:
            self._finish(utterance, UtteranceState.DROPPED, "the agent was busy")
            return
        if policy is ArrivalPolicy.INTERRUPT:
            self._cut_all(by=handle.utterance_id)
        self._queue.append(utterance)
        self._start_producers()

    def interrupt(self, by: str, *, by_voice: bool = False) -> bool:
        """Cut whatever is playing and drop the queue. Returns whether anything was cut or dropped.

        ``by_voice``: the user spoke over the agent; an utterance pushed as protected is not cut then.
        """
        current = self._current
        if by_voice and current is not None and current.handle.protected:
            return False
        had_work = self.busy
        self._cut_all(by=by)
        self._set_audible(False)  # quiet from now on: say so at once, not on the next frame
        return had_work

    def drop_queued(self, by: str) -> SpeechHandle | None:
        """Drop everything waiting its turn; the current utterance goes on. Returns it, if any."""
        while self._queue:
            self._finish(self._queue.popleft(), UtteranceState.DROPPED, f"dropped: {by}")
        return self._current.handle if self._current is not None else None

    async def close(self, reason: str = "the instance has stopped") -> None:
        """Stop for good: cut the current utterance, drop the queue, wait for producers to end."""
        self._closed = True
        tasks = [u.producer for u in self._all() if u.producer is not None]
        self._cut_all(by=reason, announce=False)
        for task in tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task

    # ---- playout (called by the pacer every frame) ----

    def next_frame(self) -> Frame | None:
        """The next 20 ms to play, or ``None`` for silence. Never blocks."""
        while True:
            utterance = self._current
            if utterance is None:
                utterance = self._advance()
                if utterance is None:
                    self._set_audible(False)
                    return None
            frame = self._pop_frame(utterance)
            if frame is not None:
                return frame
            if utterance.error:
                self._end_current(UtteranceState.FAILED, utterance.error)
                continue
            if utterance.produced_all and not utterance.buffer:
                self._end_current(UtteranceState.FINISHED)
                continue
            # Synthesis has not caught up: a gap of silence, the utterance goes on.
            return None

    # ---- internals ----

    def _all(self) -> list[_Utterance]:
        return ([self._current] if self._current is not None else []) + list(self._queue)

    def _advance(self) -> _Utterance | None:
        if not self._queue:
            return None
        self._current = self._queue.popleft()
        self._start_producers()
        return self._current

    def _pop_frame(self, utterance: _Utterance) -> Frame | None:
        handle = utterance.handle
        buffer = utterance.buffer
        while buffer:
            item = buffer[0]
            if isinstance(item, Clip):
                self._set_audible(True)
                if handle.state is UtteranceState.QUEUED:
                    handle.move_to(UtteranceState.SPEAKING)
                    self._emit(UtteranceStarted(handle))
                handle.frame_played()
                index = utterance.played_in_clip
                if index + 1 < item.frames:
                    utterance.played_in_clip = index + 1
                else:
                    buffer.popleft()
                    utterance.played_in_clip = 0
                utterance.buffered_frames -= 1
                if utterance.buffered_frames < self._lookahead_frames:
                    utterance.space.set()
                return Frame(item, index)
            buffer.popleft()
            if isinstance(item, _PieceStart):
                self._set_audible(True)  # announce speaking before the subtitle of what is said
                handle.piece_started(item.text, item.frames)
                self._emit(PieceStarted(handle, item.sentence_id, item.text))
            elif isinstance(item, _PieceEnd):
                handle.piece_ended()
                self._emit(PieceEnded(handle, item.sentence_id, item.text))
        return None

    def _set_audible(self, audible: bool) -> None:
        if audible != self._audible:
            self._audible = audible
            self._emit(SpeakingStarted() if audible else SpeakingStopped())

    def _end_current(self, state: UtteranceState, reason: str = "") -> None:
        utterance = self._current
        assert utterance is not None
        self._current = None
        if state is UtteranceState.FINISHED and utterance.handle.state is UtteranceState.QUEUED:
            # A source that produced no audio at all: it is over, and it said nothing.
            utterance.handle.move_to(UtteranceState.SPEAKING)
        self._finish(utterance, state, reason)

    def _cut_all(self, *, by: str, announce: bool = True) -> None:
        current, self._current = self._current, None
        if current is not None:
            if current.handle.state is UtteranceState.SPEAKING:
                if announce:
                    self._emit(Interrupted(current.handle, by))
                self._finish(current, UtteranceState.INTERRUPTED, f"interrupted by {by}")
            else:
                self._finish(current, UtteranceState.DROPPED, f"replaced by {by}")
        while self._queue:
            self._finish(self._queue.popleft(), UtteranceState.DROPPED, f"replaced by {by}")

    def _finish(self, utterance: _Utterance, state: UtteranceState, reason: str = "") -> None:
        if utterance.producer is not None and not utterance.producer.done():
            utterance.producer.cancel()
        utterance.buffer.clear()
        utterance.buffered_frames = 0
        utterance.played_in_clip = 0
        utterance.handle.move_to(state, reason)
        self._emit(UtteranceEnded(utterance.handle, utterance.handle.outcome()))

    def _start_producers(self) -> None:
        """Keep synthesis running for the current utterance and the next one in line."""
        for utterance in self._all()[:2]:
            if utterance.producer is None:
                utterance.producer = asyncio.create_task(
                    self._produce(utterance), name=f"speech-{utterance.handle.utterance_id}"
                )

    def _slack_frames(self, utterance: _Utterance) -> int:
        """Frames that will play before this utterance's next piece is needed: its own buffer, plus the
        buffers of the utterances that play before it."""
        slack = 0
        for ahead in self._all():
            slack += ahead.buffered_frames
            if ahead is utterance:
                return slack
        return slack

    async def _produce(self, utterance: _Utterance) -> None:
        slack_ns.set(lambda: self._slack_frames(utterance) * FRAME_NS)  # this task's context only
        try:
            async for chunk in utterance.source:
                sentence_id = self._next_sentence_id
                self._next_sentence_id += 1
                if chunk.continues and utterance.last_clip is not None:
                    clip = Clip(chunk.pcm, follows=utterance.last_clip)
                else:
                    clip = Clip.shared(chunk.pcm)
                utterance.last_clip = clip
                if chunk.caption:
                    utterance.buffer.append(_PieceStart(sentence_id, chunk.caption, clip.frames))
                if clip.frames:
                    utterance.buffer.append(clip)
                utterance.buffered_frames += clip.frames
                if chunk.caption:
                    utterance.buffer.append(_PieceEnd(sentence_id, chunk.caption))
                while utterance.buffered_frames >= self._lookahead_frames:
                    utterance.space.clear()
                    await utterance.space.wait()
            utterance.produced_all = True
        except asyncio.CancelledError:
            raise
        except Exception as exc:  # a broken source fails its utterance, never the instance
            utterance.error = _describe(exc)
            # A fetch or decode refusal is the input's fault and says why; anything else may be a bug.
            expected = isinstance(getattr(exc, "reason", None), str)
            _log.warning(
                "utterance %s failed: %s",
                utterance.handle.utterance_id,
                utterance.error,
                exc_info=not expected,
            )
        finally:
            aclose = getattr(utterance.source, "aclose", None)
            if aclose is not None:
                with contextlib.suppress(Exception):
                    await aclose()
        if utterance.error and not utterance.buffer and utterance in self._queue:
            # Failed with nothing to play while waiting its turn: end it now, not when its turn comes.
            self._queue.remove(utterance)
            self._finish(utterance, UtteranceState.FAILED, utterance.error)


def _describe(exc: Exception) -> str:
    """A failure's reason for the caller: the error's own ``reason`` when it has one (fetch, decode)."""
    reason = getattr(exc, "reason", None)
    if isinstance(reason, str) and reason:
        return reason
    return f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__
