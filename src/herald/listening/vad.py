"""Voice activity detection for one participant: canonical frames in, utterances out.

``VoiceActivity.push`` takes the participant's 48 kHz frames, resamples them to 16 kHz, asks Silero about
each 32 ms window and moves an explicit state machine (anything else raises ``IllegalVadTransition``)::

    quiet ──► onset ──► speaking ──► trailing ──► quiet
      ▲         │          ▲ │           │
      └─────────┘          │ └──► quiet  │        (forced: max_utterance_s)
    (too short)            └─────────────┘        (speech again before min_silence_ms)

* **quiet → onset**: a window's speech probability reaches ``threshold``.
* **onset → speaking**, emitting ``SpeechStarted``: speech has lasted ``min_speech_ms``; a window below the
  exit threshold before that sends the onset back to quiet (a click, a cough's burst).
* **speaking → trailing**: a window falls below the exit threshold, ``threshold - 0.15`` (Silero's own
  hysteresis in ``get_speech_timestamps``): soft syllables inside speech do not end it.
* **trailing → speaking**: a window reaches ``threshold`` again before the utterance ended.
* **trailing → quiet**, emitting ``SpeechEnded``: a window below the exit threshold comes ``min_silence_ms``
  or more after the speech stopped.
* **speaking → quiet**, emitting ``SpeechEnded(forced=True)``: the person is still talking when the
  utterance reaches ``max_utterance_s``; if they go on, that is a new onset (a pause at the limit still
  ends the usual way, ``min_silence_ms`` later).

Time is the audio's own: positions count samples pushed, so the detector needs no clock and gives the same
events however fast frames arrive. Decisions are made per 32 ms window, so durations are multiples of 32 ms.
Cost: 0.1 to 0.2 ms of CPU per 20 ms frame (resampling ~25 µs, the model ~115 µs per window), run on the
caller's thread.
"""

from __future__ import annotations

import enum
import math
from collections import deque
from dataclasses import dataclass
from typing import Final

import numpy as np

from herald.listening.asr import SAMPLE_RATE_HZ, Pcm16k
from herald.listening.vad_model import WINDOW_SAMPLES, SileroModel
from herald.media.frames import SAMPLE_RATE_HZ as FRAME_RATE_HZ
from herald.media.frames import Pcm
from herald.media.resample import Resampler

EXIT_MARGIN: Final = 0.15
"""Speech continues while the probability stays above ``threshold - EXIT_MARGIN``."""
WINDOW_MS: Final = WINDOW_SAMPLES * 1000 // SAMPLE_RATE_HZ

_EMPTY: Final[Pcm16k] = np.zeros(0, dtype=np.int16)


@dataclass(frozen=True, slots=True)
class VadSettings:
    """How speech is told from silence. Invalid values raise ``ValueError``."""

    threshold: float = 0.5
    """Speech probability that starts an utterance (Silero's recommended default)."""
    min_speech_ms: int = 100
    """Continuous speech before an onset counts (rounded up to whole windows: 100 ms takes 4, 128 ms). It
    rejects clicks, taps and single-window spikes while adding little delay to a barge-in; Silero's 250 ms
    default is for trimming recordings offline, where latency does not matter."""
    min_silence_ms: int = 400
    """Silence that ends an utterance: ICE's ``AsrMaxSilence`` (200 to 1200, default 400)."""
    pre_roll_ms: int = 300
    """Audio kept from before the onset: the detector fires a little after the first phoneme begins."""
    max_utterance_s: float = 30.0
    """An utterance is cut here if the person is still talking (bounds memory and what ASR is given)."""

    def __post_init__(self) -> None:
        if not 0.0 < self.threshold < 1.0:
            raise ValueError(f"threshold must be between 0 and 1 (got {self.threshold})")
        for name in ("min_speech_ms", "pre_roll_ms"):
            if getattr(self, name) < 0:
                raise ValueError(f"{name} must not be negative (got {getattr(self, name)})")
        if self.min_silence_ms <= 0:
            raise ValueError(f"min_silence_ms must be positive (got {self.min_silence_ms})")
        if self.max_utterance_s * 1000 <= max(self.min_speech_ms, WINDOW_MS):
            raise ValueError(
                f"max_utterance_s must exceed min_speech_ms and one window (got {self.max_utterance_s})"
            )

    @property
    def exit_threshold(self) -> float:
        """Below this, a window counts as silence once speech has begun."""
        return max(self.threshold - EXIT_MARGIN, 0.01)


