"""Fixtures for the listening tests: real speech from Herald's own TTS (Piper), synthesised once per session.

Piper's voice has random variation (VITS noise), so a clip differs from one session to the next: tests
assert what holds for any take of a sentence, not for one recording.
"""

from __future__ import annotations

import pytest
from listening_helpers import Say

from herald.listening.vad_model import SileroModel
from herald.media.frames import Pcm
from herald.speech.piper_engine import PiperEngine
from herald.speech.tts import VoiceSettings

VOICE = VoiceSettings("en_US-joe-medium")


@pytest.fixture(scope="session")
def piper() -> PiperEngine:
    engine = PiperEngine.load()
    engine.warm_up()
    return engine


@pytest.fixture(scope="session")
def say(piper: PiperEngine) -> Say:
    """``say(text)``: Piper speaking ``text``, 48 kHz mono int16, the same clip for the whole session."""
    clips: dict[str, Pcm] = {}

    def speak(text: str) -> Pcm:
        if text not in clips:
            clips[text] = piper.synthesize(text, VOICE)
            clips[text].setflags(write=False)
        return clips[text]

    return speak


@pytest.fixture(scope="session")
def silero() -> SileroModel:
    return SileroModel.load()
