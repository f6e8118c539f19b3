"""Figure 6, WebRTC: what a browser's path adds to the WebSocket's, and what it costs the server.

Each run is a new call with two listeners at once, a WebSocket one (16 kHz) and an aiortc peer (Opus,
decoded), so both hear the same speech from the same pacer:

* first audio: ``SendAIAgentSpeech`` answer → first audible frame, at each; the difference is what
  Opus, SRTP, the network stack and the peer's jitter buffer add (aiortc's receiver holds 4 packets,
  80 ms, before it decodes any: most of the difference is that, a browser's adaptive buffer holds less);
* interrupt: while a long text plays (0.4 s heard), another is pushed (the default policy, interrupt):
  the old speech still arriving after the HTTP answer (the last audible frame before a gap of
  silence), at each.

Cost: the server's CPU for ``CPU_CALLS`` calls speaking a cached phrase over and over, with one WebRTC
peer each, and then with one WebSocket listener each, per call.
"""

from __future__ import annotations

import asyncio
import contextlib
import statistics
import time
from collections.abc import Callable

from bench.harness import Options, cpu_s, descendants, rpc_for, running_server, wait_idle
from bench.rpc import Call, HttpError, RpcClient
from bench.rtc_listener import RtcListener, last_audible_before_gap
from bench.stats import Figure, Goal, Row
from bench.texts import cached_phrase, long_text, short_text
from herald.testing.audio_client import SILENCE_RMS, AudioRecorder
from herald.testing.server import HeraldServer

SAMPLE_RATE_HZ = 16_000
HEARD_BEFORE_CUT_S = 0.4
GOAL_OLD_AUDIO_MS = 20.0
CPU_CALLS = 10
CPU_WINDOW_S = 4.0
SEED = 300  # texts not said by the other figures (each figure has its own server anyway)


async def run(options: Options) -> Figure:
    runs = 3 if options.quick else 8
    figure = Figure(
        "webrtc",
        "WebRTC: an aiortc peer beside a WebSocket listener in the same call (ms after the HTTP answer)",
        f"{runs} calls, each with both listeners; first audio of a short text said for the first time; "
        "old audio = last audible frame before a gap, after the interrupting request's answer. "
        f"Cost: server CPU for {CPU_CALLS} calls each saying a cached phrase over and over.",
    )
    with running_server() as server:
        async with rpc_for(server) as api:
            await _one_run(api, server, 0)  # warm-up: the first peer connection pays for imports
            results = [await _one_run(api, server, i + 1) for i in range(runs)]
            rtc_cpu = await _cpu_per_call(api, server, webrtc=True)
            ws_cpu = await _cpu_per_call(api, server, webrtc=False)
    first_rtc = [r[0] for r in results]
    first_ws = [r[1] for r in results]
    figure.add(Row("first audible: WebRTC", "ms", first_rtc))
    figure.add(Row("first audible: WebSocket", "ms", first_ws))
    figure.add(
        Row("WebRTC path adds (same call)", "ms", [a - b for a, b in zip(first_rtc, first_ws, strict=True)])
    )
    figure.add(
        Row(
            "old audio after the answer: WebRTC",
            "ms",
            [r[2] for r in results],
            goal=Goal(
                "p99", "<=", GOAL_OLD_AUDIO_MS + statistics.median(first_rtc) - statistics.median(first_ws)
            ),
            note="goal: the WebSocket's 20 ms plus the path's own delay",
        )
    )
    figure.add(Row("old audio after the answer: WebSocket", "ms", [r[3] for r in results]))
    figure.add(Row("server CPU per speaking call: WebRTC", "ms/s", value=round(rtc_cpu * 1000, 2)))
    figure.add(Row("server CPU per speaking call: WebSocket", "ms/s", value=round(ws_cpu * 1000, 2)))
    return figure


