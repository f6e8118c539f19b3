"""Audio sources: whatever an utterance says becomes an async iterator of captioned PCM chunks.

Text (through TTS) and, later, audio URLs (through a decoder) share this one shape, so the scheduler never
knows where audio came from.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass

from herald.media.frames import Pcm
from herald.speech.text import split_for_streaming
from herald.speech.tts import Synthesizer, VoiceSettings


@dataclass(frozen=True, slots=True)
class AudioChunk:
    """A piece of an utterance: canonical-rate PCM and the text it speaks (``""`` when it has none)."""

    pcm: Pcm
    caption: str


AudioSource = AsyncIterator[AudioChunk]


async def text_source(synthesizer: Synthesizer, text: str, voice: VoiceSettings) -> AudioSource:
    """Synthesise ``text`` piece by piece: the first clause alone, so the first audio comes early."""
    for index, piece in enumerate(split_for_streaming(text)):
        pcm = await synthesizer.synthesize(piece, voice, urgent=index == 0)
        yield AudioChunk(pcm, piece)
