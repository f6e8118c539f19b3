"""Figure 2, interrupts: how much of the old speech is still heard once an interrupting speech is accepted.

One call with a 16 kHz listener and a chain of long texts, each said for the first time: while one plays
(at least 0.4 s heard, and the frame just received audible, so the cut falls mid-sound) the next one is
pushed with the default policy (interrupt). Per cut:

* old audio after ``1016``: what is heard after the ``1016`` (speaking interrupted) message and before
  the new speech's first subtitle (``1002``);
* old audio after the answer: what is heard before that subtitle in frames that arrived after the HTTP
  answer (this also counts frames already in flight or queued when the request was handled).

Old audio is counted per frame from the frame's start to its last audible sample (|x| > 200), so a frame
that only carries the resampler's last few samples of the cut speech (a 16 kHz listener gets those in the
first frame after a cut) counts as the fraction of a millisecond it is, not as 20 ms; how many frames
pass the RMS rule of the other figures is kept too (``audible frames``). Then:
* the new speech's first audible frame after the answer (it is synthesised from scratch).
* the new speech's first audible frame after the answer (it is synthesised from scratch).
"""

from __future__ import annotations

import contextlib

import numpy as np

from bench.harness import Options, rpc_for, running_server
from bench.rpc import HttpError
from bench.stats import Figure, Goal, Row
from bench.texts import long_text
from herald.testing.audio_client import SILENCE_RMS, AudioFrame, AudioRecorder

SAMPLE_RATE_HZ = 16_000
FRAME_MS = 20
MSG_SUBTITLE = 1002
MSG_INTERRUPTED = 1016
HEARD_BEFORE_CUT_S = 0.4
GOAL_OLD_AUDIO_MS = 20.0
SEED = 100  # long_text(100 + i): openers not used by the other figures' servers (each has its own anyway)


def _heard_ms(frame: AudioFrame) -> float:
    """Audio up to the frame's last audible sample, in ms (0 for a silent frame)."""
    loud = np.flatnonzero(np.abs(frame.pcm.astype(np.int32)) > SILENCE_RMS)
    return 0.0 if len(loud) == 0 else (int(loud[-1]) + 1) * 1000 / frame.sample_rate_hz


async def _first_audible(rec: AudioRecorder, after: int) -> AudioFrame:
    await rec.wait_until(lambda: bool(rec.nonsilent_frames(after=after)), timeout_s=20, what="audible speech")
    return rec.nonsilent_frames(after=after)[0]


async def _mid_sound(rec: AudioRecorder, start: AudioFrame) -> None:
    """Wait until the speech begun at ``start`` was heard for a while and the latest frame is audible."""

    def ready() -> bool:
        last = rec.items[-1]
        return (
            isinstance(last, AudioFrame)
            and last.rms > SILENCE_RMS
            and rec.heard_s(after=start.index - 1) >= HEARD_BEFORE_CUT_S
        )

    await rec.wait_until(ready, timeout_s=20, what="speech to cut")


async def run(options: Options) -> Figure:
    runs = 6 if options.quick else 24
    figure = Figure(
        "interrupt",
        "Interrupt: old audio heard after an interrupting SendAIAgentSpeech was accepted",
        f"{runs} cuts of a long text by the next long text (a chain on one call, 16 kHz listener), cut "
        f"mid-sound after {HEARD_BEFORE_CUT_S} s heard; old audio = each frame up to its last sample "
        f"above {SILENCE_RMS:.0f}; times from the HTTP answer, arrivals include up to 20 ms of pacing.",
    )
    after_message: list[float] = []
    after_answer: list[float] = []
    frames_after_message: list[float] = []
    new_audible: list[float] = []
    new_frame: list[float] = []
    cut_message: list[float] = []
    with running_server() as server:
        async with rpc_for(server) as api:
            call = await api.generate_call()
            try:
                async with AudioRecorder(
                    server.audio_url(call.channel_id, call.token, SAMPLE_RATE_HZ)
                ) as rec:
                    await rec.wait_for_frames(3, timeout_s=10)
                    mark = rec.mark()
                    await api.speak(call.instance_id, long_text(SEED))
                    current = await _first_audible(rec, mark)
                    for i in range(1, runs + 1):
                        await _mid_sound(rec, current)
                        mark = rec.mark()
                        answered_s = await api.speak(call.instance_id, long_text(SEED + i))
                        cut = await rec.wait_for_message(MSG_INTERRUPTED, after=mark, timeout_s=10)
                        subtitle = await rec.wait_for_message(
                            MSG_SUBTITLE, lambda m: not m.data.get("end"), after=cut.index, timeout_s=20
                        )
                        current = await _first_audible(rec, subtitle.index)
                        old = rec.frames(after=mark, before=subtitle.index)
                        after_message.append(sum(_heard_ms(f) for f in old if f.index > cut.index))
                        after_answer.append(sum(_heard_ms(f) for f in old if f.received_s > answered_s))
                        frames_after_message.append(
                            sum(
                                f.index > cut.index
                                for f in rec.nonsilent_frames(after=cut.index, before=subtitle.index)
                            )
                        )
                        new_audible.append((current.received_s - answered_s) * 1000)
                        new_frame.append((rec.frames(after=subtitle.index)[0].received_s - answered_s) * 1000)
                        cut_message.append((cut.received_s - answered_s) * 1000)
            finally:
                with contextlib.suppress(HttpError):
                    await api.stop(call.instance_id)
    goal = Goal("p99", "<=", GOAL_OLD_AUDIO_MS)
    figure.add(Row("old audio after the 1016 message", "ms", after_message, goal=goal))
    figure.add(Row("old audio arriving after the HTTP answer", "ms", after_answer, goal=goal))
    figure.add(Row("audible frames after the 1016 (RMS rule)", "frames", frames_after_message))
    figure.add(Row("1016 arrival after the HTTP answer", "ms", cut_message))
    figure.add(Row("new speech: first speech frame", "ms", new_frame))
    figure.add(Row("new speech: first audible frame", "ms", new_audible))
    return figure
