"""``SendAIAgentSpeech`` with ``Type=AudioUrl``: Herald fetches the file, decodes it and plays it.

The files come from a local media server on 127.0.0.2, which the server under test is told to trust
(``HERALD_FETCH_ALLOW=127.0.0.2``, as an operator allowlists an intranet media server). Every clean file
is a 440 Hz tone (``herald.testing.audio_files``), so what a caller hears can be checked for its length and
its pitch. Hostile files and URLs must fail that one utterance, with a reason, and nothing else: another
call on the same server keeps speaking without a gap while they are played.

Several calls run at once here (one per format, one per hostile case) to keep the module short; the work
is done once by a module fixture and each test asserts on its part of the results.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import time
from collections.abc import Awaitable, Callable, Iterator
from dataclasses import dataclass, field
from typing import Any, TypeVar

import numpy as np
import pytest
from alibabacloud_tea_openapi.exceptions import ClientException

from herald.testing import audio_files
from herald.testing.audio_client import MSG_AGENT_STATE, MSG_ERROR, AudioRecorder
from herald.testing.media_server import Media, MediaServer
from herald.testing.server import HeraldServer

pytestmark = pytest.mark.e2e

FETCH_HOST = "127.0.0.2"
MSG_SPEECH_OUTCOME = 1900
DURATION_TOLERANCE_S = 0.3
TONE_SECONDS = 1.2
# How long Herald waits for the next bytes of a download ([fetch] read_timeout_s; 10 s by default),
# shortened here so the slow-drip case is quick.
FETCH_READ_TIMEOUT_S = 1.5

T = TypeVar("T")


@pytest.fixture(scope="module")
def media() -> Iterator[MediaServer]:
    with MediaServer(FETCH_HOST) as running:
        yield running


@pytest.fixture(scope="module")
def loopback_media() -> Iterator[MediaServer]:
    """A media server on 127.0.0.1, which Herald must never reach: it is loopback and not allowlisted."""
    with MediaServer("127.0.0.1") as running:
        running.file("/tone.wav", audio_files.sine_wav(1.0), "audio/wav")
        yield running


@pytest.fixture(scope="module")
def server() -> Iterator[HeraldServer]:
    """This module's server trusts the media server's address (and only that)."""
    with HeraldServer(
        check_exit=False,
        env={"HERALD_FETCH_ALLOW": FETCH_HOST},
        config=f"[fetch]\nread_timeout_s = {FETCH_READ_TIMEOUT_S}\n",
    ) as running:
        yield running


def run_in_own_loop(make: Callable[[], Awaitable[T]]) -> T:
    """Run a coroutine to its end in a loop of its own (module fixtures are synchronous)."""

    async def main() -> T:
        return await make()

    with concurrent.futures.ThreadPoolExecutor(1) as pool:
        return pool.submit(asyncio.run, main()).result()


@dataclass
class Played:
    """How one pushed audio URL ended, as its listener saw it."""

    name: str
    outcome: dict[str, Any] | None = None
    """The ``1900`` data, or ``None`` if none came in time."""
    errors: list[dict[str, Any]] = field(default_factory=list)
    """``1000`` messages about this request."""
    refused: dict[str, Any] | None = None
    """The error envelope if the API refused the request at once."""
    heard_s: float = 0.0
    pitch_hz: float | None = None
    elapsed_s: float = 0.0
    """From the request to its outcome."""
    first_audible_s: float | None = None
    transcript: str = ""


async def say_url(server: HeraldServer, instance_id: str, url: str, **extra: str) -> str:
    params = {"InstanceId": instance_id, "Text": url, "Type": "AudioUrl", **extra}
    body = await asyncio.to_thread(server.call, "SendAIAgentSpeech", params)
    request_id: str = body["RequestId"]
    return request_id


async def say_text(server: HeraldServer, instance_id: str, text: str) -> str:
    body = await asyncio.to_thread(
        server.call, "SendAIAgentSpeech", {"InstanceId": instance_id, "Text": text}
    )
    request_id: str = body["RequestId"]
    return request_id


def dominant_hz(pcm: np.ndarray, rate_hz: int) -> float | None:
    if len(pcm) < rate_hz // 10:
        return None
    spectrum = np.abs(np.fft.rfft(pcm.astype(np.float64) * np.hanning(len(pcm))))
    return float(np.argmax(spectrum) * rate_hz / len(pcm))


async def play(
    server: HeraldServer, rec: AudioRecorder, instance_id: str, name: str, url: str, timeout_s: float = 40.0
) -> Played:
    """Push ``url`` on a joined call and wait for its outcome; never raises for the server's misdeeds."""
    played = Played(name)
    mark = rec.mark()
    started = time.monotonic()
    try:
        request_id = await say_url(server, instance_id, url)
    except ClientException as exc:
        played.refused = exc.data if isinstance(exc.data, dict) else {"Code": exc.code}
        played.elapsed_s = time.monotonic() - started
        return played
    try:
        message = await rec.wait_for_message(
            MSG_SPEECH_OUTCOME,
            lambda m: m.data.get("requestId") == request_id,
            after=mark,
            timeout_s=timeout_s,
        )
        played.outcome = message.data
        played.elapsed_s = message.received_s - started
    except (TimeoutError, ConnectionError):
        played.elapsed_s = time.monotonic() - started
    end = message.index if played.outcome is not None else None
    played.errors = [
        m.data for m in rec.messages(MSG_ERROR, after=mark) if m.data.get("requestId") == request_id
    ]
    played.heard_s = rec.heard_s(after=mark, before=end)
    loud = rec.nonsilent_frames(after=mark, before=end)
    if loud:
        played.first_audible_s = loud[0].received_s
        played.pitch_hz = dominant_hz(np.concatenate([f.pcm for f in loud]), rec.sample_rate_hz)
    played.transcript = rec.describe(after=mark)
    return played


