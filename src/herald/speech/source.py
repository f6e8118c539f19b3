"""Audio sources: whatever an utterance says becomes an async iterator of captioned PCM chunks.

Text (through TTS) and, later, audio URLs (through a decoder) share this one shape, so the scheduler never
knows where audio came from.
"""

from __future__ import annotations

from collections.abc import AsyncGenerator, AsyncIterator, Sequence
from contextlib import aclosing
from dataclasses import dataclass
from typing import Protocol

from herald.media.frames import Pcm
from herald.speech.pronunciation import apply_rules
from herald.speech.text import split_for_streaming
from herald.speech.tts import Synthesizer, VoiceSettings, apply_volume


@dataclass(frozen=True, slots=True)
class AudioChunk:
    """A piece of an utterance: canonical-rate PCM and the text it speaks (``""`` when it has none)."""

    pcm: Pcm
    caption: str
    continues: bool = False
    """The audio goes on from the previous chunk's without a break (the next part of one file)."""


AudioSource = AsyncIterator[AudioChunk]


async def text_source(
    synthesizer: Synthesizer,
    text: str,
    voice: VoiceSettings,
    rules: Sequence[tuple[str, str]] = (),
) -> AudioSource:
    """Synthesise ``text`` piece by piece: the first clause alone, so the first audio comes early.

    Pronunciation ``rules`` change what the engine is given, never the caption: subtitles show the text.
    """
    for piece in split_for_streaming(text):
        spoken = apply_rules(piece, rules) if rules else piece
        pcm = await synthesizer.synthesize(spoken, voice)
        yield AudioChunk(pcm, piece)


class ByteSource(Protocol):
    def stream(self, url: str) -> AsyncGenerator[bytes, None]: ...


class PcmDecoder(Protocol):
    def decode(self, data: AsyncIterator[bytes]) -> AsyncGenerator[Pcm, None]: ...


async def url_source(
    fetcher: ByteSource, decoder: PcmDecoder, url: str, volume_percent: int = 100
) -> AudioSource:
    """Fetch ``url`` and decode it as it arrives; playback starts before the download ends where it can.

    Closing this source (an interrupt) closes the decoder and the download at once.
    """
    async with aclosing(fetcher.stream(url)) as data, aclosing(decoder.decode(data)) as decoded:
        first = True
        async for pcm in decoded:
            yield AudioChunk(apply_volume(pcm, volume_percent), "", continues=not first)
            first = False