class VadState(enum.Enum):
    QUIET = "quiet"
    ONSET = "onset"
    SPEAKING = "speaking"
    TRAILING = "trailing"


TRANSITIONS: dict[VadState, frozenset[VadState]] = {
    VadState.QUIET: frozenset({VadState.ONSET}),
    VadState.ONSET: frozenset({VadState.QUIET, VadState.SPEAKING}),
    VadState.SPEAKING: frozenset({VadState.TRAILING, VadState.QUIET}),
    VadState.TRAILING: frozenset({VadState.SPEAKING, VadState.QUIET}),
}


class IllegalVadTransition(RuntimeError):
    def __init__(self, source: VadState, target: VadState) -> None:
        super().__init__(f"voice activity: {source.value} → {target.value} is not allowed")


def check_transition(source: VadState, target: VadState) -> None:
    if target not in TRANSITIONS[source]:
        raise IllegalVadTransition(source, target)


@dataclass(frozen=True, slots=True)
class SpeechStarted:
    """An onset was confirmed: the person has been speaking for ``min_speech_ms``."""

    at_ms: int
    """When the speech began, in the stream's time (ms of audio pushed before it)."""


@dataclass(frozen=True, slots=True, eq=False)
class SpeechEnded:
    """An utterance ended: after ``min_silence_ms`` of silence, or ``forced`` at ``max_utterance_s``."""

    audio: Pcm16k
    """16 kHz mono: up to ``pre_roll_ms`` from before the onset, the utterance, and the silence that ended
    it (what a recogniser should hear)."""
    duration_ms: int
    """The speech itself: from the onset to the end of the last window of speech."""
    at_ms: int
    """When the speech began, in the stream's time (as in ``SpeechStarted``)."""
    forced: bool = False


VadEvent = SpeechStarted | SpeechEnded


