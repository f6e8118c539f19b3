"""Writing received audio as WAV files."""

from __future__ import annotations

import wave

import numpy as np
import pytest

from herald.client.wav import WavWriter, read_wav, write_wav


def test_written_samples_read_back_unchanged(tmp_path):
    pcm = (np.sin(np.arange(4800) / 10) * 12000).astype(np.int16)
    write_wav(tmp_path / "a.wav", pcm, 48_000)
    back, rate = read_wav(tmp_path / "a.wav")
    assert rate == 48_000
    np.testing.assert_array_equal(back, pcm)


def test_a_wav_written_chunk_by_chunk_is_16_bit_mono_with_every_chunk(tmp_path):
    path = tmp_path / "chunks.wav"
    with WavWriter(path, 16_000) as writer:
        for value in (0, 1000, -1000):
            writer.write(np.full(320, value, dtype=np.int16))
        assert writer.seconds == pytest.approx(0.06)
    with wave.open(str(path), "rb") as wav:
        assert (wav.getnchannels(), wav.getsampwidth(), wav.getframerate(), wav.getnframes()) == (
            1,
            2,
            16_000,
            960,
        )
    back, _ = read_wav(path)
    assert [back[0], back[320], back[-1]] == [0, 1000, -1000]


def test_no_audio_is_a_valid_empty_wav(tmp_path):
    WavWriter(tmp_path / "empty.wav", 48_000).close()
    back, rate = read_wav(tmp_path / "empty.wav")
    assert (len(back), rate) == (0, 48_000)


def test_reading_a_stereo_file_says_so(tmp_path):
    path = tmp_path / "stereo.wav"
    with wave.open(str(path), "wb") as wav:
        wav.setnchannels(2)
        wav.setsampwidth(2)
        wav.setframerate(8000)
        wav.writeframes(b"\0" * 16)
    with pytest.raises(ValueError, match="16-bit mono"):
        read_wav(path)
