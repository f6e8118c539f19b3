from __future__ import annotations

import pytest

from herald.media.frames import rms
from herald.speech.espeak_engine import EspeakEngine
from herald.speech.piper_engine import PiperEngine
from herald.speech.tts import VoiceSettings
from herald.speech.voices import VoiceInfo, VoiceRouter
from herald.testing.tts import ToneEngine


class LanguageToneEngine(ToneEngine):
    def language_of(self, voice_id: str) -> str:
        return voice_id.split("/")[-1]


def test_routes_each_voice_to_its_engine() -> None:
    first = ToneEngine(("en_US-joe-medium",))
    second = ToneEngine(("tone/a", "tone/b"))
    router = VoiceRouter({"piper": first, "tones": second})

    router.synthesize("one", VoiceSettings("tone/b"))
    router.synthesize("two", VoiceSettings("en_US-joe-medium"))
    router.synthesize("three", VoiceSettings("tone/a"))

    assert first.calls == ["two"]
    assert second.calls == ["one", "three"]


def test_the_first_engines_first_voice_is_the_default() -> None:
    router = VoiceRouter({"piper": ToneEngine(("joe", "amy")), "tones": ToneEngine(("tone/a",))})

    assert router.default_voice_id == "joe"
    assert list(router.voice_ids) == ["joe", "amy", "tone/a"]


def test_an_unknown_voice_is_named() -> None:
    router = VoiceRouter({"tones": ToneEngine(("tone/a",))})

    with pytest.raises(ValueError, match="'tone/zz'"):
        router.synthesize("Hello.", VoiceSettings("tone/zz"))


def test_a_voice_offered_twice_is_refused() -> None:
    with pytest.raises(ValueError, match=r"'same'.*'a'.*'b'"):
        VoiceRouter({"a": ToneEngine(("same",)), "b": ToneEngine(("other", "same"))})


def test_no_voices_is_refused() -> None:
    with pytest.raises(ValueError, match="at least one voice"):
        VoiceRouter({})


def test_describe_names_engine_and_language() -> None:
    router = VoiceRouter(
        {
            "piper": ToneEngine(("en_US-joe-medium",)),
            "espeak-ng": LanguageToneEngine(("espeak-ng/cmn",)),
            "other": ToneEngine(("mystery",)),
        }
    )

    assert router.describe() == [
        VoiceInfo("en_US-joe-medium", "piper", "en-US"),
        VoiceInfo("espeak-ng/cmn", "espeak-ng", "cmn"),
        VoiceInfo("mystery", "other", "und"),
    ]
    assert router.describe()[0] == ("en_US-joe-medium", "piper", "en-US")


def test_piper_and_espeak_together() -> None:
    router = VoiceRouter({"piper": PiperEngine.load(), "espeak-ng": EspeakEngine.load()})

    assert router.default_voice_id == "en_US-joe-medium"
    assert VoiceInfo("espeak-ng/cmn", "espeak-ng", "cmn") in router.describe()
    for voice_id, text in [("en_US-joe-medium", "Hello."), ("espeak-ng/cmn", "你好。")]:
        assert rms(router.synthesize(text, VoiceSettings(voice_id))) > 1000
