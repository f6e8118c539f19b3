"""What a person in the call says: their microphone's recent audio, kept for the agent.

A WebRTC participant's microphone track is decoded to canonical frames (48 kHz mono int16, 20 ms) and
kept here, a bounded window of the most recent audio, so that voice activity detection and barge-in can
read it; nothing older than ``keep_s`` is held, whatever the call's length.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable

import numpy as np

from herald.media.frames import FRAME_MS, FRAME_SAMPLES, Pcm, rms

LEVEL_WINDOW_FRAMES = 50
"""The level reported is that of the last second of audio."""


class InboundAudio:
    """The recent audio of one participant's microphone."""

    def __init__(self, user_id: str, *, keep_s: float = 10.0) -> None:
        self.user_id = user_id
        self.frames_received = 0
        self._recent: deque[Pcm] = deque(maxlen=max(LEVEL_WINDOW_FRAMES, round(keep_s * 1000 / FRAME_MS)))
        self.listener: Callable[[Pcm], None] | None = None
        """Called with every frame pushed (the agent listening); must not block."""

    def push(self, frame: Pcm) -> None:
        """Add one frame of canonical PCM (whole frames only; see ``frames.FRAME_SAMPLES``)."""
        if len(frame) != FRAME_SAMPLES:
            raise ValueError(f"expected {FRAME_SAMPLES} samples, got {len(frame)}")
        self._recent.append(frame)
        self.frames_received += 1
        if self.listener is not None:
            self.listener(frame)

    @property
    def seconds_received(self) -> float:
        return self.frames_received * FRAME_MS / 1000

    def recent(self, seconds: float) -> Pcm:
        """The last ``seconds`` of audio (less if less was received), oldest first."""
        count = min(len(self._recent), max(0, round(seconds * 1000 / FRAME_MS)))
        if count == 0:
            return np.zeros(0, dtype=np.int16)
        return np.concatenate(list(self._recent)[-count:])

    def level(self) -> float:
        """RMS of the last second received, on the int16 scale (0 before any audio)."""
        return rms(self.recent(LEVEL_WINDOW_FRAMES * FRAME_MS / 1000))
