"""A participant's microphone: the recent audio kept, bounded, with its level."""

from __future__ import annotations

import numpy as np
import pytest

from herald.media.frames import FRAME_SAMPLES
from herald.media.inbound import InboundAudio


def frame(level: int) -> np.ndarray:
    return np.full(FRAME_SAMPLES, level, dtype=np.int16)


def test_the_recent_audio_is_kept_in_order_and_no_more_than_asked() -> None:
    mic = InboundAudio("u", keep_s=1.0)
    for level in range(1, 101):  # two seconds
        mic.push(frame(level))
    assert mic.frames_received == 100
    assert mic.seconds_received == pytest.approx(2.0)
    last = mic.recent(0.1)
    assert [int(x) for x in last[::FRAME_SAMPLES]] == [96, 97, 98, 99, 100]
    assert len(mic.recent(5.0)) == 50 * FRAME_SAMPLES  # only the last second is held


def test_the_level_is_that_of_the_last_second() -> None:
    mic = InboundAudio("u")
    assert mic.level() == 0.0
    for _ in range(100):
        mic.push(frame(1000))
    for _ in range(50):
        mic.push(frame(0))
    assert mic.level() == 0.0
    mic.push(frame(5000))
    assert 0 < mic.level() < 5000


def test_only_whole_frames_are_taken() -> None:
    with pytest.raises(ValueError, match="samples"):
        InboundAudio("u").push(np.zeros(100, dtype=np.int16))
