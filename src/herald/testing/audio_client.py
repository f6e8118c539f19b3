"""A recording client for Herald's audio WebSocket, for end-to-end tests and integration checks.

``AudioRecorder`` joins ``/v1/calls/{ChannelId}/audio`` and keeps every message the server sends, in
arrival order, in one list: binary messages become ``AudioFrame`` (20 ms of 16-bit mono PCM) and text
messages become ``DataMessage`` (the ICE data-channel envelope). Indexes into that list are the common
currency of the helpers: ``mark()`` returns the current end, and most queries take ``after``/``before``
indexes, so a test can ask "what was heard between this message and that one".

    async with AudioRecorder(url) as rec:
        mark = rec.mark()
        ...  # push a speech through the API
        subtitle = await rec.wait_for_message(MSG_AGENT_SUBTITLE, after=mark)
        await rec.wait_for_message(MSG_AGENT_STATE, lambda m: m.data["state"] == STATE_LISTENING,
                                   after=subtitle.index, timeout_s=20)
        print(rec.heard_s(after=mark))

A refused upgrade is reported by ``refused_upgrade(url)``, which returns the HTTP status and parsed body.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from types import TracebackType
from typing import Any, Final
from urllib.parse import parse_qs, urlencode, urlsplit

import numpy as np
import numpy.typing as npt
from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed, InvalidStatus

from herald.media.frames import rms

FRAME_MS: Final = 20
DEFAULT_SAMPLE_RATE_HZ: Final = 16_000

SILENCE_RMS: Final = 200.0
"""Frames whose RMS (int16 scale) is at or below this count as silence; speech is typically > 1000."""

# Data-channel message types (agent -> client) and agent states, from the ICE wire contract.
MSG_ERROR: Final = 1000
MSG_AGENT_STATE: Final = 1001
MSG_AGENT_SUBTITLE: Final = 1002
MSG_USER_SUBTITLE: Final = 1003
MSG_SPEAKING_INTERRUPTED: Final = 1016
STATE_LISTENING: Final = 1
STATE_THINKING: Final = 2
STATE_SPEAKING: Final = 3
INTERRUPTED_BY_SPEECH: Final = 4

Pcm = npt.NDArray[np.int16]


def audio_url(base_ws_url: str, channel_id: str, token: str, sample_rate_hz: int | None = None) -> str:
    """The audio WebSocket URL of a channel; ``sample_rate_hz=None`` leaves the server's default."""
    query: dict[str, str | int] = {"token": token}
    if sample_rate_hz is not None:
        query["sample_rate"] = sample_rate_hz
    return f"{base_ws_url.rstrip('/')}/v1/calls/{channel_id}/audio?{urlencode(query)}"


@dataclass(frozen=True, slots=True)
class AudioFrame:
    """One binary message: 16-bit little-endian mono PCM."""

    index: int
    received_s: float
    pcm: Pcm
    sample_rate_hz: int

    @property
    def samples(self) -> int:
        return len(self.pcm)

    @property
    def duration_s(self) -> float:
        return len(self.pcm) / self.sample_rate_hz

    @property
    def rms(self) -> float:
        return rms(self.pcm)


@dataclass(frozen=True, slots=True)
class DataMessage:
    """One text message: the envelope ``{type, data, seqId, senderId, receiverId}``."""

    index: int
    received_s: float
    type: int
    data: dict[str, Any]
    seq_id: Any
    sender_id: Any
    receiver_id: Any
    raw: str


Received = AudioFrame | DataMessage


@dataclass(frozen=True, slots=True)
class SpeechSegment:
    """A run of non-silent frames (short silent gaps inside it merged, see ``speech_segments``)."""

    first_index: int
    last_index: int
    frames: int
    """Non-silent frames in the run."""
    duration_s: float
    """Audio duration from the first to the last non-silent frame, gaps included."""
    start_s: float
    """Arrival time of the first frame."""


@dataclass(frozen=True, slots=True)
class Refusal:
    """A refused WebSocket upgrade: the HTTP status and the body (parsed JSON when it is JSON)."""

    status_code: int
    body: Any
    raw_body: bytes


