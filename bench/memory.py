"""Figure 5, memory: resident memory of the server and its decoder workers (RSS from /proc).

Idle (after start-up settled), then the growth per idle instance (N calls nobody joined), per speaking
instance (N calls with a listener each, saying long texts, after their 3 s look-ahead has filled) and per
audio-URL stream (each plays in a decoder process of its own). Synthesis is warmed up first, so the
engine's one-off working memory is not charged to the first speakers. RSS counts shared pages in every
process, so the children's total overstates what they cost together.
"""

from __future__ import annotations

import asyncio
import statistics
from dataclasses import dataclass

from bench.harness import Options, descendants, rpc_for, rss_bytes, running_server
from bench.listeners import ListenerProcess
from bench.rpc import RpcClient
from bench.stats import Figure, Row
from bench.texts import long_text, medium_text
from herald.testing.audio_files import sine_wav
from herald.testing.media_server import MediaServer
from herald.testing.server import HeraldServer

MB = 1024 * 1024
SAMPLE_RATE_HZ = 16_000


@dataclass(frozen=True)
class Rss:
    server: float
    children: float
    workers: int

    @property
    def total(self) -> float:
        return self.server + self.children


async def _rss(server: HeraldServer) -> Rss:
    """The median of five readings over half a second (allocators breathe)."""
    readings = []
    for _ in range(5):
        children = descendants(server.pid)
        readings.append(Rss(rss_bytes(server.pid), sum(rss_bytes(pid) for pid in children), len(children)))
        await asyncio.sleep(0.1)
    return Rss(
        statistics.median(r.server for r in readings),
        statistics.median(r.children for r in readings),
        max(r.workers for r in readings),
    )


async def run(options: Options) -> Figure:
    idle_n, speaking_n, url_n = (20, 4, 2) if options.quick else (50, 10, 5)
    figure = Figure(
        "memory",
        "Memory: resident set of the server and its decoder workers (MB)",
        f"RSS from /proc; growth divided by N: {idle_n} idle calls, {speaking_n} speaking calls with a "
        f"listener each, {url_n} audio-URL streams.",
    )
    wav = sine_wav(30.0, 16_000)
    with MediaServer() as media, running_server(env={"HERALD_FETCH_ALLOW": media.host}) as server:
        url = media.file("/long.wav", wav, "audio/wav")
        async with rpc_for(server) as api, ListenerProcess() as listeners:
            await asyncio.sleep(2.0)  # start-up settles: spare decoder workers ready
            idle = await _rss(server)
            for _ in range(idle_n):
                await api.generate_call()
            with_idle = await _rss(server)
            await _warm_up_synthesis(api)
            before_speaking = await _rss(server)
            await _speakers(api, server, listeners, [long_text(400 + i) for i in range(speaking_n)])
            await asyncio.sleep(4.0)  # each speaker's look-ahead (3 s of audio) has filled
            speaking = await _rss(server)
            await _speakers(api, server, listeners, [url] * url_n, Type="AudioUrl")
            await asyncio.sleep(2.0)
            streaming = await _rss(server)
    figure.add(Row("idle: server", "MB", value=round(idle.server / MB, 1)))
    figure.add(Row(f"idle: decoder workers ({idle.workers} spare)", "MB", value=round(idle.children / MB, 1)))
    figure.add(Row("idle: total", "MB", value=round(idle.total / MB, 1)))
    figure.add(Row("per idle instance", "MB", value=round((with_idle.total - idle.total) / idle_n / MB, 3)))
    figure.add(
        Row(
            "per speaking instance",
            "MB",
            value=round((speaking.total - before_speaking.total) / speaking_n / MB, 2),
        )
    )
    figure.add(
        Row(
            "per audio-URL stream",
            "MB",
            value=round((streaming.total - speaking.total) / url_n / MB, 1),
            note=f"{streaming.workers} workers",
        )
    )
    figure.details = {
        name: {"server_mb": r.server / MB, "children_mb": r.children / MB, "workers": r.workers}
        for name, r in [
            ("idle", idle),
            ("with_idle_instances", with_idle),
            ("before_speaking", before_speaking),
            ("speaking", speaking),
            ("streaming", streaming),
        ]
    }
    return figure


async def _warm_up_synthesis(api: RpcClient) -> None:
    call = await api.generate_call()
    await api.speak(call.instance_id, medium_text(141))
    await asyncio.sleep(2.0)
    await api.stop(call.instance_id)


async def _speakers(
    api: RpcClient, server: HeraldServer, listeners: ListenerProcess, contents: list[str], **extra: str
) -> None:
    """A call per content, each with a listener, saying it."""
    calls = [await api.generate_call() for _ in contents]
    await listeners.add([server.audio_url(c.channel_id, c.token, SAMPLE_RATE_HZ) for c in calls])
    for call, content in zip(calls, contents, strict=True):
        await api.speak(call.instance_id, content, **extra)
