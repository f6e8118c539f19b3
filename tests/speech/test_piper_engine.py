from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pytest

from herald.media.frames import SAMPLE_RATE_HZ, Pcm, rms
from herald.speech.piper_engine import PiperEngine
from herald.speech.tts import VoiceSettings

VOICE = VoiceSettings("en_US-joe-medium")
WELCOME = "Hello, welcome to use our service."


@pytest.fixture(scope="module")
def engine() -> PiperEngine:
    engine = PiperEngine.load()
    engine.warm_up()
    return engine


def seconds(pcm: Pcm) -> float:
    return len(pcm) / SAMPLE_RATE_HZ


def test_voice_id_comes_from_the_model_file(engine: PiperEngine) -> None:
    assert list(engine.voice_ids) == ["en_US-joe-medium"]
    assert engine.native_rate_hz == 22_050


def test_speaks_a_sentence_at_48_khz(engine: PiperEngine) -> None:
    pcm = engine.synthesize(WELCOME, VOICE)

    assert pcm.dtype == np.int16
    assert pcm.ndim == 1
    assert 1.2 < seconds(pcm) < 4.0
    assert rms(pcm) > 1000
    # The model emits whole 256-sample frames at 22.05 kHz; the 48 kHz length is exactly that, resampled.
    native_samples = len(pcm) * engine.native_rate_hz / SAMPLE_RATE_HZ
    assert abs(native_samples - round(native_samples / 256) * 256) < 1
    # Nothing above the source's Nyquist frequency: the resampler did not alias.
    spectrum = np.abs(np.fft.rfft(pcm.astype(np.float64))) ** 2
    freqs_hz = np.fft.rfftfreq(len(pcm), 1 / SAMPLE_RATE_HZ)
    assert spectrum[freqs_hz > 11_500].sum() < 1e-4 * spectrum.sum()


def test_speech_rate_changes_duration(engine: PiperEngine) -> None:
    fast = engine.synthesize(WELCOME, VoiceSettings(VOICE.voice_id, speech_rate=2.0))
    slow = engine.synthesize(WELCOME, VoiceSettings(VOICE.voice_id, speech_rate=0.5))

    assert seconds(fast) < 0.5 * seconds(slow)


def test_sentences_are_concatenated(engine: PiperEngine) -> None:
    one = engine.synthesize("The weather is nice today.", VOICE)
    two = engine.synthesize("The weather is nice today. Shall we go for a walk?", VOICE)

    assert seconds(two) > 1.5 * seconds(one)


def test_nothing_to_say_gives_empty_audio(engine: PiperEngine) -> None:
    for text in ("", "  ", "..."):
        pcm = engine.synthesize(text, VOICE)
        assert pcm.dtype == np.int16
        assert len(pcm) == 0


def test_rejects_an_unknown_voice(engine: PiperEngine) -> None:
    with pytest.raises(ValueError, match="no-such-voice"):
        engine.synthesize("Hello.", VoiceSettings("no-such-voice"))


def test_rejects_a_non_positive_rate(engine: PiperEngine) -> None:
    with pytest.raises(ValueError, match="speech rate"):
        engine.synthesize("Hello.", VoiceSettings(VOICE.voice_id, speech_rate=0))


def test_concurrent_calls_are_independent(engine: PiperEngine) -> None:
    texts = [
        WELCOME,
        "One moment please, I am looking that up for you right now.",
        "Your order has shipped, and it will arrive on Friday morning before noon.",
        "Goodbye!",
    ]
    alone = [seconds(engine.synthesize(text, VOICE)) for text in texts]

    with ThreadPoolExecutor(max_workers=4) as pool:
        together = list(pool.map(lambda text: engine.synthesize(text, VOICE), texts))

    for pcm, expected_s in zip(together, alone, strict=True):
        assert rms(pcm) > 1000
        # Piper's duration noise varies a clip by up to ~20 % (short ones most); the texts differ in
        # length far more than that, so a mix-up between threads would not pass.
        assert abs(seconds(pcm) - expected_s) < 0.25 * expected_s
