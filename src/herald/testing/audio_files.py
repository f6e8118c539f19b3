"""Real audio files for tests, made with the encoders of PyAV's bundled FFmpeg, plus hostile ones.

Every clean file holds a 440 Hz tone (``TONE_HZ``) at half scale, so a test can check both the duration and
the pitch of what comes out of a decoder. All functions return the file's bytes.

    encode("mp3", 2.0, 44_100, 2)          # 2 s of stereo MP3
    truncated(encode("flac", 5.0), 0.5)    # the first half of a FLAC file
    wav_header_claiming(10, 10_000_000, 2) # a WAV header promising 10 h at 10 MHz, then 100 ms of data

Encoder gaps: FFmpeg's own Vorbis encoder (PyAV has no libvorbis) only makes stereo, so ``ogg-vorbis``
wants ``channels=2``; Opus only takes 8, 12, 16, 24 or 48 kHz; MP3 at most 48 kHz. Other asks: ``ValueError``.
"""

from __future__ import annotations

import io
import random
import struct
import tempfile
import wave
from pathlib import Path
from typing import Final, Literal

import av
import numpy as np
import numpy.typing as npt

Format = Literal["mp3", "ogg-opus", "ogg-vorbis", "flac", "aac-adts", "m4a", "m4a-faststart"]
FORMATS: Final[tuple[Format, ...]] = (
    "mp3",
    "ogg-opus",
    "ogg-vorbis",
    "flac",
    "aac-adts",
    "m4a",
    "m4a-faststart",
)
"""``m4a`` has its index (``moov``) after the audio, FFmpeg's default; ``m4a-faststart`` has it before."""

TONE_HZ: Final = 440.0
AMPLITUDE: Final = 0.5

# format -> (container, encoder, sample format the encoder takes)
_ENCODERS: Final[dict[Format, tuple[str, str, str]]] = {
    "mp3": ("mp3", "libmp3lame", "fltp"),
    "ogg-opus": ("ogg", "libopus", "flt"),
    "ogg-vorbis": ("ogg", "vorbis", "fltp"),
    "flac": ("flac", "flac", "s16"),
    "aac-adts": ("adts", "aac", "fltp"),
    "m4a": ("ipod", "aac", "fltp"),
    "m4a-faststart": ("ipod", "aac", "fltp"),
}
_BLOCK_SAMPLES = 4096  # PyAV re-blocks to each encoder's frame size


def tone(
    seconds: float, rate_hz: int, channels: int = 1, tone_hz: float | None = TONE_HZ
) -> npt.NDArray[np.float32]:
    """``channels`` identical rows of a sine at ``tone_hz`` (silence if ``None``), scaled to ``AMPLITUDE``."""
    t = np.arange(round(seconds * rate_hz)) / rate_hz
    mono = np.zeros_like(t) if tone_hz is None else AMPLITUDE * np.sin(2 * np.pi * tone_hz * t)
    return np.tile(mono.astype(np.float32), (channels, 1))


def sine_wav(seconds: float, rate_hz: int = 48_000, channels: int = 1) -> bytes:
    """A 16-bit PCM WAV file of the tone."""
    samples = (tone(seconds, rate_hz, channels) * 32767).astype("<i2")
    buffer = io.BytesIO()
    with wave.open(buffer, "wb") as wav:
        wav.setnchannels(channels)
        wav.setsampwidth(2)
        wav.setframerate(rate_hz)
        wav.writeframes(samples.T.tobytes())
    return buffer.getvalue()


def encode(
    fmt: Format,
    seconds: float,
    rate_hz: int = 48_000,
    channels: int = 1,
    *,
    tone_hz: float | None = TONE_HZ,
) -> bytes:
    """The tone (or silence, with ``tone_hz=None``) encoded as ``fmt``."""
    container_format, codec, sample_format = _ENCODERS[fmt]
    _check_encoder(fmt, codec, rate_hz, channels)
    signal = tone(seconds, rate_hz, channels, tone_hz)
    if fmt == "m4a-faststart":
        # Moving the index to the front is a second pass over the output, which FFmpeg only does on a file.
        with tempfile.TemporaryDirectory() as directory:
            path = Path(directory) / "audio.m4a"
            _encode_into(str(path), container_format, codec, sample_format, signal, rate_hz, faststart=True)
            return path.read_bytes()
    buffer = io.BytesIO()
    _encode_into(buffer, container_format, codec, sample_format, signal, rate_hz, faststart=False)
    return buffer.getvalue()


