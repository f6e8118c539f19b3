"""Audio a WebSocket client sends: 16-bit little-endian mono PCM at the socket's rate, in any message sizes.

It is untrusted input: a message must hold whole samples and at most ``MAX_MESSAGE_MS`` of audio, and a
client may not send faster than real time beyond a small burst (``BURST_MS``) — what exceeds it is dropped
and counted, never buffered. Accepted audio is resampled to the canonical rate and pushed whole frames at
a time into the participant's ``InboundAudio``.
"""

from __future__ import annotations

import numpy as np

from herald.clock import Clock
from herald.media.frames import FRAME_SAMPLES, SAMPLE_RATE_HZ
from herald.media.inbound import InboundAudio
from herald.media.resample import Resampler

MAX_MESSAGE_MS = 1000
BURST_MS = 2000
"""Audio a client may send ahead of real time (network jitter, a client that batches)."""


class UpstreamError(ValueError):
    """A message that is not audio Herald takes; the reason is fit for the client."""


class PcmUpstream:
    def __init__(self, sample_rate_hz: int, into: InboundAudio, clock: Clock) -> None:
        self.sample_rate_hz = sample_rate_hz
        self.dropped_ms = 0
        """Audio refused for arriving faster than real time."""
        self._into = into
        self._clock = clock
        self._resampler = Resampler(sample_rate_hz, SAMPLE_RATE_HZ)
        self._pending = np.zeros(0, dtype=np.int16)
        self._credit_ms = float(BURST_MS)
        self._credit_at_ns = clock.monotonic_ns()

    def push(self, data: bytes) -> None:
        """Take one binary message; raises ``UpstreamError`` for one that is not whole samples or too long."""
        if len(data) % 2:
            raise UpstreamError("Binary messages carry 16-bit samples: an even number of bytes.")
        samples = len(data) // 2
        duration_ms = samples * 1000 / self.sample_rate_hz
        if duration_ms > MAX_MESSAGE_MS:
            raise UpstreamError(f"A binary message may hold at most {MAX_MESSAGE_MS} ms of audio.")
        if not self._spend(duration_ms):
            self.dropped_ms += round(duration_ms)
            return
        pcm = self._resampler.push(np.frombuffer(data, dtype="<i2").astype(np.int16))
        pending = np.concatenate((self._pending, pcm)) if len(self._pending) else pcm
        whole = len(pending) // FRAME_SAMPLES * FRAME_SAMPLES
        for start in range(0, whole, FRAME_SAMPLES):
            self._into.push(pending[start : start + FRAME_SAMPLES])
        self._pending = pending[whole:].copy()

    def _spend(self, duration_ms: float) -> bool:
        now = self._clock.monotonic_ns()
        elapsed_ms = (now - self._credit_at_ns) / 1e6
        self._credit_at_ns = now
        self._credit_ms = min(float(BURST_MS), self._credit_ms + elapsed_ms)
        if duration_ms > self._credit_ms:
            return False
        self._credit_ms -= duration_ms
        return True
