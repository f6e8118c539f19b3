"""What a talker's client is and keeps: ``TalkClient`` (an ``AudioRecorder`` and a ``Microphone`` that
never pauses) and ``TalkCall``, what one call's client saw: what it said and when, every final ``1003``,
the ``1900`` of every utterance, the ``1016``, any ``1000``, and when audible audio arrived; not the audio.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import time
from collections import defaultdict
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Final

import numpy as np

from herald.testing.audio_client import (
    MSG_AGENT_STATE,
    MSG_ERROR,
    MSG_SPEAKING_INTERRUPTED,
    MSG_USER_SUBTITLE,
    SILENCE_RMS,
    STATE_LISTENING,
    AudioFrame,
    AudioRecorder,
    Microphone,
    Pcm,
    Spoken,
)

MSG_SPEECH_OUTCOME: Final = 1900
REASON_VOICE: Final = 2
STATE_SPEAKING: Final = 3
_EMPTY: Final = np.zeros(0, dtype=np.int16)


@dataclass(frozen=True)
class Heard:
    """A final user subtitle (``1003`` with ``end: true``; an empty one closes partials that led nowhere)."""

    received_s: float
    text: str
    sentence_id: str


@dataclass
class Said:
    """One clip given to the microphone."""

    text: str
    how: str
    """``turn``, ``barge`` (over an answer), ``quick`` (right after another), ``leave`` (cut), ``final``."""
    queued_s: float
    spoken: Spoken | None = None
    """When it went out; ``None``: not to its end (the client left)."""

    @property
    def voice_started_s(self) -> float:
        return self.spoken.voice_started_s if self.spoken is not None else self.queued_s


@dataclass
class TalkCall:
    """One talker call and everything its client saw."""

    talker: int
    session_id: str
    instance_id: str
    tag: str
    """Its system prompt: the first message of every LLM request it makes."""
    said: list[Said] = field(default_factory=list)
    heard: list[Heard] = field(default_factory=list)
    partials: set[str] = field(default_factory=set)
    """``sentenceId`` of every partial user subtitle (``1003`` with ``end: false``)."""
    outcomes: defaultdict[str, list[str]] = field(default_factory=lambda: defaultdict(list))
    """``1900``: requestId -> states."""
    barge_ins: int = 0
    """``1016`` with reason 2 (the user's voice)."""
    audible_s: list[float] = field(default_factory=list)
    """Arrival times of the frames with speech energy (the agent's answers)."""
    problems: list[str] = field(default_factory=list)
    left_s: float | None = None
    """The client left in the middle of a clip (its data channel misses what came after)."""
    ended: str | None = None
    """``left`` (and then stopped), ``end`` (stopped at the run's end)."""
    dialogues: list[dict[str, Any]] = field(default_factory=list)
    """Its session's ``ListAIAgentDialogues``, read at the end."""

    @property
    def turns(self) -> list[Heard]:
        """What the server heard the user say: the final subtitles with words."""
        return [h for h in self.heard if h.text]

    @property
    def complete(self) -> bool:
        """The client saw every message: it stayed until the server closed the call."""
        return self.left_s is None and self.ended == "end"


class TalkClient:
    """The call's WebSocket client: an ``AudioRecorder`` and a ``Microphone`` that never pauses."""

    def __init__(self, call: TalkCall, url: str) -> None:
        self.call = call
        self.url = url
        self.state: int | None = None
        self._stack = contextlib.AsyncExitStack()
        self._rec: AudioRecorder | None = None
        self._mic: Microphone | None = None
        self._cursor = 0
        self._closing = False

    async def open(self) -> None:
        self._rec = await self._stack.enter_async_context(AudioRecorder(self.url))
        self._mic = await self._stack.enter_async_context(Microphone(self._rec))

    @property
    def closed(self) -> bool:
        return self._rec is None or self._rec.closed

    def sync(self) -> None:
        """Take in what arrived since the last call (messages, audible frames)."""
        rec, call = self._rec, self.call
        if rec is None:
            return
        items = rec.items
        for position in range(self._cursor, len(items)):
            item = items[position]
            if isinstance(item, AudioFrame):
                if item.rms > SILENCE_RMS:
                    call.audible_s.append(item.received_s)
                # Minutes of audio are not kept: the arrival times of audible frames are all the checks use.
                items[position] = AudioFrame(item.index, item.received_s, _EMPTY, item.sample_rate_hz)
                continue
            data = item.data
            if item.type == MSG_AGENT_STATE:
                self.state = data.get("state")
            elif item.type == MSG_USER_SUBTITLE and data.get("end") is True:
                call.heard.append(
                    Heard(item.received_s, str(data.get("text") or ""), str(data.get("sentenceId")))
                )
            elif item.type == MSG_USER_SUBTITLE:
                call.partials.add(str(data.get("sentenceId")))
            elif item.type == MSG_SPEECH_OUTCOME:
                call.outcomes[str(data.get("requestId"))].append(str(data.get("state")))
            elif item.type == MSG_SPEAKING_INTERRUPTED and data.get("reason") == REASON_VOICE:
                call.barge_ins += 1
            elif item.type == MSG_ERROR:
                call.problems.append(f"{call.instance_id}: 1000 {json.dumps(data)[:300]}")
        self._cursor = len(items)
        if rec.closed and not self._closing:
            self._closing = True
            call.problems.append(f"{call.instance_id}: the server closed the socket (code {rec.closed_code})")

    async def wait(self, predicate: Callable[[], bool], timeout_s: float) -> bool:
        """Whether ``predicate`` came true within ``timeout_s`` (checked every 50 ms, after a ``sync``)."""
        deadline = time.monotonic() + timeout_s
        while True:
            self.sync()
            if predicate():
                return True
            if self.closed or time.monotonic() >= deadline:
                return False
            await asyncio.sleep(0.05)

    async def wait_listening(self, timeout_s: float = 45.0) -> bool:
        """Until the agent listens, once what was just said had time to be heard and answered."""
        if self.call.said:
            await sleep_until(self.call.said[-1].queued_s + 0.3)
            last = self.call.said[-1].spoken
            if last is not None:
                await sleep_until(last.last_frame_s + 1.5)
        return await self.wait(lambda: self.state == STATE_LISTENING, timeout_s)

    def answering(self) -> bool:
        self.sync()
        return self.state == STATE_SPEAKING

    async def wait_heard(self, after_s: float, timeout_s: float) -> bool:
        """Until a final ``1003`` arrives after ``after_s``."""
        heard = self.call.heard
        return await self.wait(lambda: bool(heard) and heard[-1].received_s > after_s, timeout_s)

    async def wait_audible(self, after_s: float, timeout_s: float) -> bool:
        return await self.wait(
            lambda: bool(self.call.audible_s) and self.call.audible_s[-1] > after_s, timeout_s
        )

    def start_saying(self, pcm: Pcm, text: str, how: str) -> tuple[Said, asyncio.Future[Spoken]]:
        assert self._mic is not None
        said = Said(text, how, time.monotonic())
        self.call.said.append(said)
        done = self._mic.say(pcm)
        done.add_done_callback(lambda f: f.cancelled() or f.exception())  # a cut clip fails: expected
        return said, done

    async def say(self, pcm: Pcm, text: str, how: str) -> Said:
        """Say ``pcm``; returns once its last frame went out."""
        said, done = self.start_saying(pcm, text, how)
        try:
            said.spoken = await done
        except ConnectionError as exc:
            if not self._closing:
                self.call.problems.append(f"{self.call.instance_id}: could not say {text!r}: {exc}")
        return said

    async def query_state(self, timeout_s: float) -> int | None:
        """``1119``: the agent's state as it answers (``None`` if no ``1001`` came in time)."""
        if self._rec is None or self.closed:
            return None
        mark = self._rec.mark()
        await self._rec.send_json({"type": 1119, "data": {}})
        try:
            answer = await self._rec.wait_for_message(MSG_AGENT_STATE, after=mark, timeout_s=timeout_s)
        except (TimeoutError, ConnectionError):
            return None
        state = answer.data.get("state")
        return state if isinstance(state, int) else None

    async def leave(self) -> None:
        """The client goes away (in the middle of a clip)."""
        self.call.left_s = time.monotonic()
        await self.close()

    async def wait_closed_by_server(self, timeout_s: float) -> bool:
        self._closing = True  # expected now
        return await self.wait(lambda: False, timeout_s) or self.closed

    async def close(self) -> None:
        self._closing = True
        self.sync()
        await self._stack.aclose()
        self.sync()
        if self._rec is not None:
            self.call.problems += [f"{self.call.instance_id}: {e}" for e in self._rec.errors[:5]]
        self._rec = self._mic = None


def answer_id(line: dict[str, Any]) -> str | None:
    """The RequestId of a dialogue line that is the agent's answer to a turn (its round is the turn's)."""
    if line.get("Producer") != "agent":
        return None
    rid = str(extend_of(line).get("RequestId"))
    return rid if rid != line.get("RoundId") else None


def extend_of(line: dict[str, Any]) -> dict[str, Any]:
    """A dialogue line's ``Extend`` (the wire carries it as a JSON string)."""
    extend = line.get("Extend")
    if isinstance(extend, str):
        try:
            extend = json.loads(extend)
        except ValueError:
            return {}
    return extend if isinstance(extend, dict) else {}


async def sleep_until(when_s: float) -> None:
    await asyncio.sleep(max(0.0, when_s - time.monotonic()))