class AudioRecorder:
    """Records everything a Herald audio WebSocket sends, with arrival times, in one ordered list.

    Use as an async context manager, or call ``connect()``/``close()``. ``clock`` gives arrival
    times in seconds (default ``time.monotonic``).
    """

    def __init__(
        self,
        url: str,
        *,
        sample_rate_hz: int | None = None,
        clock: Callable[[], float] = time.monotonic,
        open_timeout_s: float = 10.0,
    ) -> None:
        self.url = url
        if sample_rate_hz is None:
            sample_rate_hz = _sample_rate_from_url(url)
        self.sample_rate_hz = sample_rate_hz
        self.frame_samples = sample_rate_hz * FRAME_MS // 1000
        self.items: list[Received] = []
        self.frame_errors: list[str] = []
        """Binary messages that are not one frame (odd length, not 20 ms)."""
        self.message_errors: list[str] = []
        """Text messages that are not a well-formed envelope."""
        self.connected_s: float | None = None
        self.closed_code: int | None = None
        self._clock = clock
        self._open_timeout_s = open_timeout_s
        self._ws: ClientConnection | None = None
        self._reader: asyncio.Task[None] | None = None
        self._changed = asyncio.Condition()
        self._closed = False

    # -- connection ------------------------------------------------------------------------------

    async def connect(self) -> AudioRecorder:
        """Open the WebSocket and start recording; raises ``InvalidStatus`` if the upgrade is refused."""
        self._ws = await connect(self.url, proxy=None, open_timeout=self._open_timeout_s, max_size=None)
        self.connected_s = self._clock()
        self._reader = asyncio.create_task(self._read(self._ws), name=f"AudioRecorder({self.url})")
        return self

    async def close(self) -> None:
        """Close the connection (if open) and stop recording."""
        if self._ws is not None:
            await self._ws.close()
        if self._reader is not None:
            with contextlib.suppress(asyncio.CancelledError):
                await self._reader
        await self._notify_closed()

    async def __aenter__(self) -> AudioRecorder:
        return await self.connect()

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self.close()

    @property
    def errors(self) -> list[str]:
        """Every protocol violation seen: ``frame_errors`` then ``message_errors``."""
        return [*self.frame_errors, *self.message_errors]

    @property
    def closed(self) -> bool:
        """True once the server (or we) closed the connection."""
        return self._closed

    async def send_json(self, message: dict[str, Any]) -> None:
        """Send a client -> agent envelope (e.g. ``{"type": 1119, "data": {}}``)."""
        if self._ws is None:
            raise RuntimeError("not connected")
        await self._ws.send(json.dumps(message))

    async def send_audio(self, pcm: Pcm, *, realtime: bool = True) -> None:
        """Speak ``pcm`` (int16 mono at the socket's rate) into the call: 20 ms messages, paced in real
        time unless ``realtime`` is false."""
        if self._ws is None:
            raise RuntimeError("not connected")
        step = self.frame_samples
        started = time.monotonic()
        for index, start in enumerate(range(0, len(pcm), step)):
            await self._ws.send(np.ascontiguousarray(pcm[start : start + step], dtype="<i2").tobytes())
            if realtime:
                await asyncio.sleep(max(0.0, started + (index + 1) * FRAME_MS / 1000 - time.monotonic()))

    async def send_silence(self, seconds: float) -> None:
        """``seconds`` of digital silence, in real time (what a quiet microphone sends)."""
        await self.send_audio(np.zeros(round(seconds * self.sample_rate_hz), dtype=np.int16))

    async def _read(self, ws: ClientConnection) -> None:
        try:
            async for message in ws:
                self._record(message)
                async with self._changed:
                    self._changed.notify_all()
        except ConnectionClosed:
            pass
        finally:
            self.closed_code = ws.close_code
            await self._notify_closed()

    async def _notify_closed(self) -> None:
        self._closed = True
        async with self._changed:
            self._changed.notify_all()

    def _record(self, message: str | bytes) -> None:
        now = self._clock()
        index = len(self.items)
        if isinstance(message, bytes):
            if len(message) % 2:
                self.frame_errors.append(f"#{index}: binary message of odd length {len(message)}")
                message = message[:-1]
            pcm = np.frombuffer(message, dtype="<i2").astype(np.int16)
            if len(pcm) != self.frame_samples:
                self.frame_errors.append(
                    f"#{index}: frame of {len(pcm)} samples, expected {self.frame_samples}"
                )
            self.items.append(AudioFrame(index, now, pcm, self.sample_rate_hz))
            return
        try:
            envelope = json.loads(message)
            kind = envelope["type"]
            data = envelope.get("data", {})
            if not isinstance(kind, int) or isinstance(kind, bool) or not isinstance(data, dict):
                raise TypeError("type must be an int and data an object")
        except (ValueError, KeyError, TypeError) as exc:
            self.message_errors.append(
                f"#{index}: text message is not an envelope ({exc}): {message[:200]!r}"
            )
            self.items.append(DataMessage(index, now, -1, {}, None, None, None, message))
            return
        for name, kinds in (("seqId", (int,)), ("senderId", (str,)), ("receiverId", (str,))):
            if not isinstance(envelope.get(name), kinds):
                self.message_errors.append(f"#{index}: envelope field {name} is {envelope.get(name)!r}")
        self.items.append(
            DataMessage(
                index,
                now,
                kind,
                data,
                envelope.get("seqId"),
                envelope.get("senderId"),
                envelope.get("receiverId"),
                message,
            )
        )

    # -- queries ---------------------------------------------------------------------------------

    def mark(self) -> int:
        """The index of the last item received so far (-1 if none): pass it as ``after``."""
        return len(self.items) - 1

    def _slice(self, after: int, before: int | None) -> Sequence[Received]:
        end = len(self.items) if before is None else min(before, len(self.items))
        return self.items[max(after + 1, 0) : max(end, 0)]

    def frames(self, *, after: int = -1, before: int | None = None) -> list[AudioFrame]:
        """Audio frames with ``after < index < before``."""
        return [item for item in self._slice(after, before) if isinstance(item, AudioFrame)]

    def frames_after(self, message_index: int, before: int | None = None) -> list[AudioFrame]:
        """Audio frames that arrived after the item at ``message_index`` (and before ``before``)."""
        return self.frames(after=message_index, before=before)

    def pcm(self, *, after: int = -1, before: int | None = None) -> Pcm:
        """The recorded audio between two indexes, concatenated."""
        frames = self.frames(after=after, before=before)
        if not frames:
            return np.zeros(0, dtype=np.int16)
        return np.concatenate([f.pcm for f in frames])

    def messages(
        self, type: int | None = None, *, after: int = -1, before: int | None = None
    ) -> list[DataMessage]:
        """Text messages (of one ``type``, if given) with ``after < index < before``."""
        return [
            item
            for item in self._slice(after, before)
            if isinstance(item, DataMessage) and (type is None or item.type == type)
        ]

    def rms_per_frame(self, *, after: int = -1, before: int | None = None) -> npt.NDArray[np.float64]:
        return np.array([f.rms for f in self.frames(after=after, before=before)], dtype=np.float64)

    def nonsilent_frames(
        self, *, after: int = -1, before: int | None = None, threshold: float = SILENCE_RMS
    ) -> list[AudioFrame]:
        return [f for f in self.frames(after=after, before=before) if f.rms > threshold]

    def heard_s(self, *, after: int = -1, before: int | None = None, threshold: float = SILENCE_RMS) -> float:
        """Seconds of non-silent audio between two indexes."""
        return sum(
            f.duration_s for f in self.nonsilent_frames(after=after, before=before, threshold=threshold)
        )

    def speech_segments(
        self,
        threshold: float = SILENCE_RMS,
        *,
        min_gap_s: float = 0.0,
        after: int = -1,
        before: int | None = None,
    ) -> list[SpeechSegment]:
        """Runs of non-silent frames; runs separated by less than ``min_gap_s`` of silence are merged."""
        segments: list[SpeechSegment] = []
        first: AudioFrame | None = None
        last = first
        loud = span = gap = 0  # non-silent frames; frames from first to last; silent frames since last

        for frame in self.frames(after=after, before=before):
            if frame.rms <= threshold:
                gap += first is not None
                continue
            if first is not None and last is not None and gap * frame.duration_s >= max(min_gap_s, 1e-9):
                segments.append(
                    SpeechSegment(first.index, last.index, loud, span * last.duration_s, first.received_s)
                )
                first = None
            if first is None:
                first, loud, span, gap = frame, 0, 0, 0
            loud += 1
            span += gap + 1
            gap = 0
            last = frame
        if first is not None and last is not None:
            segments.append(
                SpeechSegment(first.index, last.index, loud, span * last.duration_s, first.received_s)
            )
        return segments

    def describe(self, *, after: int = -1, limit: int = 40) -> str:
        """A compact transcript for assertion messages: messages verbatim, audio as runs."""
        lines: list[str] = []
        run_start: AudioFrame | None = None
        run_len = 0
        run_loud = 0
        for item in self._slice(after, None):
            if isinstance(item, AudioFrame):
                if run_start is None:
                    run_start, run_len, run_loud = item, 0, 0
                run_len += 1
                run_loud += item.rms > SILENCE_RMS
                continue
            if run_start is not None:
                lines.append(f"#{run_start.index}: {run_len} frames ({run_loud} non-silent)")
                run_start = None
            lines.append(f"#{item.index}: {item.raw[:160]}")
        if run_start is not None:
            lines.append(f"#{run_start.index}: {run_len} frames ({run_loud} non-silent)")
        if len(lines) > limit:
            lines = [*lines[: limit // 2], f"... {len(lines) - limit} lines ...", *lines[-limit // 2 :]]
        return "\n".join(lines)

    # -- waiting ---------------------------------------------------------------------------------

    async def wait_until(
        self, predicate: Callable[[], bool], *, timeout_s: float, what: str = "condition"
    ) -> None:
        """Wait until ``predicate()`` holds; ``TimeoutError`` (with a transcript) if it does not in time."""
        try:
            async with asyncio.timeout(timeout_s), self._changed:
                while not predicate():
                    if self._closed:
                        raise ConnectionError(f"connection closed (code {self.closed_code}) before {what}")
                    await self._changed.wait()
        except TimeoutError:
            raise TimeoutError(f"no {what} within {timeout_s} s; received:\n{self.describe()}") from None

    async def wait_for_message(
        self,
        type: int,
        predicate: Callable[[DataMessage], bool] | None = None,
        *,
        after: int = -1,
        timeout_s: float = 10.0,
    ) -> DataMessage:
        """The first message of ``type`` (matching ``predicate``) after index ``after``, waiting for it."""
        found: list[DataMessage] = []

        def check() -> bool:
            for message in self.messages(type, after=after):
                if predicate is None or predicate(message):
                    found.append(message)
                    return True
            return False

        await self.wait_until(check, timeout_s=timeout_s, what=f"message of type {type} after #{after}")
        return found[0]

    async def wait_for_frames(
        self, count: int, *, after: int = -1, timeout_s: float = 10.0
    ) -> list[AudioFrame]:
        """Wait until ``count`` audio frames arrived after ``after``; return them."""
        await self.wait_until(
            lambda: len(self.frames(after=after)) >= count,
            timeout_s=timeout_s,
            what=f"{count} frames after #{after}",
        )
        return self.frames(after=after)[:count]

    async def wait_for_speech(
        self, seconds: float, *, after: int = -1, threshold: float = SILENCE_RMS, timeout_s: float = 20.0
    ) -> None:
        """Wait until ``seconds`` of non-silent audio arrived after ``after``."""
        await self.wait_until(
            lambda: self.heard_s(after=after, threshold=threshold) >= seconds - 1e-9,
            timeout_s=timeout_s,
            what=f"{seconds} s of speech after #{after}",
        )


def _sample_rate_from_url(url: str) -> int:
    values = parse_qs(urlsplit(url).query).get("sample_rate")
    if values:
        with contextlib.suppress(ValueError):
            return int(values[0])
    return DEFAULT_SAMPLE_RATE_HZ


async def refused_upgrade(url: str, *, timeout_s: float = 10.0) -> Refusal:
    """Try to join ``url`` and return how the upgrade was refused; ``AssertionError`` if it was accepted."""
    try:
        ws = await connect(url, proxy=None, open_timeout=timeout_s)
    except InvalidStatus as exc:
        raw = bytes(exc.response.body)
        try:
            body: Any = json.loads(raw)
        except ValueError:
            body = raw.decode("utf-8", "replace")
        return Refusal(exc.response.status_code, body, raw)
    await ws.close()
    raise AssertionError(f"the upgrade to {url} was accepted")


@dataclass(frozen=True, slots=True)
class Spoken:
    """When a clip given to ``Microphone.say`` went out (``time.monotonic()`` once each frame was sent)."""

    first_frame_s: float
    last_frame_s: float
    voice_started_s: float
    """The clip's first frame with speech energy (RMS above ``SILENCE_RMS``); its first frame if none."""
    voice_ended_s: float
    """The clip's last frame with speech energy; its last frame if none."""


class Microphone:
    """A client microphone that never pauses: one 20 ms frame every 20 ms on ``recorder``'s socket, silence
    unless ``say()`` gives it something to speak (a real client sends audio all the time, so the server's
    voice activity detection hears the silence that ends an utterance).

        async with AudioRecorder(url) as rec, Microphone(rec) as mic:
            spoken = await mic.say(pcm)  # once the clip's last frame was sent: when it went out
    """

    def __init__(self, recorder: AudioRecorder) -> None:
        self._recorder = recorder
        self._clips: list[tuple[Pcm, asyncio.Future[Spoken]]] = []
        self._offset = 0
        self._task: asyncio.Task[None] | None = None

    async def __aenter__(self) -> Microphone:
        self._task = asyncio.create_task(self._run(), name="Microphone")
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self.close()

    async def close(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        self._fail_pending(ConnectionError("the microphone was closed"))

    def say(self, pcm: Pcm) -> asyncio.Future[Spoken]:
        """Queue ``pcm`` (int16 mono at the socket's rate) after whatever is being said; await the result to
        wait until its last frame was sent."""
        done: asyncio.Future[Spoken] = asyncio.get_running_loop().create_future()
        self._clips.append((pcm, done))
        return done

    async def _run(self) -> None:
        step = self._recorder.frame_samples
        silence = np.zeros(step, dtype=np.int16)
        started = time.monotonic()
        sent = 0
        # Send times of the current clip's first frame, first and last voiced frame so far.
        first_s: float | None = None
        voice_first_s: float | None = None
        voice_last_s: float | None = None
        try:
            while True:
                frame, finished = self._next(step, silence)
                await self._recorder.send_audio(frame, realtime=False)
                now = time.monotonic()
                if frame is not silence:
                    first_s = now if first_s is None else first_s
                    if rms(frame) > SILENCE_RMS:
                        voice_first_s = now if voice_first_s is None else voice_first_s
                        voice_last_s = now
                if finished is not None and first_s is not None:
                    if not finished.done():
                        finished.set_result(
                            Spoken(first_s, now, voice_first_s or first_s, voice_last_s or now)
                        )
                    first_s = voice_first_s = voice_last_s = None
                sent += 1
                await asyncio.sleep(max(0.0, started + sent * FRAME_MS / 1000 - time.monotonic()))
        except (ConnectionClosed, RuntimeError) as exc:
            self._fail_pending(ConnectionError(f"the microphone stopped: {exc}"))

    def _next(self, step: int, silence: Pcm) -> tuple[Pcm, asyncio.Future[Spoken] | None]:
        """The next frame to send, and the clip's future if it is that clip's last frame."""
        if not self._clips:
            return silence, None
        pcm, done = self._clips[0]
        frame = pcm[self._offset : self._offset + step]
        self._offset += step
        if self._offset < len(pcm):
            return frame, None
        self._clips.pop(0)
        self._offset = 0
        if len(frame) < step:
            frame = np.concatenate([frame, silence[: step - len(frame)]])
        return frame, done

    def _fail_pending(self, exc: Exception) -> None:
        for _, done in self._clips:
            if not done.done():
                done.set_exception(exc)
        self._clips.clear()
