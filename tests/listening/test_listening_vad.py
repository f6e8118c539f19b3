"""Voice activity detection on real speech (Piper's), silence and noise, fed as canonical 20 ms frames."""

from __future__ import annotations

import time
from itertools import pairwise

import numpy as np
import pytest
from listening_helpers import Say, frames, silence, to_16k, voiced, voiced_ms

from herald.listening.vad import (
    WINDOW_MS,
    IllegalVadTransition,
    SpeechEnded,
    SpeechStarted,
    VadEvent,
    VadSettings,
    VadState,
    VoiceActivity,
    check_transition,
)
from herald.listening.vad_model import WINDOW_SAMPLES, SileroModel
from herald.media.frames import FRAME_MS, Pcm
from herald.media.resample import Resampler

WEATHER = "Tell me about the weather."
TIME = "What time is it?"
LONG = "I would like to order a large pizza with mushrooms, olives and extra cheese, please."

LEAD_S = 0.5  # silence before the speech in most tests


def run(vad: VoiceActivity, pcm_frames: list[Pcm]) -> list[tuple[int, VadEvent]]:
    """Every event, with the stream time (ms of frames pushed) at which ``push`` returned it."""
    out: list[tuple[int, VadEvent]] = []
    for index, frame in enumerate(pcm_frames):
        out.extend(((index + 1) * FRAME_MS, event) for event in vad.push(frame))
    return out


def kinds(events: list[tuple[int, VadEvent]]) -> list[str]:
    return [type(event).__name__ for _, event in events]


def ended(events: list[tuple[int, VadEvent]]) -> list[SpeechEnded]:
    return [event for _, event in events if isinstance(event, SpeechEnded)]


@pytest.mark.parametrize(
    "changes",
    [
        {"threshold": 0.0},
        {"threshold": 1.0},
        {"min_speech_ms": -1},
        {"min_silence_ms": 0},
        {"pre_roll_ms": -5},
        {"max_utterance_s": 0.0},
        {"max_utterance_s": 0.2, "min_speech_ms": 300},
    ],
)
def test_settings_are_validated(changes: dict[str, float]) -> None:
    with pytest.raises(ValueError, match=next(iter(changes))):
        VadSettings(**changes)  # type: ignore[arg-type]  # the test passes known fields only


def test_exit_threshold_is_silero_hysteresis() -> None:
    assert VadSettings().exit_threshold == pytest.approx(0.35)
    assert VadSettings(threshold=0.1).exit_threshold == pytest.approx(0.01)


def test_illegal_transitions_raise() -> None:
    check_transition(VadState.QUIET, VadState.ONSET)
    with pytest.raises(IllegalVadTransition, match="quiet → speaking"):
        check_transition(VadState.QUIET, VadState.SPEAKING)
    with pytest.raises(IllegalVadTransition):
        check_transition(VadState.ONSET, VadState.TRAILING)


def test_silero_stream_state_is_its_own(say: Say, silero: SileroModel) -> None:
    audio = to_16k(say(WEATHER)).astype(np.float32)
    audio /= 32768
    windows = [audio[i : i + WINDOW_SAMPLES] for i in range(0, len(audio) - WINDOW_SAMPLES, WINDOW_SAMPLES)]
    stream = silero.stream()
    first = [stream.probability(window) for window in windows]
    stream.reset()
    again = [stream.probability(window) for window in windows]

    assert first == again  # reset is a fresh start
    assert max(first) > 0.9
    assert min(first) < 0.5
    # The state carries between windows: the same window scores differently after other audio.
    assert silero.stream().probability(windows[10]) != first[10]
    with pytest.raises(ValueError, match="512"):
        stream.probability(np.zeros(320, dtype=np.float32))


@pytest.mark.parametrize("noise_rms", [0.0, 30.0, 300.0])
def test_silence_and_noise_give_no_events(silero: SileroModel, noise_rms: float) -> None:
    rng = np.random.default_rng(7)
    pcm = (rng.normal(0.0, noise_rms, 48_000 * 4)).astype(np.int16)
    vad = VoiceActivity(silero)

    assert run(vad, frames(pcm)) == []
    assert vad.state is VadState.QUIET
    assert vad.speaking_ms == 0
    assert vad.position_ms == pytest.approx(4000, abs=WINDOW_MS + FRAME_MS)