def _check_encoder(fmt: Format, codec: str, rate_hz: int, channels: int) -> None:
    if codec not in av.codecs_available:
        raise ValueError(f"PyAV's FFmpeg has no {codec} encoder, so no {fmt}")
    rates = av.Codec(codec, "w").audio_rates
    if rates and rate_hz not in rates:
        raise ValueError(f"the {codec} encoder takes {sorted(rates)} Hz, not {rate_hz}")
    if codec == "vorbis" and channels != 2:
        raise ValueError("FFmpeg's own Vorbis encoder only makes stereo")
    if not 1 <= channels <= 2:
        raise ValueError("encode() makes mono or stereo files; sine_wav() takes any channel count")


def _encode_into(
    target: str | io.BytesIO,
    container_format: str,
    codec: str,
    sample_format: str,
    signal: npt.NDArray[np.float32],
    rate_hz: int,
    *,
    faststart: bool,
) -> None:
    layout = "mono" if len(signal) == 1 else "stereo"
    options = {"movflags": "+faststart"} if faststart else {}
    with av.open(target, "w", format=container_format, options=options) as container:
        stream = container.add_stream(codec, rate=rate_hz, layout=layout)
        assert isinstance(stream, av.AudioStream)
        stream.format = sample_format
        if codec == "vorbis":
            stream.codec_context.options = {"strict": "experimental"}  # FFmpeg's own Vorbis encoder
        for start in range(0, signal.shape[1], _BLOCK_SAMPLES):
            frame = _frame(signal[:, start : start + _BLOCK_SAMPLES], sample_format, layout)
            frame.sample_rate = rate_hz
            frame.pts = start
            container.mux(stream.encode(frame))
        container.mux(stream.encode(None))


def _frame(block: npt.NDArray[np.float32], sample_format: str, layout: str) -> av.AudioFrame:
    if sample_format == "s16":
        packed = (block * 32767).astype(np.int16).T.reshape(1, -1)
        return av.AudioFrame.from_ndarray(packed, format="s16", layout=layout)
    if sample_format == "flt":
        return av.AudioFrame.from_ndarray(block.T.reshape(1, -1).copy(), format="flt", layout=layout)
    return av.AudioFrame.from_ndarray(block.copy(), format="fltp", layout=layout)


def truncated(data: bytes, keep_fraction: float) -> bytes:
    """The first ``keep_fraction`` of ``data``: a download cut short."""
    return data[: int(len(data) * keep_fraction)]


def garbage(n: int, seed: int = 0) -> bytes:
    """``n`` pseudo-random bytes, the same for the same seed."""
    return random.Random(seed).randbytes(n)


def wav_header_claiming(hours: float, rate_hz: int, channels: int, *, data_ms: int = 100) -> bytes:
    """A 16-bit PCM WAV header promising ``hours`` of audio, followed by only ``data_ms`` of the tone.

    Any rate and channel count the header's fields can hold is accepted (up to 2**32-1 Hz, 65535 channels),
    so it can lie about both; the size fields saturate at their 4 GiB maximum.
    """
    frame_bytes = 2 * channels
    claimed = min(round(hours * 3600 * rate_hz) * frame_bytes, 0xFFFF_FFFF - 36)
    n_frames = min(rate_hz * data_ms // 1000, 1_000_000 // frame_bytes)  # little data, whatever the claims
    t = np.arange(n_frames) / rate_hz
    mono = (AMPLITUDE * 32767 * np.sin(2 * np.pi * TONE_HZ * t)).astype("<i2")
    data = np.repeat(mono[:, None], channels, axis=1).tobytes()
    fmt = struct.pack(
        "<HHIIHH", 1, channels, rate_hz, (rate_hz * frame_bytes) & 0xFFFF_FFFF, frame_bytes & 0xFFFF, 16
    )
    return (
        b"RIFF"
        + struct.pack("<I", claimed + 36)
        + b"WAVE"
        + b"fmt "
        + struct.pack("<I", len(fmt))
        + fmt
        + b"data"
        + struct.pack("<I", claimed)
        + data
    )