# -- every format --------------------------------------------------------------------------------------

FORMATS: dict[str, tuple[Callable[[], bytes], str]] = {
    "wav": (lambda: audio_files.sine_wav(TONE_SECONDS), "audio/wav"),
    "wav-stereo-44k1": (lambda: audio_files.sine_wav(TONE_SECONDS, 44_100, 2), "audio/wav"),
    "wav-8k": (lambda: audio_files.sine_wav(TONE_SECONDS, 8_000), "audio/wav"),
    "mp3": (lambda: audio_files.encode("mp3", TONE_SECONDS), "audio/mpeg"),
    "mp3-stereo-44k1": (lambda: audio_files.encode("mp3", TONE_SECONDS, 44_100, 2), "audio/mpeg"),
    "ogg-opus": (lambda: audio_files.encode("ogg-opus", TONE_SECONDS), "audio/ogg"),
    "ogg-opus-stereo": (lambda: audio_files.encode("ogg-opus", TONE_SECONDS, 48_000, 2), "audio/ogg"),
    "ogg-vorbis-stereo-44k1": (
        lambda: audio_files.encode("ogg-vorbis", TONE_SECONDS, 44_100, 2),
        "audio/ogg",
    ),
    "flac": (lambda: audio_files.encode("flac", TONE_SECONDS), "audio/flac"),
    "flac-stereo-44k1": (lambda: audio_files.encode("flac", TONE_SECONDS, 44_100, 2), "audio/flac"),
    "aac-adts": (lambda: audio_files.encode("aac-adts", TONE_SECONDS), "audio/aac"),
    "aac-adts-stereo-44k1": (lambda: audio_files.encode("aac-adts", TONE_SECONDS, 44_100, 2), "audio/aac"),
    "m4a": (lambda: audio_files.encode("m4a", TONE_SECONDS), "audio/mp4"),
    "m4a-stereo-44k1": (lambda: audio_files.encode("m4a", TONE_SECONDS, 44_100, 2), "audio/mp4"),
    "m4a-faststart": (lambda: audio_files.encode("m4a-faststart", TONE_SECONDS), "audio/mp4"),
}