def test_a_sentence_is_one_utterance_covering_the_speech(say: Say, silero: SileroModel) -> None:
    clip = say(WEATHER)
    start_ms, end_ms = voiced_ms(clip)
    settings = VadSettings()
    events = run(VoiceActivity(silero, settings), frames(silence(LEAD_S), clip, silence(1.5)))

    assert kinds(events) == ["SpeechStarted", "SpeechEnded"]
    (started_ms, started), (ended_ms, end) = events
    assert isinstance(started, SpeechStarted)
    assert isinstance(end, SpeechEnded)
    lead_ms = int(LEAD_S * 1000)
    print(
        f"\nclip voiced {start_ms}-{end_ms} ms; onset at {started.at_ms - lead_ms} ms, "
        f"confirmed {started_ms - lead_ms} ms, speech {end.duration_ms} ms, "
        f"audio {len(end.audio) / 16:.0f} ms"
    )
    assert end.at_ms == started.at_ms
    assert not end.forced
    # The onset is found within a window or so of the first sound, the utterance lasts about as long.
    assert abs(started.at_ms - (lead_ms + start_ms)) <= 120
    assert abs(end.duration_ms - (end_ms - start_ms)) <= 300
    # The audio given out holds all of the speech: it starts pre-roll before the onset.
    audio_start_ms = started.at_ms - settings.pre_roll_ms
    assert audio_start_ms <= lead_ms + start_ms
    assert audio_start_ms + len(end.audio) / 16 >= lead_ms + end_ms
    speech = to_16k(clip).astype(np.float64)
    assert np.sum(end.audio.astype(np.float64) ** 2) >= 0.98 * np.sum(speech**2)
    # And the end was decided min_silence_ms after the speech stopped (within a window or two).
    silence_heard_ms = ended_ms - (end.at_ms + end.duration_ms)
    assert settings.min_silence_ms <= silence_heard_ms <= settings.min_silence_ms + 2 * WINDOW_MS + FRAME_MS


def test_two_sentences_a_second_apart_are_two_utterances(say: Say, silero: SileroModel) -> None:
    first, second = say(WEATHER), say(TIME)
    events = run(VoiceActivity(silero), frames(silence(LEAD_S), first, silence(1.0), second, silence(1.0)))

    assert kinds(events) == ["SpeechStarted", "SpeechEnded", "SpeechStarted", "SpeechEnded"]
    one, two = ended(events)
    second_start_ms = int(LEAD_S * 1000) + len(first) // 48 + 1000 + voiced_ms(second)[0]
    assert one.at_ms + one.duration_ms < second_start_ms - 500
    assert abs(two.at_ms - second_start_ms) <= 120
    assert not one.forced
    assert not two.forced


def test_a_pause_shorter_than_min_silence_stays_one_utterance(say: Say, silero: SileroModel) -> None:
    # Trimmed to their voiced parts: Piper sometimes leads a sentence with 0.4 s of silence of its own.
    first, second = voiced(say(WEATHER)), voiced(say(TIME))
    pcm_frames = frames(silence(LEAD_S), first, silence(0.4), second, silence(1.5))
    events = run(VoiceActivity(silero, VadSettings(min_silence_ms=1000)), pcm_frames)

    assert kinds(events) == ["SpeechStarted", "SpeechEnded"]
    (only,) = ended(events)
    spoken_ms = (len(first) + len(second)) // 48 + 400
    assert abs(only.duration_ms - spoken_ms) <= 200

    # The same audio with a short min_silence splits at the pause.
    split = run(VoiceActivity(silero, VadSettings(min_silence_ms=200)), pcm_frames)
    assert kinds(split) == ["SpeechStarted", "SpeechEnded"] * 2


def stream_16k(pcm_frames: list[Pcm]) -> Pcm:
    """The 16 kHz stream a ``VoiceActivity`` makes of these frames (the same resampler, fed the same way)."""
    resampler = Resampler(48_000, 16_000)
    return np.concatenate([resampler.push(frame) for frame in pcm_frames])


