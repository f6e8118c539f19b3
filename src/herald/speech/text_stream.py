"""An utterance whose text is still being written: clauses arrive (from an LLM), audio follows each.

The conversation pushes clauses as the reply streams in and ends (or fails) the stream; the scheduler's
producer reads it as any ``AudioSource``, synthesising each clause while the one before plays. Playback
may start as soon as the first clause is synthesised, long before the reply is complete.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Sequence

from herald.speech.pronunciation import apply_rules
from herald.speech.source import AudioChunk
from herald.speech.tts import Synthesizer, VoiceSettings


class TextStreamFailed(Exception):
    """The writer gave up (the LLM failed mid-reply); ``reason`` says why."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


_END = object()


class TextStream:
    """Clauses in, captioned audio out. One writer, one reader."""

    def __init__(
        self, synthesizer: Synthesizer, voice: VoiceSettings, rules: Sequence[tuple[str, str]] = ()
    ) -> None:
        self._synthesizer = synthesizer
        self._voice = voice
        self._rules = rules
        self._clauses: asyncio.Queue[object] = asyncio.Queue()
        self.written: list[str] = []
        """Every clause written so far: the whole reply, once ended."""
        self.ended = False

    def write(self, clause: str) -> None:
        if self.ended:
            raise RuntimeError("the text stream has ended")
        if clause.strip():
            self.written.append(clause)
            self._clauses.put_nowait(clause)

    def end(self) -> None:
        """Nothing more will be written: the audio ends after the last clause."""
        if not self.ended:
            self.ended = True
            self._clauses.put_nowait(_END)

    def fail(self, reason: str) -> None:
        """Stop with an error after the clauses written so far have played."""
        if not self.ended:
            self.ended = True
            self._clauses.put_nowait(TextStreamFailed(reason))

    async def audio(self) -> AsyncIterator[AudioChunk]:
        """The source to speak (read once)."""
        while True:
            item = await self._clauses.get()
            if item is _END:
                return
            if isinstance(item, TextStreamFailed):
                raise item
            assert isinstance(item, str)
            spoken = apply_rules(item, self._rules) if self._rules else item
            pcm = await self._synthesizer.synthesize(spoken, self._voice)
            yield AudioChunk(pcm, item)