@pytest.fixture(scope="module")
def formats_played(server, api, media) -> dict[str, Played]:
    """Every format, each on a call of its own, all at once."""
    urls = {}
    for name, (make, content_type) in FORMATS.items():
        urls[name] = media.file(f"/formats/{name}", make(), content_type)
    calls = {name: api.generate_call() for name in FORMATS}

    async def one(name: str) -> Played:
        call = calls[name]
        async with AudioRecorder(server.audio_url(call.channel_id, call.token)) as rec:
            await rec.wait_for_message(MSG_AGENT_STATE, timeout_s=10)
            return await play(server, rec, call.instance_id, name, urls[name])

    async def everything() -> dict[str, Played]:
        results = await asyncio.gather(*(one(name) for name in FORMATS))
        return {p.name: p for p in results}

    try:
        return run_in_own_loop(everything)
    finally:
        for call in calls.values():
            api.stop(call.instance_id)


@pytest.mark.parametrize("name", list(FORMATS))
def test_each_format_is_heard_with_its_duration(formats_played, name):
    played = formats_played[name]
    assert played.refused is None, played.refused
    assert played.outcome is not None, f"no outcome\n{played.transcript}"
    assert played.outcome["state"] == "finished", f"{played.outcome}\n{played.transcript}"
    assert abs(played.heard_s - TONE_SECONDS) <= DURATION_TOLERANCE_S, (
        f"heard {played.heard_s:.2f} s of a {TONE_SECONDS} s file\n{played.transcript}"
    )
    assert abs(played.outcome["playedMs"] / 1000 - TONE_SECONDS) <= DURATION_TOLERANCE_S, played.outcome
    assert played.pitch_hz is not None
    assert abs(played.pitch_hz - audio_files.TONE_HZ) < 15, f"the tone came out at {played.pitch_hz:.0f} Hz"
    assert played.errors == [], played.errors


async def test_a_slow_download_starts_playing_before_it_ends(server, api, media, call):
    seconds = 4.0
    data = audio_files.sine_wav(seconds, 16_000)  # 128 kB, sent at about twice real time
    url = media.add(
        "/slow/long.wav", Media(data, "audio/wav", chunk_bytes=16_384, delay_s=0.25, chunked=True)
    )
    async with AudioRecorder(server.audio_url(call.channel_id, call.token)) as rec:
        await rec.wait_for_message(MSG_AGENT_STATE, timeout_s=10)
        played = await play(server, rec, call.instance_id, "slow", url)
    delivery = await asyncio.to_thread(media.wait_for_delivery, "/slow/long.wav", timeout_s=10)

    assert played.outcome is not None, played.transcript
    assert played.outcome["state"] == "finished", played.outcome
    assert delivery.completed, delivery
    assert delivery.last_byte_s - delivery.started_s >= 1.5, "the media server did not send slowly"
    assert played.first_audible_s is not None, played.transcript
    assert played.first_audible_s < delivery.last_byte_s, (
        f"first audio {played.first_audible_s - delivery.started_s:.2f} s after the request, "
        f"the last byte at {delivery.last_byte_s - delivery.started_s:.2f} s: it waited for the whole file"
    )
    assert abs(played.heard_s - seconds) <= DURATION_TOLERANCE_S, played.transcript


# -- refused before anything is fetched -----------------------------------------------------------------


@pytest.mark.parametrize(
    "url",
    [
        "http://10.255.255.1/x.wav",
        "http://192.168.1.1/x.wav",
        "http://169.254.169.254/latest/meta-data",
        "http://127.0.0.1:9/x.wav",
        "http://[::1]/x.wav",
        "http://[::ffff:127.0.0.1]/x.wav",
        "ftp://example.com/x.wav",
        "file:///etc/passwd",
        "not a url at all",
        "http://",
        "http://user:secret@example.com/x.wav",
    ],
)
def test_bad_or_private_urls_are_invalid_at_once(server, api, call, url):
    started = time.monotonic()
    exc = api.error(
        server.call, "SendAIAgentSpeech", {"InstanceId": call.instance_id, "Text": url, "Type": "AudioUrl"}
    )
    assert (exc.code, exc.status_code) == ("InvalidParameter", 400), exc.data
    assert "Text" in exc.data["Message"], exc.data
    # Connecting to an unroutable address would take seconds: the answer came before any attempt.
    assert time.monotonic() - started < 2.0


# -- hostile files and hosts, while another call speaks ----------------------------------------------

