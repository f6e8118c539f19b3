"""The per-instance speech scheduler: arrival policies and outcomes, frame by frame."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import numpy as np
import pytest

from herald.media.clip import Frame
from herald.media.frames import FRAME_SAMPLES
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
from herald.speech.handle import SpeechHandle, UtteranceState
from herald.speech.scheduler import ArrivalPolicy, SpeechScheduler
from herald.speech.source import AudioChunk


def constant_source(
    level: int, frames_per_piece: list[int], *, fail_after: int | None = None
) -> AsyncIterator[AudioChunk]:
    """Pieces of audio whose every sample is ``level``, so a frame tells which utterance it came from."""

    async def gen() -> AsyncIterator[AudioChunk]:
        for i, frames in enumerate(frames_per_piece):
            if fail_after is not None and i >= fail_after:
                raise RuntimeError("decoder exploded")
            await asyncio.sleep(0)
            yield AudioChunk(np.full(frames * FRAME_SAMPLES, level, dtype=np.int16), f"piece {level}.{i}")

    return gen()


class Harness:
    def __init__(self, **kwargs: int) -> None:
        self.events: list[SpeechEvent] = []
        self.scheduler = SpeechScheduler(self.events.append, **kwargs)

    async def settle(self) -> None:
        """Let producer tasks run until they block."""
        for _ in range(20):
            await asyncio.sleep(0)

    async def play(self, frames: int) -> list[Frame | None]:
        out = []
        for _ in range(frames):
            await self.settle()
            out.append(self.scheduler.next_frame())
        return out

    def push(
        self, uid: str, level: int, pieces: list[int], policy: ArrivalPolicy = ArrivalPolicy.APPEND, **kw: int
    ) -> SpeechHandle:
        handle = SpeechHandle(uid, f"text of {uid}")
        self.scheduler.push(handle, constant_source(level, pieces, **kw), policy)
        return handle

    def levels(self, frames: list[Frame | None]) -> list[int]:
        return [0 if f is None else int(f.pcm[0]) for f in frames]

    def of(self, kind: type) -> list[SpeechEvent]:
        return [e for e in self.events if isinstance(e, kind)]


async def test_one_utterance_plays_every_frame_then_goes_quiet() -> None:
    h = Harness()
    handle = h.push("a", 7, [3, 2])
    frames = await h.play(7)
    assert h.levels(frames) == [7, 7, 7, 7, 7, 0, 0]
    outcome = await asyncio.wait_for(handle.wait(), 1)
    assert outcome.state is UtteranceState.FINISHED
    assert outcome.played_ms == 100
    assert outcome.heard_text == "piece 7.0 piece 7.1"
    kinds = [type(e) for e in h.events]
    assert kinds == [
        SpeakingStarted, PieceStarted, UtteranceStarted, PieceEnded, PieceStarted, PieceEnded, UtteranceEnded,
        SpeakingStopped,
    ]  # fmt: skip
    assert h.of(UtteranceStarted) == [UtteranceStarted(handle)]  # once, with its first frame


async def test_interrupt_cuts_on_the_very_next_frame_and_drops_the_queue() -> None:
    h = Harness()
    old = h.push("old", 1, [50])
    queued = h.push("queued", 2, [5])
    assert h.levels(await h.play(10)) == [1] * 10
    new = h.push("new", 3, [4], ArrivalPolicy.INTERRUPT)
    # The cut is immediate: not one more frame of the old utterance.
    assert h.levels(await h.play(5)) == [3, 3, 3, 3, 0]
    old_outcome, queued_outcome = await old.wait(), await queued.wait()
    assert old_outcome.state is UtteranceState.INTERRUPTED
    assert old_outcome.played_ms == 200
    assert "new" in old_outcome.reason
    assert queued_outcome.state is UtteranceState.DROPPED
    assert (await new.wait()).state is UtteranceState.FINISHED
    interrupted = h.of(Interrupted)
    assert len(interrupted) == 1
    assert interrupted[0].handle is old
    # The interruption is announced before anything of the new utterance plays.
    first_new_piece = next(
        i for i, e in enumerate(h.events) if isinstance(e, PieceStarted) and e.handle is new
    )
    assert h.events.index(interrupted[0]) < first_new_piece


async def test_appended_utterances_play_in_order_without_interruption() -> None:
    h = Harness()
    handles = [h.push(f"u{i}", i, [2]) for i in (1, 2, 3)]
    assert h.levels(await h.play(7)) == [1, 1, 2, 2, 3, 3, 0]
    assert [(await x.wait()).state for x in handles] == [UtteranceState.FINISHED] * 3
    assert not h.of(Interrupted)
    # One Speaking…Stopped span for back-to-back speech, not one per utterance.
    assert len(h.of(SpeakingStarted)) == 1
    assert len(h.of(SpeakingStopped)) == 1


async def test_interrupting_a_quiet_agent_announces_nothing() -> None:
    h = Harness()
    handle = h.push("a", 4, [1], ArrivalPolicy.INTERRUPT)
    assert h.levels(await h.play(2)) == [4, 0]
    assert (await handle.wait()).state is UtteranceState.FINISHED
    assert not h.of(Interrupted)


async def test_drop_if_busy_drops_only_when_busy() -> None:
    h = Harness()
    first = h.push("first", 1, [3], ArrivalPolicy.DROP_IF_BUSY)
    await h.play(1)
    second = h.push("second", 2, [3], ArrivalPolicy.DROP_IF_BUSY)
    outcome = await second.wait()
    assert outcome.state is UtteranceState.DROPPED
    assert "busy" in outcome.reason
    assert h.levels(await h.play(3)) == [1, 1, 0]
    assert (await first.wait()).state is UtteranceState.FINISHED
    third = h.push("third", 3, [1], ArrivalPolicy.DROP_IF_BUSY)
    assert h.levels(await h.play(2)) == [3, 0]
    assert (await third.wait()).state is UtteranceState.FINISHED


async def test_a_source_that_breaks_mid_way_fails_its_utterance_and_the_next_one_plays() -> None:
    h = Harness()
    broken = h.push("broken", 1, [2, 2, 2], fail_after=1)
    after = h.push("after", 2, [2])
    levels = h.levels(await h.play(6))
    assert levels[:2] == [1, 1]
    assert levels.count(2) == 2
    outcome = await broken.wait()
    assert outcome.state is UtteranceState.FAILED
    assert "decoder exploded" in outcome.reason
    assert outcome.played_ms == 40
    assert (await after.wait()).state is UtteranceState.FINISHED


async def test_a_queued_source_that_fails_before_playing_is_failed_not_played() -> None:
    h = Harness()
    first = h.push("first", 1, [5])
    doomed = h.push("doomed", 2, [1], fail_after=0)
    await h.settle()
    outcome = await asyncio.wait_for(doomed.wait(), 1)
    assert outcome.state is UtteranceState.FAILED
    assert outcome.played_ms == 0
    assert h.levels(await h.play(6)) == [1, 1, 1, 1, 1, 0]
    assert (await first.wait()).state is UtteranceState.FINISHED


async def test_synthesis_runs_at_most_lookahead_frames_ahead() -> None:
    h = Harness(lookahead_frames=10)
    h.push("long", 1, [4] * 20)
    await h.play(1)
    await h.settle()
    current = h.scheduler._current
    assert current is not None
    # It stops after the piece that crossed the bound: at most one piece (4 frames) over it.
    assert 10 <= current.buffered_frames <= 10 + 4
    # Playing makes room; synthesis continues and the whole utterance is heard.
    assert h.levels(await h.play(80)) == [1] * 79 + [0]


async def test_close_interrupts_silently_and_drops_the_queue() -> None:
    h = Harness()
    current = h.push("current", 1, [10])
    queued = h.push("queued", 2, [10])
    await h.play(2)
    await h.scheduler.close()
    assert (await current.wait()).state is UtteranceState.INTERRUPTED
    assert (await queued.wait()).state is UtteranceState.DROPPED
    assert not h.of(Interrupted)
    late = h.push("late", 3, [1])
    assert (await late.wait()).state is UtteranceState.DROPPED
    assert h.scheduler.next_frame() is None


@pytest.mark.parametrize("policy", list(ArrivalPolicy))
async def test_every_accepted_utterance_ends_exactly_once(policy: ArrivalPolicy) -> None:
    h = Harness()
    handles = [h.push(f"u{i}", i + 1, [2], policy) for i in range(4)]
    await h.play(12)
    ended = [e.handle.utterance_id for e in h.of(UtteranceEnded)]  # type: ignore[union-attr]
    assert sorted(ended) == sorted(x.utterance_id for x in handles)
    assert all(x.done for x in handles)


def worded_source(pieces: list[tuple[str, int]]) -> AsyncIterator[AudioChunk]:
    async def gen() -> AsyncIterator[AudioChunk]:
        for text, frames in pieces:
            yield AudioChunk(np.full(frames * FRAME_SAMPLES, 1, dtype=np.int16), text)

    return gen()


async def test_an_interrupted_utterance_reports_what_was_heard_up_to_the_cut() -> None:
    h = Harness()
    handle = SpeechHandle("long", "Hello there. one two three four five six seven eight.")
    h.scheduler.push(
        handle, worded_source([("Hello there.", 5), ("one two three four five six seven eight.", 40)]),
        ArrivalPolicy.APPEND,
    )  # fmt: skip
    await h.play(5 + 20)  # the first piece whole, then half of the second
    h.scheduler.interrupt("client")
    outcome = await handle.wait()
    assert outcome.state is UtteranceState.INTERRUPTED
    assert outcome.played_ms == 25 * 20
    assert outcome.heard_text == "Hello there. one two three four"


async def test_heard_text_of_text_without_spaces_is_cut_by_characters() -> None:
    h = Harness()
    handle = SpeechHandle("zh", "你好世界欢迎光临")
    h.scheduler.push(handle, worded_source([("你好世界欢迎光临", 8)]), ArrivalPolicy.APPEND)
    await h.play(4)
    h.scheduler.interrupt("client")
    assert (await handle.wait()).heard_text == "你好世界"


async def test_a_protected_utterance_resists_the_users_voice_but_not_other_interrupts() -> None:
    h = Harness()
    handle = SpeechHandle("vip", "must be heard", protected=True)
    h.scheduler.push(handle, constant_source(5, [10]), ArrivalPolicy.APPEND)
    await h.play(2)
    assert not h.scheduler.interrupt("user voice", by_voice=True)
    assert h.levels(await h.play(2)) == [5, 5]
    assert h.scheduler.interrupt("client request")
    assert (await handle.wait()).state is UtteranceState.INTERRUPTED


async def test_producers_report_how_much_audio_is_buffered_ahead_of_them() -> None:
    """The synthesiser orders its queue by this: the call that will run dry first is served first."""
    from herald.media.frames import FRAME_NS
    from herald.speech.urgency import current_slack_ns

    seen: dict[str, list[int]] = {"first": [], "second": []}

    def reporting(name: str, pieces: int) -> AsyncIterator[AudioChunk]:
        async def gen() -> AsyncIterator[AudioChunk]:
            for _ in range(pieces):
                seen[name].append(current_slack_ns() // FRAME_NS)
                yield AudioChunk(np.ones(5 * FRAME_SAMPLES, dtype=np.int16), "")

        return gen()

    h = Harness()
    h.scheduler.push(SpeechHandle("first", ""), reporting("first", 3), ArrivalPolicy.APPEND)
    h.scheduler.push(SpeechHandle("second", ""), reporting("second", 2), ArrivalPolicy.APPEND)
    await h.play(1)
    # The first utterance's next piece is due after what it has buffered; the second's only after all of
    # the first's audio ahead of it as well.
    assert seen == {"first": [0, 5, 10], "second": [15, 20]}
