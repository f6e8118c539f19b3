"""A WebRTC microphone that speaks on cue, for end-to-end tests: ``Microphone.say()`` as an aiortc track.

Like ``herald.client.tracks.ToneTrack`` it owns its pacing: each ``recv()`` returns the next 20 ms frame of
48 kHz mono, stamped with its ``pts``, no earlier than its time on the clock. It sends silence all the time
(a real microphone never pauses, so the server's voice activity detection hears the silence that ends an
utterance) unless ``say()`` gave it a clip to speak:

    mic = SpeechTrack()
    async with RtcRecorder(server.url, channel_id, token, microphone=mic) as rec:
        spoken = await mic.say(pcm, sample_rate_hz=16_000)  # once the clip's last frame went out
    mic.stop()                                               # what it had still to say fails
"""

from __future__ import annotations

import asyncio
import fractions
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
from aiortc.mediastreams import MediaStreamError, MediaStreamTrack
from av import AudioFrame

from herald.client.tracks import FRAME_SAMPLES, SAMPLE_RATE_HZ
from herald.media.frames import rms
from herald.media.resample import resample_once
from herald.testing.audio_client import SILENCE_RMS, Pcm, Spoken

_SILENCE: Pcm = np.zeros(FRAME_SAMPLES, dtype=np.int16)
_TIME_BASE = fractions.Fraction(1, SAMPLE_RATE_HZ)


class SpeechTrack(MediaStreamTrack):
    """Silence, or the clips ``say()`` queued, one after another: 20 ms frames of 48 kHz mono in real time.

    A frame "goes out" when ``recv()`` hands it to aiortc's sender, which encodes and sends it at once;
    ``clock`` (default ``time.monotonic``) paces the frames and times ``Spoken``.
    """

    kind = "audio"

    def __init__(self, *, clock: Callable[[], float] = time.monotonic) -> None:
        super().__init__()
        self.frames_sent = 0
        self._clock = clock
        self._start_s: float | None = None
        self._clips: deque[_Clip] = deque()

    def say(self, pcm: Pcm, *, sample_rate_hz: int = SAMPLE_RATE_HZ) -> asyncio.Future[Spoken]:
        """Queue ``pcm`` (int16 mono at ``sample_rate_hz``) after whatever is being said; await the result
        to wait until its last frame went out (``ConnectionError`` if the track stops first)."""
        done: asyncio.Future[Spoken] = asyncio.get_running_loop().create_future()
        if self.readyState != "live":
            done.set_exception(ConnectionError("the microphone was stopped"))
            return done
        if sample_rate_hz != SAMPLE_RATE_HZ:
            pcm = resample_once(pcm, sample_rate_hz, SAMPLE_RATE_HZ)
        self._clips.append(_Clip(np.asarray(pcm, dtype=np.int16), done))
        return done

    @property
    def speaking(self) -> bool:
        """Whether a clip is being said or waits its turn."""
        return bool(self._clips)

    async def recv(self) -> AudioFrame:
        if self.readyState != "live":
            raise MediaStreamError
        now_s = self._clock()
        if self._start_s is None:
            self._start_s = now_s
        pts = self.frames_sent * FRAME_SAMPLES
        due_s = self._start_s + pts / SAMPLE_RATE_HZ
        if due_s > now_s:
            await asyncio.sleep(due_s - now_s)
        if self.readyState != "live":  # stopped while waiting: the clips have failed already
            raise MediaStreamError
        clip = self._clips[0] if self._clips else None
        pcm = _SILENCE if clip is None else clip.take(self._clock())
        if clip is not None and clip.finished:
            self._clips.popleft()
        frame = AudioFrame.from_ndarray(pcm.reshape(1, -1), format="s16", layout="mono")
        frame.sample_rate = SAMPLE_RATE_HZ
        frame.pts = pts
        frame.time_base = _TIME_BASE
        self.frames_sent += 1
        return frame

    def stop(self) -> None:
        super().stop()
        while self._clips:
            done = self._clips.popleft().done
            if not done.done():
                done.set_exception(ConnectionError("the microphone was stopped"))


@dataclass
class _Clip:
    """One clip being said: how far it got, and when its frames went out."""

    pcm: Pcm
    done: asyncio.Future[Spoken]
    offset: int = 0
    first_s: float | None = None
    voice_first_s: float | None = None
    voice_last_s: float | None = None

    @property
    def finished(self) -> bool:
        return self.offset >= len(self.pcm) and self.first_s is not None

    def take(self, now_s: float) -> Pcm:
        """The next frame (the last one padded with silence), going out at ``now_s``; the last resolves
        ``done``."""
        frame = self.pcm[self.offset : self.offset + FRAME_SAMPLES]
        self.offset += FRAME_SAMPLES
        if len(frame) < FRAME_SAMPLES:
            frame = np.concatenate([frame, _SILENCE[: FRAME_SAMPLES - len(frame)]])
        if self.first_s is None:
            self.first_s = now_s
        if rms(frame) > SILENCE_RMS:
            if self.voice_first_s is None:
                self.voice_first_s = now_s
            self.voice_last_s = now_s
        if self.finished and not self.done.done():
            voice_first_s = self.first_s if self.voice_first_s is None else self.voice_first_s
            voice_last_s = now_s if self.voice_last_s is None else self.voice_last_s
            self.done.set_result(Spoken(self.first_s, now_s, voice_first_s, voice_last_s))
        return frame
