"""Writing received audio as a WAV file (16-bit mono PCM), all at once or as it arrives."""

from __future__ import annotations

import wave
from pathlib import Path
from types import TracebackType
from typing import Self

import numpy as np

from herald.client.audio import Pcm


class WavWriter:
    """A 16-bit mono WAV file written chunk by chunk; ``close()`` finishes the header."""

    def __init__(self, path: str | Path, sample_rate_hz: int) -> None:
        self.path = Path(path)
        self.sample_rate_hz = sample_rate_hz
        self.samples = 0
        # The file is opened here, not by wave.open: a wave.Wave_write whose own open failed breaks in
        # its __del__ (an unraisable AttributeError in Python 3.11).
        self._file = self.path.open("wb")
        self._wav = wave.open(self._file, "wb")  # noqa: SIM115  (both are closed in close())
        self._wav.setnchannels(1)
        self._wav.setsampwidth(2)
        self._wav.setframerate(sample_rate_hz)

    @property
    def seconds(self) -> float:
        return self.samples / self.sample_rate_hz

    def write(self, pcm: Pcm) -> None:
        self._wav.writeframes(np.ascontiguousarray(pcm, dtype="<i2").tobytes())
        self.samples += len(pcm)

    def close(self) -> None:
        self._wav.close()  # writes the final header; leaves the file to us
        self._file.close()

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()


def write_wav(path: str | Path, pcm: Pcm, sample_rate_hz: int) -> None:
    """Write ``pcm`` (16-bit mono) as a WAV file."""
    with WavWriter(path, sample_rate_hz) as writer:
        writer.write(pcm)


def read_wav(path: str | Path) -> tuple[Pcm, int]:
    """A 16-bit mono WAV file's samples and sample rate."""
    with wave.open(str(path), "rb") as wav:
        if wav.getsampwidth() != 2 or wav.getnchannels() != 1:
            raise ValueError(f"{path} is not 16-bit mono")
        pcm = np.frombuffer(wav.readframes(wav.getnframes()), dtype="<i2").astype(np.int16)
        return pcm, wav.getframerate()
