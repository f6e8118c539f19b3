"""Figure 1, first audio: from the ``SendAIAgentSpeech`` answer to the first audible frame at a listener.

Every run is a new call with a listener (16 kHz) that has already heard silence, so nothing is playing,
and a text said for the first time (the server caches phrases). Beside each run, in this process, the
engine's own time to synthesise the text's first piece (``split_for_streaming(text)[0]``, which the
server synthesises first): the floor. Speech audio starts with some quiet of its own (the lead-in), which
the listener hears as silence; the subtitle (``1002``) marks the first frame of the speech, so the lead-in
as heard is the span from that frame to the first audible one, and the server's own share is
``first speech frame - floor``. Arrival times include up to 20 ms of pacing: frames leave every 20 ms.
"""

from __future__ import annotations

import contextlib
import io
import statistics
import time
from collections.abc import Callable
from dataclasses import dataclass

import av
import httpx

from bench.harness import Options, rpc_for, running_server, wait_idle
from bench.rpc import HttpError, RpcClient
from bench.stats import Figure, Goal, Row
from bench.texts import cached_phrase, long_text, medium_text, short_text
from herald.speech.piper_engine import PiperEngine
from herald.speech.text import split_for_streaming
from herald.speech.tts import VoiceSettings
from herald.testing.audio_client import SILENCE_RMS, AudioRecorder
from herald.testing.audio_files import sine_wav
from herald.testing.media_server import MediaServer
from herald.testing.server import HeraldServer

SAMPLE_RATE_HZ = 16_000
MSG_SUBTITLE = 1002
MSG_OUTCOME = 1900
FLOOR_REPEATS = 3
GOAL_OVERHEAD_MS = 30.0
TEXTS: dict[str, Callable[[int], str]] = {"short": short_text, "medium": medium_text, "long": long_text}
SEED_OFFSET = {"short": 0, "medium": 0, "long": 40}  # medium and long texts open differently


@dataclass(frozen=True)
class Heard:
    """One run, in ms after the ``SendAIAgentSpeech`` answer arrived."""

    first_audible_ms: float
    first_speech_frame_ms: float | None
    """The frame right after the speech's first subtitle (``None``: audio URLs have no subtitles)."""
    answer_ms: float
    """How long the request itself took (sent to answered)."""


class Engine:
    """Piper in this process, as the server runs it (one inference thread), to time the floor."""

    def __init__(self) -> None:
        self._engine = PiperEngine.load()
        self._engine.warm_up()
        self._voice = VoiceSettings(self._engine.voice_ids[0])

    def first_piece_ms(self, text: str) -> float:
        """Median time to synthesise the text's first piece, over ``FLOOR_REPEATS`` runs."""
        piece = split_for_streaming(text)[0]
        times = []
        for _ in range(FLOOR_REPEATS):
            start = time.perf_counter()
            self._engine.synthesize(piece, self._voice)
            times.append((time.perf_counter() - start) * 1000)
        return statistics.median(times)


async def url_floor_ms(client: httpx.AsyncClient, url: str) -> float:
    """The least any server could do before a file's first audio: fetch it (from this process, as the
    server would, over a kept connection) and decode its first frame to 48 kHz with PyAV, in process.
    Median of ``FLOOR_REPEATS``."""
    times = []
    for _ in range(FLOOR_REPEATS):
        start = time.perf_counter()
        body = (await client.get(url)).content
        with av.open(io.BytesIO(body), mode="r") as container:
            resampler = av.AudioResampler(format="s16", layout="mono", rate=48_000)
            frame = next(container.decode(audio=0))
            resampler.resample(frame)
        times.append((time.perf_counter() - start) * 1000)
    return statistics.median(times)


async def measure(
    api: RpcClient, server: HeraldServer, content: str, *, prime: bool = False, **extra: str
) -> Heard:
    """Say ``content`` on a new call (with ``prime``: say it once before, to the end) and time the answer."""
    call = await api.generate_call()
    try:
        async with AudioRecorder(server.audio_url(call.channel_id, call.token, SAMPLE_RATE_HZ)) as rec:
            await rec.wait_for_frames(3, timeout_s=10)  # joined, and hearing silence
            if prime:
                mark = rec.mark()
                await api.speak(call.instance_id, content, **extra)
                await rec.wait_for_message(MSG_OUTCOME, after=mark, timeout_s=30)
                await rec.wait_for_frames(3, after=rec.mark(), timeout_s=10)
            mark = rec.mark()
            sent_s = time.monotonic()
            answered_s = await api.speak(call.instance_id, content, **extra)
            await rec.wait_until(
                lambda: bool(rec.nonsilent_frames(after=mark)), timeout_s=20, what="audible speech"
            )
            audible = rec.nonsilent_frames(after=mark)[0]
            subtitles = rec.messages(MSG_SUBTITLE, after=mark)
            first_frame = rec.frames(after=subtitles[0].index)[0] if subtitles else None
    finally:
        with contextlib.suppress(HttpError):
            await api.stop(call.instance_id)
        await wait_idle(server.pid)  # the next run (and the next floor) starts on a quiet machine
    return Heard(
        first_audible_ms=(audible.received_s - answered_s) * 1000,
        first_speech_frame_ms=None if first_frame is None else (first_frame.received_s - answered_s) * 1000,
        answer_ms=(answered_s - sent_s) * 1000,
    )