VICTIM_TEXT = " ".join(
    [
        "This call keeps talking while another one is fed broken files.",
        "Every word of it should arrive on time, with no gap at all.",
        "The weather today is lovely, with a light breeze from the west.",
        "Trains leave on time, and the coffee in the station is hot.",
        "A good listener hears every sentence, one after the other.",
        "We keep going, because the test needs us to be speaking all along.",
        "Numbers help too: one, two, three, four, five, six, seven, eight.",
        "And the alphabet: a, b, c, d, e, f, g, h, i, j, k, l, m, n, o, p.",
        "Thank you for listening so patiently to all of this.",
    ]
)


@dataclass
class HostileRun:
    played: dict[str, Played]
    victim_gaps_s: list[float]
    victim_frames: int
    victim_window_s: float
    victim_heard_s: float
    victim_outcome: dict[str, Any] | None
    api_latencies_s: list[float]
    loopback_requests: int
    transcript: str


@pytest.fixture(scope="module")
def hostile(server, api, media, loopback_media) -> HostileRun:
    full = audio_files.encode("mp3", 2.0)
    cases = {
        "truncated": media.file("/hostile/truncated.mp3", audio_files.truncated(full, 0.5), "audio/mpeg"),
        "garbage": media.file("/hostile/garbage.mp3", audio_files.garbage(50_000), "audio/mpeg"),
        "huge-header": media.file(
            "/hostile/huge.wav", audio_files.wav_header_claiming(10, 10_000_000, 2), "audio/wav"
        ),
        "missing": media.url("/hostile/no-such-file.wav"),
        "redirect-to-loopback": media.redirect("/hostile/hop", loopback_media.url("/tone.wav")),
        "host-name": f"http://localhost:{loopback_media.port}/tone.wav",
        "slow-drip": media.add(
            "/hostile/drip.wav",
            Media(
                audio_files.sine_wav(5.0), "audio/wav", chunk_bytes=4_096, delay_s=FETCH_READ_TIMEOUT_S * 3
            ),
        ),
    }
    victim, target = api.generate_call(), api.generate_call()

    async def everything() -> HostileRun:
        async with (
            AudioRecorder(server.audio_url(victim.channel_id, victim.token)) as vrec,
            AudioRecorder(server.audio_url(target.channel_id, target.token)) as trec,
        ):
            await vrec.wait_for_message(MSG_AGENT_STATE, timeout_s=10)
            await trec.wait_for_message(MSG_AGENT_STATE, timeout_s=10)
            vmark = vrec.mark()
            victim_id = await say_text(server, victim.instance_id, VICTIM_TEXT)
            await vrec.wait_for_speech(1.0, after=vmark, timeout_s=30)

            latencies: list[float] = []
            stop = asyncio.Event()

            async def keep_asking() -> None:
                while not stop.is_set():
                    asked = time.monotonic()
                    await asyncio.to_thread(api.describe, victim.instance_id)
                    latencies.append(time.monotonic() - asked)
                    with contextlib.suppress(TimeoutError):
                        await asyncio.wait_for(stop.wait(), 0.5)

            asker = asyncio.create_task(keep_asking())
            window_start = vrec.mark()
            started = time.monotonic()
            played: dict[str, Played] = {}
            for name, url in cases.items():
                played[name] = await play(server, trec, target.instance_id, name, url)
            window_s = time.monotonic() - started
            window_end = vrec.mark()
            stop.set()
            await asker

            frames = vrec.frames(after=window_start, before=window_end + 1)
            arrivals = np.array([f.received_s for f in frames])
            victim_outcomes = [
                m.data for m in vrec.messages(MSG_SPEECH_OUTCOME) if m.data.get("requestId") == victim_id
            ]
            return HostileRun(
                played=played,
                victim_gaps_s=sorted(np.diff(arrivals).tolist(), reverse=True)[:5]
                if len(arrivals) > 1
                else [],
                victim_frames=len(frames),
                victim_window_s=window_s,
                victim_heard_s=vrec.heard_s(after=window_start, before=window_end + 1),
                victim_outcome=victim_outcomes[0] if victim_outcomes else None,
                api_latencies_s=latencies,
                loopback_requests=len(loopback_media.deliveries()),
                transcript=vrec.describe(after=window_start),
            )

    try:
        return run_in_own_loop(everything)
    finally:
        for call in (victim, target):
            api.stop(call.instance_id)


