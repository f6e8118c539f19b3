"""Fakes for unit tests of the conversation: a voice detector that hears loudness, a recogniser that reads
a script, an in-process LLM, and a live instance that records what it is asked to do."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncGenerator, Callable, Sequence
from dataclasses import dataclass, field

import numpy as np

from herald.agents.requests import SpeechRequest
from herald.listening.asr import Pcm16k, RecognitionError
from herald.listening.vad_model import Float32Array, SileroModel
from herald.media.frames import FRAME_SAMPLES, Pcm
from herald.media.messages import InterruptReason, MessageType
from herald.speech.handle import SpeechHandle
from herald.speech.source import AudioSource
from herald.speech.tts import VoiceSettings
from herald.thinking.llm import ChatMessage, LlmError

LOUD: Pcm = (np.sin(np.arange(FRAME_SAMPLES) / 7) * 8000).astype(np.int16)
"""One frame the ``LoudnessModel`` hears as speech."""
QUIET: Pcm = np.zeros(FRAME_SAMPLES, dtype=np.int16)


class LoudnessModel(SileroModel):
    """Speech is whatever is louder than ``threshold`` (RMS on the [-1, 1] scale): no model file needed."""

    def __init__(self, threshold: float = 0.05) -> None:
        super().__init__(session=None)
        self.threshold = threshold

    def run(self, samples: Float32Array, state: Float32Array) -> tuple[float, Float32Array]:
        window = samples[0, -512:]
        loud = float(np.sqrt(np.mean(np.square(window)))) > self.threshold
        return (0.99 if loud else 0.01), state


class ScriptedRecognizer:
    """Hears the next of ``texts`` in each utterance ("" once they run out); ``fail`` raises instead.

    With ``streaming`` it also recognises while the utterance is spoken: every ``feed`` reveals one more
    word of the text to ``on_partial``."""

    def __init__(self, *texts: str, streaming: bool = False) -> None:
        self.texts = list(texts)
        self.heard: list[int] = []
        """The length (samples) of each utterance transcribed."""
        self.fail: str | None = None
        self.languages: frozenset[str] | None = None
        """What it claims to understand (``None``: any)."""
        self.streaming = streaming
        self.streams: list[ScriptedStream] = []

    async def transcribe(self, audio: Pcm16k, *, language: str | None = None) -> str:
        self.heard.append(len(audio))
        if self.fail is not None:
            raise RecognitionError(self.fail)
        return self._next()

    def stream(
        self, *, language: str | None = None, on_partial: Callable[[str], None] | None = None
    ) -> ScriptedStream | None:
        if not self.streaming:
            return None
        stream = ScriptedStream(self, on_partial)
        self.streams.append(stream)
        return stream

    def _next(self) -> str:
        return self.texts.pop(0) if self.texts else ""


class ScriptedStream:
    """A ``RecognitionStream`` of ``ScriptedRecognizer``: the text is the next one when it finishes."""

    def __init__(self, recognizer: ScriptedRecognizer, on_partial: Callable[[str], None] | None) -> None:
        self._recognizer = recognizer
        self._on_partial = on_partial
        self.samples = 0
        self._feeds = 0
        self.cancelled = False
        self.finished = False
        self.partial_at_finish = ""
        """A partial hypothesis to show as it finishes (a real stream decodes the audio's tail then)."""

    def feed(self, audio: Pcm16k) -> None:
        self.samples += len(audio)
        words = (self._recognizer.texts[0] if self._recognizer.texts else "").split()
        self._feeds += 1
        if self._on_partial is not None and words:
            self._on_partial(" ".join(words[: min(self._feeds, len(words))]))

    async def finish(self) -> str:
        self.finished = True
        if self.partial_at_finish and self._on_partial is not None:
            self._on_partial(self.partial_at_finish)
        self._recognizer.heard.append(self.samples)
        if self._recognizer.fail is not None:
            raise RecognitionError(self._recognizer.fail)
        return self._recognizer._next()

    def cancel(self) -> None:
        self.cancelled = True


@dataclass
class ScriptedChat:
    """An LLM in the process: answers each request with the next reply, in ``chunk``-character deltas.

    ``gate`` (when set) holds every reply before its first delta until it is set; ``fail`` raises
    ``LlmError`` instead of answering.
    """

    replies: list[str] = field(default_factory=list)
    chunk: int = 5
    requests: list[list[ChatMessage]] = field(default_factory=list)
    gate: asyncio.Event | None = None
    fail: str | None = None
    closed_early: int = 0

    async def reply(self, messages: Sequence[ChatMessage]) -> AsyncGenerator[str, None]:
        self.requests.append(list(messages))
        if self.gate is not None:
            await self.gate.wait()
        if self.fail is not None:
            raise LlmError(self.fail)
        text = self.replies.pop(0) if self.replies else "OK."
        finished = False
        try:
            for start in range(0, len(text), self.chunk):
                yield text[start : start + self.chunk]
                await asyncio.sleep(0)
            finished = True
        finally:
            if not finished:
                self.closed_early += 1


@dataclass
class Said:
    request: SpeechRequest
    handle: SpeechHandle
    streamed: bool


class RecordingSpeaker:
    """A live instance for the conversation alone: it keeps every request; tests end utterances by hand."""

    def __init__(self) -> None:
        self.said: list[Said] = []
        self.interrupts: list[tuple[InterruptReason, bool]] = []
        self.messages: list[tuple[MessageType, dict[str, object]]] = []
        self.turns: list[tuple[str, str]] = []
        self.errors: list[tuple[int, str]] = []
        self.hung_up: list[str] = []
        self.thinking = False
        self.playing: SpeechHandle | None = None
        self.sources: dict[str, AudioSource] = {}

    @property
    def speaking(self) -> bool:
        return self.playing is not None

    @property
    def protected_speaking(self) -> bool:
        return self.playing is not None and self.playing.protected

    def voice(self, request: SpeechRequest | None = None) -> VoiceSettings:
        return VoiceSettings("tone")

    def pronunciation(self) -> Sequence[tuple[str, str]]:
        return ()

    def speak(self, request: SpeechRequest, source: AudioSource | None = None) -> SpeechHandle:
        handle = SpeechHandle(request.utterance_id, request.content, protected=request.protected)
        self.said.append(Said(request, handle, source is not None))
        if source is not None:
            self.sources[request.utterance_id] = source
        if self.playing is None:
            self.playing = handle
        return handle

    def interrupt(self, reason: InterruptReason, by: str, *, by_voice: bool = False) -> bool:
        self.interrupts.append((reason, by_voice))
        if self.playing is None or (by_voice and self.playing.protected):
            return False
        self.playing = None  # cut, as the scheduler does
        return True

    def send_message(self, msg_type: MessageType, data: dict[str, object]) -> None:
        self.messages.append((msg_type, data))

    def set_thinking(self, thinking: bool) -> None:
        self.thinking = thinking

    def record_user_turn(self, round_id: str, text: str) -> None:
        self.turns.append((round_id, text))

    def report_error(self, code: int, message: str) -> None:
        self.errors.append((code, message))

    def hang_up(self, reason: str) -> None:
        self.hung_up.append(reason)

    def texts(self) -> list[str]:
        """What was asked to be said, in order (answers streaming in show as "")."""
        return [s.request.content for s in self.said]
