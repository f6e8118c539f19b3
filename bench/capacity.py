"""Figure 3, capacity: how many instances speak at once with every frame on time, found by ramping.

Each step adds calls up to the step's level (those of earlier steps go on speaking), each with a listener
in the listener process (``bench.listeners``: the benchmark's own event loop does not distort the timing,
but the listeners still share the two cores with the server). After the new calls settle, a window
measures every listener. A step fails if any listener sees a frame arrive more than 40 ms after the one
before (the server sends one every 20 ms, silence included), starved speech (silence between two pieces
of one text: synthesis fell behind), or lost its connection. Capacity is the last level before the first
failing step. The ramp goes on past steps that fail on starved speech alone, which gives a second
figure: instances with every frame on time (the pacer keeps up, though synthesis may not); it stops at
the first step with a late frame or a lost listener.

* TTS: each new call starts a long text (about a minute, said for the first time), the starts spread
  over 1.5 s as calls would arrive; a call that has spoken for 40 s gets a second text appended. Beside
  it, the compute limit measured in the same run: cores / Piper's real-time factor (in this process,
  one inference thread, as the server runs it). The levels are 2, 4, 8, 12, ... up to 0.6 x the limit,
  then exactly 0.8 x (the goal), 1.0 x and 1.2 x the limit.
* Cached: each call says a short text whose pieces are all in the server's phrase cache (primed once),
  ten times in a row (appended), so no synthesis runs: the cost of pacing, converting and sending.
  Audio URLs are not used for this ramp: each one plays through a decoder process of its own (see the
  memory figure for its size).

The server does not report its pacer's late ticks yet, so lateness is what the listeners see.
"""

from __future__ import annotations

import asyncio
import contextlib
import math
import os
import sys
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from typing import Any, Protocol

from bench.harness import Options, cpu_s, descendants, profiled, rpc_for, running_server
from bench.listeners import ListenerProcess
from bench.rpc import Call, RpcClient
from bench.stats import Figure, Goal, Row
from bench.texts import long_text
from herald.speech.piper_engine import PiperEngine
from herald.speech.text import split_for_streaming
from herald.speech.tts import VoiceSettings
from herald.testing.audio_client import AudioRecorder
from herald.testing.server import HeraldServer

TTS_LEVELS = (2, 4, 8, 12, 16, 20, 24, 28, 32, 40, 48, 56, 64)
CACHED_LEVELS = (50, 100, 200, 300, 400, 500, 600, 800)  # stops at 800: the goal is 500
GOAL_SHARE_OF_LIMIT = 0.8
GOAL_CACHED_STREAMS = 500.0
CLIENTS = 8  # API connections that set a step's calls up in parallel
SAMPLE_RATE_HZ = 16_000
# Two sentences that any sensible split cuts into the same two pieces, so one piece (about 3 s of speech)
# is primed once; every call then says the text CACHED_REPEATS times in a row (appended): ~60 s.
PHRASE = "Please hold while we connect you to the next agent."
CACHED_TEXT = f"{PHRASE} {PHRASE}"
CACHED_REPEATS = 10


@dataclass
class Step:
    level: int
    window: dict[str, Any]
    """What the listener process measured (``bench.listeners``)."""
    server_cpu_share: float
    """CPU time of the server and its children during the window, in cores."""
    problems: list[str] = field(default_factory=list)
    """Why the step failed (empty: it passed)."""
    on_time: bool = True
    """No frame late and no listener lost (speech may have starved)."""

    @property
    def ok(self) -> bool:
        return not self.problems

    def describe(self) -> str:
        w = self.window
        return "; ".join(
            [
                *self.problems,
                f"max gap {w['max_gap_ms']:.0f} ms, gap p99 {w['gap_p99_ms']} ms, "
                f"late in {w['late_moments']} moments, frames {w['frames']}/{w['expected_frames']}, "
                f"server CPU {self.server_cpu_share:.2f}, listeners CPU {w['listener_cpu_share']:.2f}",
            ]
        )


class Workload(Protocol):
    settle_s: float
    window_s: float

    async def start(self, clients: Sequence[RpcClient], calls: list[Call]) -> None:
        """Make newly joined calls speak."""
        ...

    async def keep_going(self, clients: Sequence[RpcClient]) -> None:
        """Before a step: give calls that would run out of speech more to say."""
        ...


