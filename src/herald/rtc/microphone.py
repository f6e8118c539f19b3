"""A participant's microphone track, decoded into canonical frames for the instance (``InboundAudio``)."""

from __future__ import annotations

import av
import numpy as np
from aiortc.mediastreams import MediaStreamError, MediaStreamTrack

from herald.media.frames import FRAME_SAMPLES, SAMPLE_RATE_HZ
from herald.media.inbound import InboundAudio


async def receive_microphone(track: MediaStreamTrack, into: InboundAudio) -> None:
    """Read ``track`` until it ends, pushing whole 20 ms frames of 48 kHz mono into ``into``.

    The track must be read whether or not anyone uses the audio: aiortc queues what is not read.
    """
    resampler = av.AudioResampler(format="s16", layout="mono", rate=SAMPLE_RATE_HZ)
    pending = np.zeros(0, dtype=np.int16)
    while True:
        try:
            frame = await track.recv()
        except MediaStreamError:
            return
        if not isinstance(frame, av.AudioFrame):
            continue
        for converted in resampler.resample(frame):
            pending = np.concatenate((pending, converted.to_ndarray().reshape(-1).astype(np.int16)))
        whole = len(pending) // FRAME_SAMPLES * FRAME_SAMPLES
        for start in range(0, whole, FRAME_SAMPLES):
            into.push(pending[start : start + FRAME_SAMPLES])
        pending = pending[whole:]
