"""Opus for WebRTC listeners: one encoder per room, so everyone in a call shares each packet.

Every WebRTC participant of a call hears the same audio, so the room encodes each frame once (mono,
CELT at ``BITRATE`` bit/s) and hands the same packet to all of them, instead of each peer connection
encoding it again (aiortc's own path: stereo at 96 kbit/s, resampled, in a thread per frame, several
times the cost).

Silence is most of a call, and libopus spends as long on a frame of digital silence as on speech. So a
room that has been quiet for ``FLUSH_FRAMES`` (long enough for the encoder to send the tail of what was
said) sends a constant silence packet and drops its encoder; the next sound starts a fresh one. The
listener's decoder has by then decoded only silence, which leaves it as a fresh encoder expects.
"""

from __future__ import annotations

import fractions
from typing import Final

import av
import numpy as np

from herald.media.clip import SILENT_FRAME, Frame
from herald.media.frames import FRAME_SAMPLES, SAMPLE_RATE_HZ

BITRATE: Final = 48_000
COMPLEXITY: Final = 5
"""libopus complexity (0-10): 5 costs half of 10 per frame, with no difference one hears in speech."""
FLUSH_FRAMES: Final = 5
_TIME_BASE: Final = fractions.Fraction(1, SAMPLE_RATE_HZ)
_ZEROS: Final = np.zeros(FRAME_SAMPLES, dtype=np.int16).tobytes()


class _Encoder:
    def __init__(self) -> None:
        codec = av.CodecContext.create("libopus", "w")
        assert isinstance(codec, av.AudioCodecContext)
        codec.bit_rate = BITRATE
        codec.format = "s16"
        codec.layout = "mono"
        codec.sample_rate = SAMPLE_RATE_HZ
        codec.time_base = _TIME_BASE
        # "audio": CELT only, fit for speech at this rate, and its silence packet is three bytes.
        codec.options = {"application": "audio", "compression_level": str(COMPLEXITY)}
        codec.open()
        self._codec = codec
        self._pts = 0

    def encode(self, pcm: bytes) -> bytes:
        frame = av.AudioFrame(format="s16", layout="mono", samples=FRAME_SAMPLES)
        frame.planes[0].update(pcm)
        frame.sample_rate = SAMPLE_RATE_HZ
        frame.time_base = _TIME_BASE
        frame.pts = self._pts
        self._pts += FRAME_SAMPLES
        return b"".join(bytes(packet) for packet in self._codec.encode(frame))


def _silence_packet() -> bytes:
    encoder = _Encoder()
    packet = b""
    for _ in range(FLUSH_FRAMES + 1):
        packet = encoder.encode(_ZEROS)
    return packet


SILENCE_PACKET: Final = _silence_packet()


class OpusStream:
    """Consecutive 20 ms frames in, one Opus packet each out."""

    def __init__(self) -> None:
        self._encoder: _Encoder | None = None
        self._quiet_frames = FLUSH_FRAMES  # as if long quiet: no encoder until there is sound

    def encode(self, frame: Frame) -> bytes:
        if frame is SILENT_FRAME:
            self._quiet_frames += 1
            if self._quiet_frames > FLUSH_FRAMES:
                self._encoder = None
                return SILENCE_PACKET
            pcm = _ZEROS
        else:
            self._quiet_frames = 0
            pcm = frame.payload(SAMPLE_RATE_HZ)
        if self._encoder is None:
            self._encoder = _Encoder()
        return self._encoder.encode(pcm)