async def run(options: Options) -> Figure:
    figure = Figure(
        "capacity",
        "Capacity: instances speaking at once, each with a listener, no frame later than 40 ms",
        "ramp; each step: new calls join and speak, settle, then every listener is measured; a step fails "
        "on a frame gap > 40 ms, starved speech or a lost listener. Compute limit = cores / Piper RTF.",
    )
    scale = 0.5 if options.quick else 1.0
    rtf = _real_time_factor(pieces=1 if options.quick else 2)
    cores = len(os.sched_getaffinity(0))
    limit = cores / rtf
    tts_steps = await _ramp(options, "tts", _tts_levels(limit), Speeches(scale))
    cached_steps = await _ramp(options, "cached", CACHED_LEVELS, CachedSpeeches(scale), prime=True)
    tts = _sustained(tts_steps)
    tts_on_time = _sustained(tts_steps, on_time_only=True)
    cached = _sustained(cached_steps)
    figure.add(Row("TTS: engine real-time factor", "x", value=round(rtf, 4)))
    figure.add(Row(f"TTS: compute limit ({cores} cores / RTF)", "inst", value=round(limit, 1)))
    figure.add(
        Row(
            "TTS: instances sustained",
            "inst",
            value=tts,
            note=_at_least(tts_steps, "on time, no starved speech"),
        )
    )
    share = Goal("value", ">=", GOAL_SHARE_OF_LIMIT)
    figure.add(Row("TTS: sustained / compute limit", "x", value=round(tts / limit, 3), goal=share))
    on_time_note = _at_least(tts_steps, "starved speech allowed", on_time_only=True)
    figure.add(Row("TTS: instances with frames on time", "inst", value=tts_on_time, note=on_time_note))
    figure.add(Row("TTS: frames on time / compute limit", "x", value=round(tts_on_time / limit, 3)))
    _step_rows(figure, "TTS", tts_steps)
    cached_goal = Goal("value", ">=", GOAL_CACHED_STREAMS)
    cached_note = _at_least(cached_steps, "")
    figure.add(Row("cached: streams sustained", "inst", value=cached, goal=cached_goal, note=cached_note))
    _step_rows(figure, "cached", cached_steps)
    figure.details = {
        "rtf": rtf,
        "cores": cores,
        "tts_steps": [asdict(s) for s in tts_steps],
        "cached_steps": [asdict(s) for s in cached_steps],
    }
    return figure


def _tts_levels(limit: float) -> list[int]:
    """The usual ramp up to 0.6 x the limit, then exactly the goal (0.8 x), the limit and 1.2 x."""
    near = [math.ceil(GOAL_SHARE_OF_LIMIT * limit), round(limit), math.ceil(1.2 * limit)]
    return sorted({level for level in TTS_LEVELS if level <= 0.6 * limit} | set(near))


def _real_time_factor(pieces: int) -> float:
    """Piper's synthesis time per second of audio, over the first ``pieces`` long pieces of a long text."""
    engine = PiperEngine.load()
    engine.warm_up()
    voice = VoiceSettings(engine.voice_ids[0])
    audio_s = busy_s = 0.0
    for piece in split_for_streaming(long_text(399))[1 : 1 + pieces]:
        start = time.perf_counter()
        pcm = engine.synthesize(piece, voice)
        busy_s += time.perf_counter() - start
        audio_s += len(pcm) / 48_000
    return busy_s / audio_s


class Speeches:
    """TTS: a long text per call, started as calls arrive; a second one appended after 40 s."""

    SPREAD_S = 1.5
    TOP_UP_AFTER_S = 40.0

    def __init__(self, scale: float) -> None:
        self.settle_s = 1.5 * scale
        self.window_s = 5.0 * scale
        self._spread_s = self.SPREAD_S * scale
        self._started: list[tuple[Call, float]] = []  # calls whose only text started then
        self._count = 0

    def _text(self) -> str:
        self._count += 1
        return long_text(200 + self._count)  # openers differ for the first 142 texts (texts.py)

    async def start(self, clients: Sequence[RpcClient], calls: list[Call]) -> None:
        for i, call in enumerate(calls):
            await clients[i % len(clients)].speak(call.instance_id, self._text())
            self._started.append((call, time.monotonic()))
            await asyncio.sleep(self._spread_s / len(calls))

    async def keep_going(self, clients: Sequence[RpcClient]) -> None:
        now = time.monotonic()
        due = [call for call, started_s in self._started if now - started_s > self.TOP_UP_AFTER_S]
        self._started = [(call, s) for call, s in self._started if call not in due]
        for i, call in enumerate(due):
            await clients[i % len(clients)].speak(call.instance_id, self._text(), Policy="append")