class VoiceActivity:
    """The speech/silence state of one participant's audio. Not thread-safe: one stream, one owner."""

    def __init__(self, model: SileroModel, settings: VadSettings | None = None) -> None:
        self.settings = settings or VadSettings()
        self._stream = model.stream()
        self._resampler = Resampler(FRAME_RATE_HZ, SAMPLE_RATE_HZ)
        self._min_speech_windows = max(1, math.ceil(self.settings.min_speech_ms / WINDOW_MS))
        self._min_silence_windows = max(1, math.ceil(self.settings.min_silence_ms / WINDOW_MS))
        self._max_windows = max(1, math.floor(self.settings.max_utterance_s * 1000 / WINDOW_MS))
        self._pre_roll_samples = self.settings.pre_roll_ms * SAMPLE_RATE_HZ // 1000
        self._reset_buffers()

    def _reset_buffers(self) -> None:
        self.state = VadState.QUIET
        self._pending = _EMPTY
        self._windows = 0  # windows processed since the stream began: the stream's clock
        # While quiet, the last windows (enough for the pre-roll); from the onset on, the utterance.
        self._recent: deque[Pcm16k] = deque(maxlen=math.ceil(self._pre_roll_samples / WINDOW_SAMPLES))
        self._utterance: list[Pcm16k] = []
        self._taken = 0  # windows of the utterance given out by take_audio(), pre-roll aside
        self._pre_roll_taken = False
        self._onset = 0  # window index where the utterance began
        self._run_start = 0  # window index where the current run of speech began
        self._speech_end = 0  # window index just after the last window of speech
        self._silence_start = 0  # window index where the current silence began

    @property
    def speaking_ms(self) -> int:
        """How long the current continuous speech has lasted, onset included; 0 until ``SpeechStarted``
        confirmed it, and in a pause: what a barge-in with a minimum duration (ICE's ``VadDuration``)
        compares, and ``> 0`` means someone is talking."""
        if self.state is VadState.SPEAKING:
            return (self._windows - self._run_start) * WINDOW_MS
        return 0

    @property
    def position_ms(self) -> int:
        """Audio processed so far, in ms (whole windows only)."""
        return self._windows * WINDOW_MS

    def push(self, frame: Pcm) -> list[VadEvent]:
        """Take 48 kHz mono int16 audio (canonical 20 ms frames, or any length); the events it caused."""
        samples = self._resampler.push(frame)
        if len(samples):
            self._pending = np.concatenate([self._pending, samples]) if len(self._pending) else samples
        events: list[VadEvent] = []
        while len(self._pending) >= WINDOW_SAMPLES:
            window = self._pending[:WINDOW_SAMPLES]
            self._pending = self._pending[WINDOW_SAMPLES:]
            event = self._step(window)
            if event is not None:
                events.append(event)
        return events

    def take_audio(self) -> Pcm16k:
        """The current utterance's audio not taken yet (16 kHz): the pre-roll and the windows so far on the
        first call after ``SpeechStarted``, then what came since; empty outside an utterance. So an utterance
        can be recognised while it is spoken: what ``SpeechEnded.audio`` holds is everything taken, then
        ``SpeechEnded.audio[samples taken:]``."""
        if self.state not in (VadState.SPEAKING, VadState.TRAILING):
            return _EMPTY
        parts = self._utterance[self._taken :]
        self._taken = len(self._utterance)
        if not self._pre_roll_taken:
            self._pre_roll_taken = True
            parts = [self._pre_roll(), *parts]
        return np.concatenate(parts) if parts else _EMPTY

    def reset(self) -> None:
        """Drop everything heard, an utterance in progress included, and start again from silence."""
        self._stream.reset()
        self._resampler = Resampler(FRAME_RATE_HZ, SAMPLE_RATE_HZ)
        self._reset_buffers()

    def _step(self, window: Pcm16k) -> VadEvent | None:
        probability = self._stream.probability(window.astype(np.float32) / 32768.0)
        index = self._windows
        self._windows += 1
        speech = probability >= self.settings.threshold
        not_silence = probability >= self.settings.exit_threshold
        match self.state:
            case VadState.QUIET:
                if not speech:
                    self._recent.append(window)
                    return None
                self._move(VadState.ONSET)
                self._onset = self._run_start = index
                self._utterance = [window]
                return self._confirm()
            case VadState.ONSET:
                self._utterance.append(window)
                if not not_silence:
                    self._move(VadState.QUIET)
                    self._recent.extend(self._utterance)
                    self._utterance = []
                    return None
                return self._confirm()
            case VadState.SPEAKING:
                self._utterance.append(window)
                if not_silence:
                    self._speech_end = index + 1
                else:
                    self._move(VadState.TRAILING)
                    self._silence_start = index
            case VadState.TRAILING:
                self._utterance.append(window)
                if speech:
                    self._move(VadState.SPEAKING)
                    self._run_start = index
                    self._speech_end = index + 1
                elif not not_silence and index + 1 - self._silence_start >= self._min_silence_windows:
                    return self._end(forced=False)
        # Only speech is cut: a pause past the limit ends within min_silence_ms anyway.
        if self.state is VadState.SPEAKING and len(self._utterance) >= self._max_windows:
            return self._end(forced=True)
        return None

    def _confirm(self) -> SpeechStarted | None:
        if self._windows - self._onset < self._min_speech_windows:
            return None
        self._move(VadState.SPEAKING)
        self._speech_end = self._windows
        return SpeechStarted(at_ms=self._onset * WINDOW_MS)

    def _end(self, *, forced: bool) -> SpeechEnded:
        self._move(VadState.QUIET)
        audio = np.concatenate([self._pre_roll(), *self._utterance])
        ended = SpeechEnded(
            audio=audio,
            duration_ms=(self._speech_end - self._onset) * WINDOW_MS,
            at_ms=self._onset * WINDOW_MS,
            forced=forced,
        )
        self._recent.clear()
        if not forced:
            # The silence that ended this utterance is the next one's pre-roll; after a forced end the
            # person is still talking, and that audio was already given out.
            self._recent.extend(self._utterance)
        self._utterance = []
        self._taken = 0
        self._pre_roll_taken = False
        return ended

    def _pre_roll(self) -> Pcm16k:
        return np.concatenate(self._recent)[-self._pre_roll_samples :] if self._recent else _EMPTY

    def _move(self, target: VadState) -> None:
        check_transition(self.state, target)
        self.state = target