def failed_with_reason(played: Played) -> None:
    """The utterance failed, and said why both in its outcome (1900) and in an error message (1000)."""
    assert played.refused is None, f"refused up front: {played.refused}"
    assert played.outcome is not None, f"no outcome within the wait\n{played.transcript}"
    assert played.outcome["state"] == "failed", f"{played.outcome}\n{played.transcript}"
    assert played.outcome["reason"], played.outcome
    assert len(played.errors) == 1, f"expected one 1000 message: {played.errors}"
    assert played.errors[0].get("code") == "SpeechFailed", played.errors
    assert played.errors[0].get("message"), played.errors


def test_truncated_file_plays_what_it_has_then_finishes(hostile):
    # The decoder's documented choice: what decodes before the cut is played and the utterance ends normally.
    played = hostile.played["truncated"]
    assert played.outcome is not None, played.transcript
    assert played.outcome["state"] == "finished", f"{played.outcome}\n{played.transcript}"
    assert 0.5 <= played.heard_s <= 1.4, f"heard {played.heard_s:.2f} s of the first half of 2 s"
    assert played.errors == []


def test_garbage_fails_with_a_reason(hostile):
    played = hostile.played["garbage"]
    failed_with_reason(played)
    assert played.heard_s <= 0.1, played.transcript


def test_wav_header_claiming_hours_at_a_huge_rate_fails_fast(hostile):
    played = hostile.played["huge-header"]
    failed_with_reason(played)
    assert played.elapsed_s < 5.0, f"took {played.elapsed_s:.1f} s"
    assert played.heard_s <= 0.2, played.transcript


def test_missing_file_fails_with_the_http_status(hostile):
    played = hostile.played["missing"]
    failed_with_reason(played)
    assert "404" in played.outcome["reason"], played.outcome


def test_redirect_to_loopback_fails_and_never_connects(hostile):
    played = hostile.played["redirect-to-loopback"]
    failed_with_reason(played)
    reason = played.outcome["reason"].lower()
    assert "loopback" in reason or "redirect" in reason, played.outcome
    assert hostile.loopback_requests == 0, "Herald fetched from 127.0.0.1"


def test_host_name_of_a_loopback_address_is_refused(hostile):
    played = hostile.played["host-name"]
    if played.refused is not None:
        assert played.refused["Code"] == "InvalidParameter", played.refused
    else:
        failed_with_reason(played)
        assert "loopback" in played.outcome["reason"].lower() or "127.0.0.1" in played.outcome["reason"]
    assert hostile.loopback_requests == 0, "Herald fetched from 127.0.0.1"


def test_slow_drip_fails_by_timeout(hostile):
    """A server that sends a byte now and then is given up after the read timeout."""
    played = hostile.played["slow-drip"]
    failed_with_reason(played)
    assert played.elapsed_s < FETCH_READ_TIMEOUT_S + 10, f"took {played.elapsed_s:.1f} s"
    assert played.heard_s <= 0.5, played.transcript


def test_another_call_keeps_speaking_without_a_gap_meanwhile(hostile):
    assert hostile.victim_window_s > 2, "the hostile cases took no time: nothing was tested"
    assert hostile.victim_gaps_s, hostile.transcript
    assert hostile.victim_gaps_s[0] <= 0.2, f"longest gaps between frames: {hostile.victim_gaps_s}"
    expected = hostile.victim_window_s / 0.02
    assert hostile.victim_frames >= 0.9 * expected, f"{hostile.victim_frames} frames in {expected:.0f} slots"
    heard, window = hostile.victim_heard_s, hostile.victim_window_s
    assert heard >= 0.5 * window, f"only {heard:.1f} s of speech in {window:.1f} s\n{hostile.transcript}"
    assert hostile.victim_outcome is None or hostile.victim_outcome["state"] != "failed", (
        hostile.victim_outcome
    )
    assert hostile.api_latencies_s, "the server was never asked"
    assert max(hostile.api_latencies_s) < 2.0, f"slowest answers: {sorted(hostile.api_latencies_s)[-3:]}"