class CachedSpeeches:
    """Cached: the primed text ``CACHED_REPEATS`` times per call (about a minute), all at once."""

    def __init__(self, scale: float) -> None:
        self.settle_s = 1.0 * scale
        self.window_s = 3.0 * scale

    async def start(self, clients: Sequence[RpcClient], calls: list[Call]) -> None:
        async def one(api: RpcClient, call: Call) -> None:
            await api.speak(call.instance_id, CACHED_TEXT)
            for _ in range(CACHED_REPEATS - 1):
                await api.speak(call.instance_id, CACHED_TEXT, Policy="append")

        await asyncio.gather(*(one(clients[i % len(clients)], call) for i, call in enumerate(calls)))

    async def keep_going(self, clients: Sequence[RpcClient]) -> None:
        pass


async def _ramp(
    options: Options, kind: str, levels: Sequence[int], load: Workload, *, prime: bool = False
) -> list[Step]:
    steps: list[Step] = []
    with running_server() as server:
        async with contextlib.AsyncExitStack() as stack:
            clients = [await stack.enter_async_context(rpc_for(server)) for _ in range(CLIENTS)]
            if prime:
                await _prime_cache(server, clients[0])
            listeners = await stack.enter_async_context(ListenerProcess())
            have = 0
            for level in levels:
                await load.keep_going(clients)
                new = await asyncio.gather(
                    *(clients[i % CLIENTS].generate_call() for i in range(level - have))
                )
                urls = [server.audio_url(c.channel_id, c.token, SAMPLE_RATE_HZ) for c in new]
                joined = await listeners.add(urls)
                await load.start(clients, list(new))
                have = level
                await asyncio.sleep(load.settle_s)
                step = await _measure(
                    options, server, listeners, f"capacity-{kind}-{level}", level, load.window_s
                )
                if joined["failed"]:
                    step.on_time = False
                    step.problems.append(
                        f"{len(joined['failed'])} listeners could not join: {joined['failed'][0]}"
                    )
                steps.append(step)
                verdict = "ok  " if step.ok else "FAIL"
                print(f"    {kind} {level:5d}: {verdict} {step.describe()}", file=sys.stderr, flush=True)
                if not step.on_time:  # starved speech alone: go on, to find where frames come late too
                    break
    return steps


async def _measure(
    options: Options, server: HeraldServer, listeners: ListenerProcess, name: str, level: int, window_s: float
) -> Step:
    pids = [server.pid, *descendants(server.pid)]
    cpu_before = sum(cpu_s(pid) for pid in pids)
    with profiled(options, server.pid, name, window_s):
        window = await listeners.window(window_s)
    step = Step(level, window, round((sum(cpu_s(pid) for pid in pids) - cpu_before) / window["window_s"], 3))
    step.on_time = not window["late_gaps"] and not window["closed"]
    if window["late_gaps"]:
        step.problems.append(f"{window['late_gaps']} late frames at {window['late_listeners']} listeners")
    if window["starved_frames"]:
        step.problems.append(
            f"{window['starved_frames']} starved frames at {window['starved_listeners']} listeners "
            f"(by piece: {window['starved_by_piece']})"
        )
    if window["closed"]:
        step.problems.append(f"{window['closed']} listeners lost")
    return step


async def _prime_cache(server: HeraldServer, api: RpcClient) -> None:
    """Say the cached text until each of its distinct pieces has started playing: all are then cached."""
    pieces = set(split_for_streaming(CACHED_TEXT))
    call = await api.generate_call()
    async with AudioRecorder(server.audio_url(call.channel_id, call.token, SAMPLE_RATE_HZ)) as rec:
        await api.speak(call.instance_id, CACHED_TEXT)
        await rec.wait_until(
            lambda: pieces <= {m.data.get("text") for m in rec.messages(1002) if not m.data.get("end")},
            timeout_s=90,
            what=f"the {len(pieces)} distinct pieces of the cached text",
        )
    await api.stop(call.instance_id)


def _sustained(steps: list[Step], *, on_time_only: bool = False) -> float:
    """The last level before the first failing step (failing on lateness alone, with ``on_time_only``)."""
    good = 0
    for step in steps:
        if not (step.on_time if on_time_only else step.ok):
            break
        good = step.level
    return float(good)


def _at_least(steps: list[Step], note: str, *, on_time_only: bool = False) -> str:
    """``note``, saying so when the ramp ended before any step failed (the capacity is at least that)."""
    passed = all(step.on_time if on_time_only else step.ok for step in steps)
    return ", ".join(part for part in (note, "every step passed: at least this" if passed else "") if part)


def _step_rows(figure: Figure, kind: str, steps: list[Step]) -> None:
    for step in steps:
        verdict = (
            "ok"
            if step.ok
            else "FAIL: " + "; ".join(problem.split(" (by piece")[0] for problem in step.problems)
        )
        note = f"{verdict}; server CPU {step.server_cpu_share:.2f}"
        figure.add(
            Row(f"{kind} @ {step.level}: max frame gap", "ms", value=step.window["max_gap_ms"], note=note)
        )