def placed(piece: SpeechEnded, stream: Pcm) -> tuple[int, int]:
    """Where ``piece.audio`` lies in the stream (start and end sample), checking that it is the stream's
    own audio: its speech starts at ``at_ms``, after whatever pre-roll it carries."""
    onset = piece.at_ms * 16
    pre_roll = next(
        p
        for p in range(0, min(onset, len(piece.audio)) + 1)
        if np.array_equal(piece.audio[p : p + 512], stream[onset : onset + 512])
    )
    start = onset - pre_roll
    assert np.array_equal(piece.audio, stream[start : start + len(piece.audio)])
    return start, start + len(piece.audio)


def test_max_utterance_forces_an_end(say: Say, silero: SileroModel) -> None:
    clip = say(LONG)
    assert len(clip) / 48_000 > 3.0
    settings = VadSettings(max_utterance_s=1.0)
    pcm_frames = frames(silence(LEAD_S), clip, silence(1.0))
    events = run(VoiceActivity(silero, settings), pcm_frames)
    pieces = ended(events)
    print("\nforced pieces (ms):", [(u.duration_ms, u.forced) for u in pieces])

    assert kinds(events)[:2] == ["SpeechStarted", "SpeechEnded"]
    assert len(pieces) >= 3
    assert pieces[0].forced
    assert not pieces[-1].forced
    assert all(piece.duration_ms <= 1000 for piece in pieces)
    stream = stream_16k(pcm_frames)
    spans = [placed(piece, stream) for piece in pieces]
    assert spans[0][0] == pieces[0].at_ms * 16 - settings.pre_roll_ms * 16  # a full pre-roll first
    for (before, after), (_, end), (start, _) in zip(pairwise(pieces), spans, spans[1:], strict=False):
        if before.forced:
            # What follows a cut takes no pre-roll from the piece before: no audio is given out twice.
            assert start >= end, (before, after)
        assert after.at_ms >= before.at_ms + before.duration_ms


@pytest.mark.parametrize("max_utterance_s", [1.0, 30.0])
def test_audio_taken_as_it_comes_is_the_utterance_given_at_its_end(
    say: Say, silero: SileroModel, max_utterance_s: float
) -> None:
    """What a recogniser fed while the person speaks gets (``take_audio`` after each frame) plus the rest
    of ``SpeechEnded.audio`` is exactly that audio, forced ends included; nothing is taken between
    utterances."""
    vad = VoiceActivity(silero, VadSettings(max_utterance_s=max_utterance_s))
    taken: list[Pcm] = []
    pieces: list[tuple[Pcm, SpeechEnded]] = []
    for frame in frames(silence(LEAD_S), say(WEATHER), silence(1.0), say(LONG), silence(1.0)):
        for event in vad.push(frame):
            if isinstance(event, SpeechStarted):
                assert not taken
            elif isinstance(event, SpeechEnded):
                so_far = np.concatenate(taken) if taken else np.zeros(0, np.int16)
                pieces.append((so_far, event))
                taken = []
        audio = vad.take_audio()
        if vad.state in (VadState.QUIET, VadState.ONSET):
            assert len(audio) == 0
        elif len(audio):
            taken.append(audio)

    assert len(pieces) >= (2 if max_utterance_s > 10 else 4)
    for so_far, event in pieces:
        assert len(so_far) > 0
        assert np.array_equal(event.audio[: len(so_far)], so_far)
        assert len(event.audio) - len(so_far) <= 2 * 512  # little is left to give at the end


