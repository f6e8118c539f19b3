"""A WebSocket client's microphone: whole samples, bounded messages, no faster than real time."""

from __future__ import annotations

import numpy as np
import pytest

from herald.media.frames import FRAME_SAMPLES
from herald.media.inbound import InboundAudio
from herald.media.upstream import BURST_MS, MAX_MESSAGE_MS, PcmUpstream, UpstreamError
from herald.testing.clock import VirtualClock


def pcm_bytes(ms: int, rate: int = 16_000) -> bytes:
    t = np.arange(rate * ms // 1000) / rate
    return (np.sin(2 * np.pi * 300 * t) * 8000).astype("<i2").tobytes()


def test_audio_becomes_canonical_frames_whatever_the_message_sizes() -> None:
    clock, mic = VirtualClock(), InboundAudio("u")
    upstream = PcmUpstream(16_000, mic, clock)
    data = pcm_bytes(1000)
    for start in range(0, len(data), 666):  # odd-sized pieces of an even whole
        upstream.push(data[start : start + 666])
    assert mic.frames_received >= 48  # ~50 frames of 20 ms at 48 kHz, less the resampler's delay
    assert mic.recent(0.02).shape == (FRAME_SAMPLES,)
    assert mic.level() > 1000


def test_half_a_sample_and_an_overlong_message_are_refused() -> None:
    upstream = PcmUpstream(16_000, InboundAudio("u"), VirtualClock())
    with pytest.raises(UpstreamError, match="even number of bytes"):
        upstream.push(b"\x00\x01\x02")
    with pytest.raises(UpstreamError, match=f"{MAX_MESSAGE_MS} ms"):
        upstream.push(pcm_bytes(MAX_MESSAGE_MS + 20))


async def test_audio_faster_than_real_time_beyond_the_burst_is_dropped_not_kept() -> None:
    clock, mic = VirtualClock(), InboundAudio("u")
    upstream = PcmUpstream(16_000, mic, clock)
    for _ in range(BURST_MS // 500 + 4):  # 4 s of audio at once: 2 s of burst, the rest dropped
        upstream.push(pcm_bytes(500))
    assert upstream.dropped_ms == 2000
    await clock.advance(1_000_000_000)
    upstream.push(pcm_bytes(500))  # a second later there is room again
    assert upstream.dropped_ms == 2000
