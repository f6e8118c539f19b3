"""Several TTS engines behind one: each voice id is served by the engine that has it."""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from typing import NamedTuple, Protocol, runtime_checkable

from herald.media.frames import Pcm
from herald.speech.tts import TtsEngine, VoiceSettings

_PIPER_ID = re.compile(r"([a-z]{2,3})_([A-Z]{2})-")
"""Piper names its voices ``<language>_<REGION>-<name>-<quality>``, e.g. ``en_US-joe-medium``."""


class VoiceInfo(NamedTuple):
    voice_id: str
    engine: str
    language: str
    """A language tag such as ``en-US`` or ``cmn``; ``und`` when the engine does not say."""


@runtime_checkable
class KnowsLanguages(Protocol):
    """An engine that can tell each of its voices' language."""

    def language_of(self, voice_id: str) -> str: ...


class VoiceRouter:
    """A ``TtsEngine`` over named engines, in order: the first engine's first voice is the default.

    Built once at start-up and read-only afterwards, so it is as thread-safe as the engines it routes to.
    """

    def __init__(self, engines: Mapping[str, TtsEngine]) -> None:
        self._engines: dict[str, tuple[str, TtsEngine]] = {}
        for name, engine in engines.items():
            for voice_id in engine.voice_ids:
                if voice_id in self._engines:
                    other = self._engines[voice_id][0]
                    raise ValueError(f"voice {voice_id!r} is offered by both {other!r} and {name!r}")
                self._engines[voice_id] = (name, engine)
        if not self._engines:
            raise ValueError("a voice router needs at least one voice")

    @property
    def voice_ids(self) -> Sequence[str]:
        return tuple(self._engines)

    @property
    def default_voice_id(self) -> str:
        return next(iter(self._engines))

    def engine_for(self, voice_id: str) -> TtsEngine:
        try:
            return self._engines[voice_id][1]
        except KeyError:
            raise ValueError(f"unknown voice {voice_id!r}") from None

    def synthesize(self, text: str, voice: VoiceSettings) -> Pcm:
        return self.engine_for(voice.voice_id).synthesize(text, voice)

    def describe(self) -> list[VoiceInfo]:
        """Every voice with its engine's name and its language, default first."""
        return [
            VoiceInfo(voice_id, name, _language(engine, voice_id))
            for voice_id, (name, engine) in self._engines.items()
        ]


def _language(engine: TtsEngine, voice_id: str) -> str:
    if isinstance(engine, KnowsLanguages):
        return engine.language_of(voice_id)
    piper = _PIPER_ID.match(voice_id)
    return f"{piper[1]}-{piper[2]}" if piper else "und"
