from __future__ import annotations

import stat
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import pytest

from herald.media.frames import SAMPLE_RATE_HZ, Pcm, rms
from herald.speech.espeak_engine import EspeakEngine, EspeakVoice, parse_voices, words_per_minute
from herald.speech.tts import VoiceSettings

ENGLISH = VoiceSettings("espeak-ng/en-us")
MANDARIN = VoiceSettings("espeak-ng/cmn")
WELCOME = "Hello, welcome to use our service."

LISTING = """\
Pty Language       Age/Gender VoiceName          File                 Other Languages
 5  cmn             --/M      Chinese_(Mandarin,_latin_as_English) sit/cmn              (zh-cmn 5)(zh 5)
 2  en-us           --/M      English_(America)  gmw/en-US            (en 3)
 5  yue             --/M      Chinese_(Cantonese) sit/yue              (zh-yue 5)(zh 8)
 5  yue             --/M      Chinese_(Cantonese,_latin_as_Jyutping) sit/yue-Latn-jyutping (zh-yue 5)(zh 8)
"""


@pytest.fixture(scope="module")
def engine() -> EspeakEngine:
    return EspeakEngine.load()


def seconds(pcm: Pcm) -> float:
    return len(pcm) / SAMPLE_RATE_HZ


def fake_binary(tmp_path: Path, script: str) -> str:
    path = tmp_path / "espeak-ng"
    path.write_text(f"#!/bin/sh\n{script}\n")
    path.chmod(path.stat().st_mode | stat.S_IXUSR)
    return str(path)


def test_parses_the_voice_table() -> None:
    assert parse_voices(LISTING) == [
        EspeakVoice("espeak-ng/cmn", "cmn", "Chinese (Mandarin, latin as English)", "sit/cmn"),
        EspeakVoice("espeak-ng/en-us", "en-us", "English (America)", "gmw/en-US"),
        EspeakVoice("espeak-ng/yue", "yue", "Chinese (Cantonese)", "sit/yue"),
        # A language listed twice: the second voice is named after its file.
        EspeakVoice(
            "espeak-ng/yue-latn-jyutping",
            "yue",
            "Chinese (Cantonese, latin as Jyutping)",
            "sit/yue-Latn-jyutping",
        ),
    ]


def test_finds_many_voices_chinese_among_them(engine: EspeakEngine) -> None:
    ids = engine.voice_ids
    assert len(ids) > 100
    assert len(set(ids)) == len(ids)
    for voice_id in ("espeak-ng/en-us", "espeak-ng/cmn", "espeak-ng/de", "espeak-ng/fr-fr", "espeak-ng/yue"):
        assert voice_id in ids
    assert engine.language_of("espeak-ng/cmn") == "cmn"


def test_speaks_english_at_48_khz(engine: EspeakEngine) -> None:
    pcm = engine.synthesize(WELCOME, ENGLISH)

    assert pcm.dtype == np.int16
    assert pcm.ndim == 1
    assert 1.2 < seconds(pcm) < 4.0
    assert rms(pcm) > 1000


def test_speaks_mandarin(engine: EspeakEngine) -> None:
    pcm = engine.synthesize("你好，欢迎使用我们的服务。", MANDARIN)

    # Twelve syllables at a natural pace.
    assert 1.5 < seconds(pcm) < 6.0
    assert rms(pcm) > 1000


def test_speech_rate_changes_duration(engine: EspeakEngine) -> None:
    fast = engine.synthesize(WELCOME, VoiceSettings(ENGLISH.voice_id, speech_rate=2.0))
    slow = engine.synthesize(WELCOME, VoiceSettings(ENGLISH.voice_id, speech_rate=0.5))

    assert seconds(fast) < 0.5 * seconds(slow)


def test_rate_maps_to_words_per_minute() -> None:
    assert words_per_minute(1.0) == 175
    assert words_per_minute(0.5) == 88
    assert words_per_minute(2.0) == 350
    assert words_per_minute(0.1) == 80
    assert words_per_minute(5.0) == 450
    with pytest.raises(ValueError, match="speech rate"):
        words_per_minute(0)


@pytest.mark.parametrize(
    "text",
    [
        "-v fr --help",
        "--stdout -w /tmp/out.wav",
        "She said \"hello\" and 'goodbye'.",
        "First line.\nSecond line.\n-q third line.",
    ],
)
def test_text_is_spoken_never_parsed_as_options(engine: EspeakEngine, text: str) -> None:
    words = len(text.split())
    pcm = engine.synthesize(text, ENGLISH)

    assert rms(pcm) > 1000
    # Every word is heard: at least ~0.15 s each, even for "-v" spelled out.
    assert seconds(pcm) > 0.15 * words


def test_nothing_to_say_gives_empty_audio(engine: EspeakEngine) -> None:
    for text in ("", "  ", "\n"):
        pcm = engine.synthesize(text, ENGLISH)
        assert pcm.dtype == np.int16
        assert len(pcm) == 0


def test_rejects_an_unknown_voice(engine: EspeakEngine) -> None:
    with pytest.raises(ValueError, match="espeak-ng/klingon"):
        engine.synthesize("Hello.", VoiceSettings("espeak-ng/klingon"))


def test_concurrent_calls_are_independent(engine: EspeakEngine) -> None:
    jobs = [(WELCOME, ENGLISH), ("你好", MANDARIN), ("Guten Tag.", VoiceSettings("espeak-ng/de"))] * 2
    alone = [len(engine.synthesize(text, voice)) for text, voice in jobs]

    with ThreadPoolExecutor(max_workers=4) as pool:
        together = list(pool.map(lambda job: engine.synthesize(*job), jobs))

    assert [len(pcm) for pcm in together] == alone


def test_a_missing_binary_is_a_clear_error(tmp_path: Path) -> None:
    with pytest.raises(RuntimeError, match="espeak-ng not found"):
        EspeakEngine.load(str(tmp_path / "no-such-espeak-ng"))

    voices = parse_voices(LISTING)
    gone = EspeakEngine(str(tmp_path / "no-such-espeak-ng"), voices)
    with pytest.raises(RuntimeError, match="espeak-ng not found"):
        gone.synthesize("Hello.", ENGLISH)


def test_a_failing_binary_is_a_clear_error(tmp_path: Path) -> None:
    broken = EspeakEngine(fake_binary(tmp_path, "echo 'no voice data' >&2; exit 3"), parse_voices(LISTING))

    with pytest.raises(RuntimeError, match=r"exit 3\): no voice data"):
        broken.synthesize("Hello.", ENGLISH)


def test_a_hanging_binary_times_out(tmp_path: Path) -> None:
    hung = EspeakEngine(fake_binary(tmp_path, "exec sleep 10"), parse_voices(LISTING), timeout_s=0.2)

    with pytest.raises(RuntimeError, match=r"longer than 0\.2 s"):
        hung.synthesize("Hello.", ENGLISH)
