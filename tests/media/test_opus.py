"""The room's Opus stream: speech survives encoding, silence costs a constant packet, sound after silence
decodes cleanly from a fresh encoder."""

from __future__ import annotations

import fractions

import av
import numpy as np

from herald.media.clip import SILENT_FRAME, Clip, Frame
from herald.media.frames import FRAME_SAMPLES, SAMPLE_RATE_HZ
from herald.media.opus import FLUSH_FRAMES, SILENCE_PACKET, OpusStream


def tone(seconds: float, hz: float = 440.0, level: int = 8000) -> Clip:
    t = np.arange(int(SAMPLE_RATE_HZ * seconds)) / SAMPLE_RATE_HZ
    return Clip((np.sin(2 * np.pi * hz * t) * level).astype(np.int16))


def decode(packets: list[bytes]) -> np.ndarray:
    """What a WebRTC listener hears: the packets through libopus, as 48 kHz mono."""
    codec = av.CodecContext.create("libopus", "r")
    assert isinstance(codec, av.AudioCodecContext)
    codec.sample_rate = SAMPLE_RATE_HZ
    codec.layout = "mono"
    codec.format = "s16"
    out = []
    for i, data in enumerate(packets):
        packet = av.Packet(data)
        packet.pts = i * FRAME_SAMPLES
        packet.time_base = fractions.Fraction(1, SAMPLE_RATE_HZ)
        for frame in codec.decode(packet):
            out.append(frame.to_ndarray().reshape(-1))
    return np.concatenate(out).astype(np.float64)


def rms(x: np.ndarray) -> float:
    return float(np.sqrt(np.mean(x**2)))


def test_speech_survives_and_silence_is_a_constant_packet() -> None:
    stream = OpusStream()
    clip = tone(1.0)
    packets = [stream.encode(SILENT_FRAME) for _ in range(10)]
    assert set(packets) == {SILENCE_PACKET}  # a room that has said nothing encodes nothing
    packets += [stream.encode(Frame(clip, i)) for i in range(clip.frames)]
    packets += [stream.encode(SILENT_FRAME) for _ in range(FLUSH_FRAMES + 10)]
    assert packets[-1] == SILENCE_PACKET
    assert all(len(p) < 400 for p in packets)  # 48 kbit/s: ~120 bytes a frame
    heard = decode(packets)
    tone_part = heard[12 * FRAME_SAMPLES : 55 * FRAME_SAMPLES]
    assert rms(tone_part) > 0.9 * 8000 / np.sqrt(2)
    spectrum = np.abs(np.fft.rfft(tone_part))
    assert abs(np.argmax(spectrum) * SAMPLE_RATE_HZ / len(tone_part) - 440) < 5
    assert rms(heard[-5 * FRAME_SAMPLES :]) < 50  # quiet again


def test_sound_after_a_long_silence_decodes_without_a_burst() -> None:
    stream = OpusStream()
    first, second = tone(0.4), tone(0.4, hz=600)
    packets = [stream.encode(Frame(first, i)) for i in range(first.frames)]
    packets += [stream.encode(SILENT_FRAME) for _ in range(50)]
    packets += [stream.encode(Frame(second, i)) for i in range(second.frames)]
    heard = decode(packets)
    start = (first.frames + 50) * FRAME_SAMPLES
    resumed = heard[start : start + second.frames * FRAME_SAMPLES]
    assert np.max(np.abs(resumed)) < 1.2 * 8000  # no click louder than the tone itself
    assert rms(resumed[FRAME_SAMPLES:]) > 0.9 * 8000 / np.sqrt(2)