async def run(options: Options) -> Figure:
    runs = 3 if options.quick else 8
    figure = Figure(
        "first_audio",
        "First audio: SendAIAgentSpeech answer -> first audible frame at a WebSocket listener (ms)",
        f"{runs} runs per text, each a new call and a text said for the first time; floor = Piper's time to "
        "synthesise the first piece in the bench process (median of 3); lead-in = quiet at the start of the "
        f"speech as heard; overhead = first speech frame - floor. Audible: RMS > {SILENCE_RMS:.0f}. "
        "Arrivals include up to 20 ms of pacing.",
    )
    engine = Engine()
    wav = sine_wav(2.0, 16_000)
    with MediaServer() as media, running_server(env={"HERALD_FETCH_ALLOW": media.host}) as server:
        async with rpc_for(server) as api:
            await measure(api, server, medium_text(142))  # warm-up: first calls pay for imports, caches
            every: list[Heard] = []
            for kind, make in TEXTS.items():
                heard, floors = [], []
                for i in range(runs):
                    text = make(i + SEED_OFFSET[kind])
                    floors.append(engine.first_piece_ms(text))  # just before, on the same idle machine
                    heard.append(await measure(api, server, text))
                _text_rows(figure, kind, heard, floors)
                every.extend(heard)
            cached = [await measure(api, server, cached_phrase(i), prime=True) for i in range(runs)]
            figure.add(Row("cached phrase: first audible", "ms", [h.first_audible_ms for h in cached]))
            figure.add(
                Row(
                    "cached phrase: first speech frame",
                    "ms",
                    [h.first_speech_frame_ms for h in cached if h.first_speech_frame_ms is not None],
                    goal=Goal("median", "<=", GOAL_OVERHEAD_MS),
                    note="floor 0",
                )
            )
            urls, url_floors = [], []
            async with httpx.AsyncClient() as fetcher:
                for i in range(runs):
                    url = media.file(f"/tone-{i}.wav", wav, "audio/wav")
                    url_floors.append(await url_floor_ms(fetcher, media.file(f"/floor-{i}.wav", wav)))
                    urls.append(await measure(api, server, url, Type="AudioUrl"))
            url_audible = [h.first_audible_ms for h in urls]
            figure.add(
                Row("audio URL (WAV): first audible", "ms", url_audible, note="the tone starts at once")
            )
            figure.add(Row("audio URL: floor (fetch + decode the first frame)", "ms", url_floors))
            figure.add(
                Row(
                    "audio URL: overhead (first audible - floor)",
                    "ms",
                    [heard - floor for heard, floor in zip(url_audible, url_floors, strict=True)],
                    goal=Goal("median", "<=", GOAL_OVERHEAD_MS),
                )
            )
            every.extend([*cached, *urls])
    figure.add(Row("SendAIAgentSpeech round trip (all runs)", "ms", [h.answer_ms for h in every]))
    return figure


def _text_rows(figure: Figure, kind: str, heard: list[Heard], floors: list[float]) -> None:
    figure.add(Row(f"{kind}: first audible", "ms", [h.first_audible_ms for h in heard]))
    figure.add(Row(f"{kind}: floor (engine, first piece)", "ms", floors))
    # (first audible, first speech frame, floor) of the runs whose subtitle was seen (all, normally)
    runs = [
        (h.first_audible_ms, h.first_speech_frame_ms, floor)
        for h, floor in zip(heard, floors, strict=True)
        if h.first_speech_frame_ms is not None
    ]
    figure.add(Row(f"{kind}: lead-in heard", "ms", [audible - frame for audible, frame, _ in runs]))
    figure.add(
        Row(
            f"{kind}: overhead (speech frame - floor)",
            "ms",
            [frame - floor for _, frame, floor in runs],
            goal=Goal("median", "<=", GOAL_OVERHEAD_MS),
        )
    )
    figure.add(Row(f"{kind}: speech frame / floor", "x", [frame / floor for _, frame, floor in runs]))
