"""The audio-file decoder: real files of every format, streaming, hostile input and worker failures."""

from __future__ import annotations

import asyncio
import os
import signal
import struct
import time
from collections.abc import AsyncIterator

import numpy as np
import pytest

from herald.media import decode_worker
from herald.media.decoder import DecodeError, DecodeLimits, DecoderPool
from herald.media.frames import SAMPLE_RATE_HZ, Pcm
from herald.testing import audio_files
from herald.testing.audio_files import TONE_HZ

# AAC in ADTS has no edit list to trim the encoder's priming and padding: up to two frames more.
AAC_PADDING_SAMPLES = 2048


@pytest.fixture
async def pool() -> AsyncIterator[DecoderPool]:
    async with DecoderPool() as pool:
        yield pool


class Input:
    """An input iterator that hands out ``data`` in pieces and records how far it got and how it ended."""

    def __init__(self, data: bytes, *, piece_bytes: int = 16_384, delay_s: float = 0.0) -> None:
        self.data = data
        self.piece_bytes = piece_bytes
        self.delay_s = delay_s
        self.fed_bytes = 0
        self.finished = False
        self.closed = False

    async def chunks(self) -> AsyncIterator[bytes]:
        try:
            for start in range(0, len(self.data), self.piece_bytes):
                if self.delay_s:
                    await asyncio.sleep(self.delay_s)
                piece = self.data[start : start + self.piece_bytes]
                self.fed_bytes += len(piece)
                yield piece
            self.finished = True
        finally:
            self.closed = True


async def decode_all(pool: DecoderPool, data: bytes, *, piece_bytes: int = 16_384) -> Pcm:
    pieces = [pcm async for pcm in pool.decode(Input(data, piece_bytes=piece_bytes).chunks())]
    return np.concatenate(pieces) if pieces else np.zeros(0, dtype=np.int16)


def clip(fmt: audio_files.Format | None, seconds: float) -> bytes:
    """The tone as a WAV file (``None``) or in ``fmt``, at 48 kHz mono."""
    return audio_files.sine_wav(seconds) if fmt is None else audio_files.encode(fmt, seconds)


def seconds(pcm: Pcm) -> float:
    return len(pcm) / SAMPLE_RATE_HZ