@pytest.mark.parametrize("min_speech_ms", [0, 100, 300])
def test_an_onset_is_confirmed_after_min_speech(say: Say, silero: SileroModel, min_speech_ms: int) -> None:
    vad = VoiceActivity(silero, VadSettings(min_speech_ms=min_speech_ms))
    events = run(vad, frames(silence(LEAD_S), say(WEATHER), silence(1.0)))

    confirmed_ms, started = events[0]
    assert isinstance(started, SpeechStarted)
    delay_ms = confirmed_ms - started.at_ms
    whole_windows_ms = max(1, -(-min_speech_ms // WINDOW_MS)) * WINDOW_MS
    # The decision comes when the last window needed is complete (resampler delay and frame rounding aside).
    assert min_speech_ms <= delay_ms <= whole_windows_ms + FRAME_MS + 2


def test_a_burst_shorter_than_min_speech_is_not_an_onset(say: Say, silero: SileroModel) -> None:
    clip = say(WEATHER)
    start_ms, _ = voiced_ms(clip)
    burst = clip[start_ms * 48 : (start_ms + 150) * 48]
    events = run(
        VoiceActivity(silero, VadSettings(min_speech_ms=500)), frames(silence(LEAD_S), burst, silence(1))
    )

    assert events == []


def test_speaking_ms_follows_continuous_speech(say: Say, silero: SileroModel) -> None:
    vad = VoiceActivity(silero)
    seen: list[tuple[VadState, int]] = []
    for frame in frames(silence(LEAD_S), say(WEATHER), silence(1.0)):
        vad.push(frame)
        seen.append((vad.state, vad.speaking_ms))

    speaking = [ms for state, ms in seen if state is VadState.SPEAKING]
    assert max(speaking) >= 500
    assert all(ms == 0 for state, ms in seen if state is not VadState.SPEAKING)
    assert VadState.ONSET in {state for state, _ in seen}
    # From the confirmation on, it counts from the onset: at least min_speech_ms at once.
    assert min(speaking) >= VadSettings().min_speech_ms
    assert seen[-1] == (VadState.QUIET, 0)


def test_reset_drops_the_utterance_in_progress(say: Say, silero: SileroModel) -> None:
    clip = say(WEATHER)
    vad = VoiceActivity(silero)
    run(vad, frames(silence(LEAD_S), clip[: len(clip) // 2]))
    assert vad.state in (VadState.SPEAKING, VadState.TRAILING)

    vad.reset()

    assert (vad.state, vad.speaking_ms, vad.position_ms) == (VadState.QUIET, 0, 0)
    assert run(vad, frames(silence(2.0))) == []


def test_streams_are_independent(say: Say, silero: SileroModel) -> None:
    a_frames = frames(silence(LEAD_S), say(WEATHER), silence(1.0))
    b_frames = frames(silence(0.2), say(TIME), silence(0.3), say(WEATHER), silence(1.0))
    alone_a = run(VoiceActivity(silero), a_frames)
    alone_b = run(VoiceActivity(silero), b_frames)

    vad_a, vad_b = VoiceActivity(silero), VoiceActivity(silero)
    together_a: list[tuple[int, VadEvent]] = []
    together_b: list[tuple[int, VadEvent]] = []
    for index in range(max(len(a_frames), len(b_frames))):
        if index < len(b_frames):
            together_b.extend(((index + 1) * FRAME_MS, e) for e in vad_b.push(b_frames[index]))
        if index < len(a_frames):
            together_a.extend(((index + 1) * FRAME_MS, e) for e in vad_a.push(a_frames[index]))

    for alone, together in ((alone_a, together_a), (alone_b, together_b)):
        assert len(alone) == len(together) >= 2
        for (at_alone, event_alone), (at_together, event_together) in zip(alone, together, strict=True):
            assert at_alone == at_together
            assert type(event_alone) is type(event_together)
            assert event_alone.at_ms == event_together.at_ms
            if isinstance(event_alone, SpeechEnded):
                assert isinstance(event_together, SpeechEnded)
                assert event_alone.duration_ms == event_together.duration_ms
                assert np.array_equal(event_alone.audio, event_together.audio)


def test_cost_per_frame(say: Say, silero: SileroModel) -> None:
    pcm_frames = frames(*(piece for _ in range(4) for piece in (silence(1.0), say(LONG))))
    vad = VoiceActivity(silero)
    vad.push(pcm_frames[0])
    started = time.perf_counter()
    for frame in pcm_frames[1:]:
        vad.push(frame)
    per_frame_us = (time.perf_counter() - started) / (len(pcm_frames) - 1) * 1e6
    print(f"\nVAD: {per_frame_us:.0f} µs of CPU per 20 ms frame ({len(pcm_frames)} frames)")
    assert per_frame_us < 2000  # ~100 µs measured; the bound only catches a gross regression
