"""A second TTS engine: eSpeak NG, formant synthesis in ~130 languages (Mandarin ``cmn`` among them).

It runs the ``espeak-ng`` program (Debian's ``espeak-ng`` package), one short subprocess per synthesis,
rather than a Python binding: the PyPI bindings are small, rarely released and wrap the same C library with
process-global state (one voice and one output callback at a time), so they would need a lock around every
call, whereas a subprocess is thread-safe, cannot crash the server, and costs ~10 ms against clauses that
last seconds. The text always goes in on stdin (``--stdin``), never as an argument, so a text starting with
``-`` is spoken, not parsed as an option.
"""

from __future__ import annotations

import io
import shutil
import subprocess
import wave
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from herald.media.frames import SAMPLE_RATE_HZ, Pcm
from herald.media.resample import resample_once
from herald.speech.tts import VoiceSettings

VOICE_PREFIX = "espeak-ng/"
NATURAL_WPM = 175
"""espeak-ng's default speed (``-s``), taken as speech rate 1.0."""
MIN_WPM = 80
MAX_WPM = 450
"""The speeds espeak-ng accepts; rates beyond them are clamped."""


@dataclass(frozen=True, slots=True)
class EspeakVoice:
    """One voice from ``espeak-ng --voices``."""

    voice_id: str
    """``espeak-ng/<language>``, e.g. ``espeak-ng/cmn``; unique within the engine."""
    language: str
    """espeak-ng's language tag, e.g. ``cmn``, ``en-us``, ``yue``."""
    name: str
    """A readable name, e.g. ``Chinese (Mandarin, latin as English)``."""
    file: str
    """The voice file (e.g. ``sit/cmn``): what ``-v`` is given, unambiguous even where languages repeat."""


def parse_voices(listing: str) -> list[EspeakVoice]:
    """Read the table ``espeak-ng --voices`` prints; a language listed twice takes its file's name as id."""
    voices: list[EspeakVoice] = []
    taken: set[str] = set()
    for line in listing.splitlines():
        # Pty Language Age/Gender VoiceName File (Other languages...); names use "_" for spaces.
        parts = line.split()
        if len(parts) < 5 or parts[0] == "Pty":
            continue
        language, name, file = parts[1], parts[3].replace("_", " "), parts[4]
        short = (language if language not in taken else file.rsplit("/", 1)[-1]).lower()
        if short in taken:
            continue
        taken.add(short)
        voices.append(EspeakVoice(VOICE_PREFIX + short, language, name, file))
    return voices


def words_per_minute(speech_rate: float) -> int:
    """Map a speech rate (1.0 natural) to espeak-ng's ``-s`` speed."""
    if speech_rate <= 0:
        raise ValueError(f"speech rate must be positive, got {speech_rate}")
    return max(MIN_WPM, min(MAX_WPM, round(NATURAL_WPM * speech_rate)))


class EspeakEngine:
    """Every espeak-ng voice installed on this machine (``TtsEngine``); safe to call from several threads."""

    def __init__(self, binary: str, voices: Sequence[EspeakVoice], *, timeout_s: float = 30.0) -> None:
        self._binary = binary
        self._voices = {voice.voice_id: voice for voice in voices}
        self._timeout_s = timeout_s

    @classmethod
    def load(cls, binary: str = "espeak-ng", *, timeout_s: float = 30.0) -> EspeakEngine:
        """Find the ``espeak-ng`` program (a name on PATH or a path) and list its voices."""
        path = shutil.which(binary)
        if path is None:
            raise RuntimeError(f"espeak-ng not found at {binary!r}: install Debian's espeak-ng package")
        listing = _run([path, "--voices"], b"", timeout_s).decode("utf-8", errors="replace")
        voices = parse_voices(listing)
        if not voices:
            raise RuntimeError(f"{path} --voices listed no voices")
        return cls(path, voices, timeout_s=timeout_s)

    @property
    def voice_ids(self) -> Sequence[str]:
        return tuple(self._voices)

    @property
    def voices(self) -> Sequence[EspeakVoice]:
        return tuple(self._voices.values())

    def language_of(self, voice_id: str) -> str:
        return self._voice(voice_id).language

    def synthesize(self, text: str, voice: VoiceSettings) -> Pcm:
        """Speak ``text`` at ``voice.speech_rate``; return mono int16 at 48 kHz (empty if nothing to say)."""
        spec = self._voice(voice.voice_id)
        wpm = words_per_minute(voice.speech_rate)
        if not text.strip():
            return np.zeros(0, dtype=np.int16)
        # -b 1: the input is UTF-8 whatever the locale; no -m, so "<" is text, not SSML.
        args = [self._binary, "--stdout", "--stdin", "-b", "1", "-v", spec.file, "-s", str(wpm)]
        return _decode_wav(_run(args, text.encode("utf-8"), self._timeout_s))

    def _voice(self, voice_id: str) -> EspeakVoice:
        try:
            return self._voices[voice_id]
        except KeyError:
            raise ValueError(
                f"unknown voice {voice_id!r}; espeak-ng voices look like 'espeak-ng/en-us'"
            ) from None


def _run(args: list[str], stdin: bytes, timeout_s: float) -> bytes:
    try:
        done = subprocess.run(args, input=stdin, capture_output=True, timeout=timeout_s, check=False)
    except FileNotFoundError as exc:
        raise RuntimeError(f"espeak-ng not found at {args[0]!r}: install Debian's espeak-ng package") from exc
    except subprocess.TimeoutExpired as exc:
        raise RuntimeError(f"espeak-ng took longer than {timeout_s} s") from exc
    if done.returncode != 0:
        message = done.stderr.decode("utf-8", errors="replace").strip()
        raise RuntimeError(f"espeak-ng failed (exit {done.returncode}): {message}")
    return done.stdout


def _decode_wav(data: bytes) -> Pcm:
    if not data:
        return np.zeros(0, dtype=np.int16)
    # Writing to a pipe, espeak-ng cannot seek back to fill in the sizes; wave then reads to the end.
    with wave.open(io.BytesIO(data), "rb") as wav:
        if wav.getnchannels() != 1 or wav.getsampwidth() != 2:
            raise RuntimeError(f"espeak-ng wrote unexpected audio: {wav.getparams()}")
        rate_hz = wav.getframerate()
        raw = wav.readframes(wav.getnframes())
    pcm = np.frombuffer(raw[: len(raw) // 2 * 2], dtype="<i2").astype(np.int16)
    return resample_once(pcm, rate_hz, SAMPLE_RATE_HZ)
