"""The speech-recognition contract: one whole utterance at 16 kHz in, its text out.

Engines: ``pocketsphinx_asr.PocketSphinxRecognizer`` (offline, English, the embedded default) and
``openai_asr.OpenAITranscriber`` (any OpenAI-compatible ``/audio/transcriptions`` service). Every failure is
a ``RecognitionError`` whose ``reason`` may be shown to the user or operator as is.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Final, Protocol

import numpy as np
import numpy.typing as npt

SAMPLE_RATE_HZ: Final = 16_000
"""The rate recognisers take (and voice activity detection works at): what speech models are trained on."""

Pcm16k = npt.NDArray[np.int16]
"""Mono 16-bit samples at ``SAMPLE_RATE_HZ``."""


class RecognitionError(Exception):
    """Speech could not be recognised; ``reason`` says why in a sentence fit for a user or operator.

    A reason never holds an API key or a URL (a URL may carry credentials).
    """

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


def primary_language(language: str | None) -> str | None:
    """The language part of a tag, lower case: "en" for "en-US", "en_us" or "EN"; ``None`` for none or ""."""
    if not language:
        return None
    return language.replace("_", "-").split("-")[0].strip().lower() or None


class RecognitionStream(Protocol):
    """One utterance recognised while it is spoken (``SpeechRecognizer.stream``)."""

    def feed(self, audio: Pcm16k) -> None:
        """The utterance's next audio (16 kHz mono int16), in order. Never blocks."""
        ...

    async def finish(self) -> str:
        """Everything was fed: the utterance's text (what ``transcribe`` would make of all that audio, give
        or take the engine's streaming mode). Raises ``RecognitionError``."""
        ...

    def cancel(self) -> None:
        """Abandon the utterance (the speaker left, the conversation ended)."""
        ...


class SpeechRecognizer(Protocol):
    @property
    def languages(self) -> frozenset[str] | None:
        """The primary languages (ISO 639-1, such as "en") it understands; ``None``: any it is asked for."""
        ...

    async def transcribe(self, audio: Pcm16k, *, language: str | None = None) -> str:
        """The text spoken in ``audio`` (one whole utterance, mono int16 at 16 kHz); "" if nothing was
        recognised. ``language`` is a hint such as "en" or "en-US" (``None`` or "": the engine's default or
        its guess).
        Never blocks the event loop; raises ``RecognitionError``."""
        ...

    def stream(
        self, *, language: str | None = None, on_partial: Callable[[str], None] | None = None
    ) -> RecognitionStream | None:
        """Recognise an utterance while it is spoken, telling ``on_partial`` what is heard so far as it
        changes; ``None`` if this engine only takes whole utterances (then use ``transcribe``)."""
        ...


def language_refusal(recognizer: SpeechRecognizer, language: str | None) -> str | None:
    """Why ``recognizer`` cannot take ``language`` (a sentence), or ``None`` when it can."""
    understood = recognizer.languages
    wanted = primary_language(language)
    if understood is None or wanted is None or wanted in understood:
        return None
    names = ", ".join(sorted(understood))
    return f"the speech recogniser understands {names} only, not {language!r:.34}"