async def _one_run(api: RpcClient, server: HeraldServer, i: int) -> tuple[float, float, float, float]:
    """(first audible at WebRTC, at the WebSocket, old audio after the answer at WebRTC, at the WebSocket)."""
    call = await api.generate_call()
    try:
        async with (
            AudioRecorder(server.audio_url(call.channel_id, call.token, SAMPLE_RATE_HZ)) as ws,
            RtcListener(server.url, call.channel_id, await _second_token(server, call)) as rtc,
        ):
            await ws.wait_for_frames(3, timeout_s=10)
            await _until(lambda: len(rtc.frames) >= 3, "WebRTC frames")
            answered = await api.speak(call.instance_id, short_text(SEED + i))
            await _until(lambda: rtc.first_audible_after(answered) is not None, "WebRTC speech")
            await ws.wait_until(lambda: bool(ws.nonsilent_frames(after=-1)), timeout_s=20, what="speech")
            first_rtc = rtc.first_audible_after(answered)
            first_ws = next(f.received_s for f in ws.nonsilent_frames() if f.received_s > answered)
            assert first_rtc is not None
            # An interrupt in mid-sound, heard at both.
            started = await api.speak(call.instance_id, long_text(SEED + i))
            await _until(lambda: _heard_s(rtc, started) >= HEARD_BEFORE_CUT_S, "the long text at WebRTC")
            cut = await api.speak(call.instance_id, long_text(SEED + 50 + i))
            await asyncio.sleep(0.4)  # the old speech's last frames, and a gap, arrive
            old_rtc = rtc.last_audible_before_gap(cut) - cut
            old_ws = last_audible_before_gap(ws.frames(), cut) - cut
    finally:
        with contextlib.suppress(HttpError):
            await api.stop(call.instance_id)
        await wait_idle(server.pid)
    return ((first_rtc - answered) * 1000, (first_ws - answered) * 1000, old_rtc * 1000, old_ws * 1000)


def _heard_s(rtc: RtcListener, after_s: float) -> float:
    return sum(0.02 for f in rtc.frames if f.received_s > after_s and f.rms > SILENCE_RMS)


async def _second_token(server: HeraldServer, call: Call) -> str:
    """A token for a second person in the call (the WebSocket listener holds the first)."""
    return await asyncio.to_thread(server.token, call.channel_id, "webrtc-listener")


async def _until(predicate: Callable[[], bool], what: str, timeout_s: float = 20.0) -> None:
    deadline = time.monotonic() + timeout_s
    while not predicate():
        if time.monotonic() > deadline:
            raise TimeoutError(f"waited {timeout_s:g} s for {what}")
        await asyncio.sleep(0.01)


async def _cpu_per_call(api: RpcClient, server: HeraldServer, *, webrtc: bool) -> float:
    """Server CPU (cores) per call, ``CPU_CALLS`` calls each saying a cached phrase with one listener."""
    phrase = cached_phrase(SEED)
    calls = [await api.generate_call() for _ in range(CPU_CALLS)]
    async with contextlib.AsyncExitStack() as stack:
        for call in calls:
            if webrtc:
                await stack.enter_async_context(RtcListener(server.url, call.channel_id, call.token))
            else:
                url = server.audio_url(call.channel_id, call.token, SAMPLE_RATE_HZ)
                await stack.enter_async_context(AudioRecorder(url))
        for call in calls:
            for _ in range(20):
                await api.speak(call.instance_id, phrase, Policy="append")
        await asyncio.sleep(2.0)  # the phrase is cached after its first saying; all calls speaking
        pids = [server.pid, *descendants(server.pid)]
        before, started = sum(cpu_s(p) for p in pids), time.monotonic()
        await asyncio.sleep(CPU_WINDOW_S)
        used = sum(cpu_s(p) for p in pids) - before
        share = used / (time.monotonic() - started)
    for call in calls:
        with contextlib.suppress(HttpError):
            await api.stop(call.instance_id)
    await wait_idle(server.pid)
    return share / CPU_CALLS