def peak_hz(pcm: Pcm) -> float:
    middle = pcm[len(pcm) // 4 : -len(pcm) // 4].astype(np.float64)
    spectrum = np.abs(np.fft.rfft(middle * np.hanning(len(middle))))
    return float(np.fft.rfftfreq(len(middle), 1 / SAMPLE_RATE_HZ)[np.argmax(spectrum)])


def gone(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    return False


def test_worker_speaks_the_canonical_rate() -> None:
    assert decode_worker.OUTPUT_RATE_HZ == SAMPLE_RATE_HZ


@pytest.mark.parametrize(
    ("fmt", "rate_hz", "channels"),
    [
        ("mp3", 44_100, 2),
        ("mp3", 8_000, 1),
        ("ogg-opus", 48_000, 1),
        ("ogg-opus", 8_000, 2),
        ("ogg-vorbis", 44_100, 2),
        ("flac", 44_100, 2),
        ("flac", 8_000, 1),
        ("aac-adts", 48_000, 1),
        ("aac-adts", 44_100, 2),
        ("m4a", 44_100, 2),
        ("m4a", 8_000, 1),
        ("m4a-faststart", 48_000, 1),
    ],
)
async def test_every_format_keeps_duration_and_pitch(
    pool: DecoderPool, fmt: audio_files.Format, rate_hz: int, channels: int
) -> None:
    pcm = await decode_all(pool, audio_files.encode(fmt, 2.0, rate_hz, channels))

    padding_s = AAC_PADDING_SAMPLES / rate_hz if fmt == "aac-adts" else 0.0
    assert 2.0 - 0.05 <= seconds(pcm) <= 2.0 + 0.05 + padding_s
    assert abs(peak_hz(pcm) - TONE_HZ) < 2
    assert pcm.dtype == np.int16


@pytest.mark.parametrize(
    ("rate_hz", "channels"), [(48_000, 1), (44_100, 2), (8_000, 1), (96_000, 6), (22_050, 32)]
)
async def test_wav_of_any_rate_and_channel_count(pool: DecoderPool, rate_hz: int, channels: int) -> None:
    pcm = await decode_all(pool, audio_files.sine_wav(1.5, rate_hz, channels))

    assert abs(seconds(pcm) - 1.5) < 0.005
    assert abs(peak_hz(pcm) - TONE_HZ) < 2
    # Identical channels downmix to the same tone, not to a louder or quieter one.
    assert 0.45 * 32767 < np.abs(pcm).max() < 0.55 * 32767


async def test_the_first_chunk_is_one_frame_then_chunks_are_100_ms(pool: DecoderPool) -> None:
    chunks = [pcm async for pcm in pool.decode(Input(audio_files.sine_wav(1.05)).chunks())]

    frame = SAMPLE_RATE_HZ // 50  # playback can start after 20 ms of audio is decoded
    assert [len(c) for c in chunks[:-1]] == [frame] + [decode_worker.CHUNK_SAMPLES] * 10
    assert len(chunks[-1]) == round(0.05 * SAMPLE_RATE_HZ) - frame


@pytest.mark.parametrize("fmt", [None, "mp3", "m4a-faststart"])
async def test_playback_starts_before_the_download_ends(
    pool: DecoderPool, fmt: audio_files.Format | None
) -> None:
    data = clip(fmt, 10.0)
    source = Input(data, piece_bytes=len(data) // 50, delay_s=0.02)  # a one-second download

    decoded = pool.decode(source.chunks())
    first = await anext(decoded)

    assert not source.finished
    assert source.fed_bytes < len(data) / 2
    rest = [pcm async for pcm in decoded]
    assert abs(seconds(np.concatenate([first, *rest])) - 10.0) < 0.05


async def test_m4a_with_its_index_at_the_end_waits_for_the_whole_file(pool: DecoderPool) -> None:
    data = audio_files.encode("m4a", 3.0, 44_100, 1)
    assert data.index(b"mdat") < data.index(b"moov")
    source = Input(data, piece_bytes=len(data) // 10, delay_s=0.01)

    decoded = pool.decode(source.chunks())
    first = await anext(decoded)
    assert source.finished  # the index was needed before the first sample
    rest = [pcm async for pcm in decoded]

    assert abs(seconds(np.concatenate([first, *rest])) - 3.0) < 0.05


async def test_truncated_mp3_plays_what_arrived(pool: DecoderPool) -> None:
    """Decision: a truncated file yields the audio before the cut and ends normally."""
    pcm = await decode_all(pool, audio_files.truncated(audio_files.encode("mp3", 4.0, 44_100, 2), 0.5))

    assert 1.8 < seconds(pcm) < 2.2
    assert abs(peak_hz(pcm) - TONE_HZ) < 2


@pytest.mark.parametrize("fmt", [None, "flac", "ogg-opus", "aac-adts", "m4a-faststart"])
async def test_truncated_files_play_their_first_part(
    pool: DecoderPool, fmt: audio_files.Format | None
) -> None:
    pcm = await decode_all(pool, audio_files.truncated(clip(fmt, 4.0), 0.6))

    assert 1.5 < seconds(pcm) < 2.6


async def test_m4a_cut_before_its_index_fails_as_truncated(pool: DecoderPool) -> None:
    data = audio_files.truncated(audio_files.encode("m4a", 2.0, 44_100, 1), 0.8)

    with pytest.raises(DecodeError, match=r"truncated.*moov"):
        await decode_all(pool, data)


async def test_header_only_wav_holds_no_audio(pool: DecoderPool) -> None:
    with pytest.raises(DecodeError, match="no audio"):
        await decode_all(pool, audio_files.sine_wav(1.0)[:44])


@pytest.mark.parametrize("size", [1, 100, 100_000, 3_000_000])
async def test_garbage_is_not_an_audio_file(pool: DecoderPool, size: int) -> None:
    with pytest.raises(DecodeError, match="not an audio file"):
        await decode_all(pool, audio_files.garbage(size, seed=size))


async def test_empty_input_is_not_an_audio_file(pool: DecoderPool) -> None:
    with pytest.raises(DecodeError, match=r"not an audio file \(the input is empty\)"):
        await decode_all(pool, b"")


async def test_video_container_without_audio_is_refused(pool: DecoderPool) -> None:
    # An MP4 with no tracks at all: a real container, nothing to play.
    ftyp = struct.pack(">I4s4sI4s", 20, b"ftyp", b"isom", 0, b"isom")
    mvhd = struct.pack(">I4s", 108, b"mvhd") + bytes(100)
    moov = struct.pack(">I4s", 8 + len(mvhd), b"moov") + mvhd

    with pytest.raises(DecodeError, match=r"not an audio file|no audio"):
        await decode_all(pool, ftyp + moov)


async def test_codec_outside_the_common_ones_is_refused(pool: DecoderPool) -> None:
    wav = bytearray(audio_files.sine_wav(0.5, 8_000))
    wav[20:22] = struct.pack("<H", 0x22)  # the format tag: DSP Group TrueSpeech instead of PCM

    with pytest.raises(DecodeError, match="unsupported audio codec: truespeech"):
        await decode_all(pool, bytes(wav))


@pytest.mark.parametrize(
    ("rate_hz", "channels", "reason"),
    [
        (10_000_000, 1, r"sample rate 10000000 Hz is over the limit of 384000 Hz"),
        (4_000_000_000, 2, r"(?i)sample rate"),  # FFmpeg refuses this one itself
        (48_000, 64, r"64 channels is over the limit of 32"),
        (48_000, 1000, r"no usable channel count"),
    ],
)
async def test_header_with_absurd_parameters_fails_fast(
    pool: DecoderPool, rate_hz: int, channels: int, reason: str
) -> None:
    started = time.monotonic()

    with pytest.raises(DecodeError, match=reason):
        await decode_all(pool, audio_files.wav_header_claiming(10, rate_hz, channels))

    assert time.monotonic() - started < 2.0


async def test_header_claiming_hours_plays_only_what_is_there(pool: DecoderPool) -> None:
    started = time.monotonic()

    pcm = await decode_all(pool, audio_files.wav_header_claiming(5, 48_000, 1, data_ms=300))

    assert abs(seconds(pcm) - 0.3) < 0.01
    assert time.monotonic() - started < 2.0


async def test_audio_longer_than_the_limit_stops_at_the_limit() -> None:
    # 30 minutes of silence is a 3 MB FLAC: a small file that expands a hundredfold.
    bomb = audio_files.encode("flac", 1800.0, 8_000, 1, tone_hz=None)
    decoded: list[Pcm] = []
    started = time.monotonic()

    async def play(pool: DecoderPool) -> None:
        async for pcm in pool.decode(Input(bomb, piece_bytes=65_536).chunks()):
            decoded.append(pcm)

    async with DecoderPool(DecodeLimits(max_duration_s=5)) as pool:
        with pytest.raises(DecodeError, match=r"the audio is longer than 5 s"):
            await play(pool)

    assert 4.5 < sum(map(len, decoded)) / SAMPLE_RATE_HZ <= 5.0
    assert time.monotonic() - started < 5.0  # it stopped at 5 s of audio, not after decoding 30 minutes


async def test_worker_killed_mid_job_fails_the_job_not_the_pool(pool: DecoderPool) -> None:
    source = Input(audio_files.sine_wav(10.0), piece_bytes=48_000, delay_s=0.05)
    decoded = pool.decode(source.chunks())
    await anext(decoded)
    (pid,) = pool.busy_pids

    os.kill(pid, signal.SIGKILL)
    with pytest.raises(DecodeError, match=r"the decoder crashed \(signal 9, SIGKILL\)"):
        async for _ in decoded:
            pass

    assert gone(pid)
    assert source.closed
    pcm = await decode_all(pool, audio_files.encode("mp3", 1.0))
    assert abs(seconds(pcm) - 1.0) < 0.05


async def test_segfault_is_reported_as_a_crash(pool: DecoderPool) -> None:
    decoded = pool.decode(Input(audio_files.sine_wav(10.0), piece_bytes=48_000, delay_s=0.05).chunks())
    await anext(decoded)
    (pid,) = pool.busy_pids

    os.kill(pid, signal.SIGSEGV)
    with pytest.raises(DecodeError, match=r"crashed \(signal 11, SIGSEGV\)"):
        async for _ in decoded:
            pass


async def test_worker_aborting_is_a_crash(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(decode_worker.TEST_HOOK_ENV, "abort")

    async with DecoderPool() as pool:
        with pytest.raises(DecodeError, match=r"crashed \(signal 6, SIGABRT\)"):
            await decode_all(pool, audio_files.sine_wav(1.0))


async def test_cpu_limit(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(decode_worker.TEST_HOOK_ENV, "spin")

    async with DecoderPool(DecodeLimits(cpu_s=1), spare=0) as pool:
        with pytest.raises(DecodeError, match=r"the decoder used more than 1 s of CPU"):
            await decode_all(pool, audio_files.sine_wav(1.0))


async def test_wall_clock_limit(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(decode_worker.TEST_HOOK_ENV, "hang")
    started = time.monotonic()

    async with DecoderPool(DecodeLimits(wall_s=0.5), spare=0) as pool:
        with pytest.raises(DecodeError, match=r"decoding took more than 0.5 s"):
            await decode_all(pool, audio_files.sine_wav(1.0))
        assert not pool.busy_pids

    assert time.monotonic() - started < 3.0


async def test_wall_clock_does_not_count_the_consumer_s_time() -> None:
    async with DecoderPool(DecodeLimits(wall_s=0.5)) as pool:
        chunks = 0
        async for _ in pool.decode(Input(audio_files.sine_wav(1.0)).chunks()):
            chunks += 1
            await asyncio.sleep(0.1)  # playing it, say: ten of these outlast the budget

    assert chunks == 11  # a first 20 ms chunk, then ten of 100 ms (the last one shorter)


async def test_memory_limit() -> None:
    # An M4A indexed at the end is read whole before decoding: 150 MB of it cannot fit in 200 MB, of which
    # Python and FFmpeg take some 120.
    header = struct.pack(">I4s4sI4s", 20, b"ftyp", b"M4A ", 0, b"M4A ") + struct.pack(">I4s", 0, b"mdat")
    big = header + bytes(150_000_000)

    async with DecoderPool(DecodeLimits(memory_bytes=200_000_000), spare=0) as pool:
        with pytest.raises(DecodeError, match=r"the decoder ran out of memory \(limit 200 MB\)"):
            await decode_all(pool, big, piece_bytes=1_000_000)


async def test_closing_early_kills_the_worker_and_closes_the_input(pool: DecoderPool) -> None:
    source = Input(audio_files.sine_wav(30.0), piece_bytes=48_000, delay_s=0.01)
    decoded = pool.decode(source.chunks())
    await anext(decoded)
    (pid,) = pool.busy_pids

    await decoded.aclose()

    assert gone(pid)  # killed and reaped: no zombie
    assert source.closed
    assert not source.finished
    assert not pool.busy_pids


async def test_cancelling_the_consumer_kills_the_worker(pool: DecoderPool) -> None:
    source = Input(audio_files.sine_wav(30.0), piece_bytes=48_000, delay_s=0.01)
    first_chunk = asyncio.Event()

    async def consume() -> None:
        async for _ in pool.decode(source.chunks()):
            first_chunk.set()

    task = asyncio.create_task(consume())
    await first_chunk.wait()
    (pid,) = pool.busy_pids
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task

    assert gone(pid)
    assert source.closed


async def test_an_input_failure_propagates_and_kills_the_worker(pool: DecoderPool) -> None:
    class DownloadFailed(Exception):
        pass

    data = audio_files.sine_wav(10.0)
    pids: set[int] = set()

    async def failing() -> AsyncIterator[bytes]:
        yield data[:200_000]
        await asyncio.sleep(0.2)
        pids.update(pool.busy_pids)
        raise DownloadFailed("connection reset")

    with pytest.raises(DownloadFailed, match="connection reset"):
        async for _ in pool.decode(failing()):
            pass

    (pid,) = pids
    assert gone(pid)


async def test_a_slow_consumer_holds_back_the_input(pool: DecoderPool) -> None:
    source = Input(audio_files.sine_wav(60.0, 48_000, 2), piece_bytes=65_536)  # 11.5 MB
    decoded = pool.decode(source.chunks())
    await anext(decoded)

    await asyncio.sleep(0.5)  # the consumer is busy; the worker fills the pipes and stops reading

    # Pipes and read-ahead hold a few hundred kilobytes at most, nowhere near the whole file.
    assert source.fed_bytes < 1_500_000
    await decoded.aclose()


async def test_the_event_loop_keeps_ticking_during_a_heavy_decode(pool: DecoderPool) -> None:
    data = audio_files.encode("mp3", 120.0, 44_100, 2)
    gaps_s: list[float] = []

    async def tick() -> None:
        last = time.monotonic()
        while True:
            await asyncio.sleep(0.02)
            now = time.monotonic()
            gaps_s.append(now - last)
            last = now

    ticker = asyncio.create_task(tick())
    pcm = await decode_all(pool, data, piece_bytes=65_536)
    ticker.cancel()

    assert abs(seconds(pcm) - 120.0) < 0.1
    assert len(gaps_s) > 5
    assert max(gaps_s) < 0.1


async def test_workers_are_never_reused_and_spares_are_replaced(pool: DecoderPool) -> None:
    (spare,) = pool.spare_pids
    decoded = pool.decode(Input(audio_files.sine_wav(1.0)).chunks())
    await anext(decoded)
    assert pool.busy_pids == {spare}
    await decoded.aclose()

    for _ in range(100):
        if pool.spare_pids:
            break
        await asyncio.sleep(0.02)
    (replacement,) = pool.spare_pids
    assert replacement != spare
    assert gone(spare)


async def test_pool_without_spares_starts_a_worker_per_job() -> None:
    async with DecoderPool(spare=0) as pool:
        assert not pool.spare_pids
        pcm = await decode_all(pool, audio_files.sine_wav(0.5))
        assert abs(seconds(pcm) - 0.5) < 0.005
        assert not pool.spare_pids


async def test_closing_the_pool_kills_spares_and_fails_running_jobs() -> None:
    pool = DecoderPool(spare=2)
    await pool.start()
    spares = pool.spare_pids
    decoded = pool.decode(Input(audio_files.sine_wav(30.0), piece_bytes=48_000, delay_s=0.05).chunks())
    await anext(decoded)

    await pool.close()

    with pytest.raises(DecodeError, match="the decoder pool was closed"):
        async for _ in decoded:
            pass
    assert all(gone(pid) for pid in spares)
    with pytest.raises(DecodeError, match="the decoder pool is closed"):
        await decode_all(pool, audio_files.sine_wav(0.5))


async def test_a_broken_interpreter_is_a_decode_error() -> None:
    pool = DecoderPool(spare=0, python="/nonexistent/python")

    with pytest.raises(DecodeError, match="could not start the decoder"):
        await decode_all(pool, audio_files.sine_wav(0.5))
    await pool.close()


def test_limits_must_be_positive() -> None:
    with pytest.raises(ValueError, match="max_channels"):
        DecodeLimits(max_channels=0)
