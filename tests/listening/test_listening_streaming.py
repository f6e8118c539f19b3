"""PocketSphinx recognising an utterance while it is spoken: the words a whole-utterance decode hears,
partial hypotheses on the way, and a worker that is never left holding half an utterance.

Audio is fed in 32 ms windows (what voice activity detection hands over), four times faster than real time.
"""

from __future__ import annotations

import asyncio
import os
import signal
import time
from collections.abc import AsyncIterator

import numpy as np
import pocketsphinx
import pytest
from listening_helpers import Say, silence, to_16k

from herald.listening import pocketsphinx_worker as protocol
from herald.listening.asr import RecognitionError, RecognitionStream
from herald.listening.pocketsphinx_asr import PocketSphinxRecognizer
from herald.media.frames import Pcm

WINDOW = 512
PAD_S = 0.3


@pytest.fixture
async def recognizer() -> AsyncIterator[PocketSphinxRecognizer]:
    recognizer = PocketSphinxRecognizer()
    await recognizer.start()
    yield recognizer
    await recognizer.aclose()


def utterance(pcm: Pcm) -> Pcm:
    return to_16k(np.concatenate([silence(PAD_S), pcm, silence(PAD_S)]))


async def feed(stream: RecognitionStream, audio: Pcm, *, speed: float = 4.0) -> None:
    for start in range(0, len(audio), WINDOW):
        stream.feed(audio[start : start + WINDOW])
        await asyncio.sleep(WINDOW / 16_000 / speed)


@pytest.mark.parametrize(
    ("sentence", "word"),
    [
        ("What time is it?", "time"),
        ("Tell me about the weather.", "weather"),
        ("I would like to order a pizza.", "pizza"),
    ],
)
async def test_a_streamed_utterance_is_heard_as_a_whole_one_is(
    recognizer: PocketSphinxRecognizer, say: Say, sentence: str, word: str
) -> None:
    """Streaming normalises loudness as it goes where a whole decode sees it all: the words may differ a
    little on long or unusual speech (measured: equal on every sentence the tests use), so the key word is
    asserted, as in the whole-utterance tests."""
    audio = utterance(say(sentence))
    partials: list[str] = []
    stream = recognizer.stream(language="en-US", on_partial=partials.append)
    assert stream is not None
    await feed(stream, audio)
    started = time.perf_counter()
    streamed = await stream.finish()
    finish_ms = (time.perf_counter() - started) * 1000
    started = time.perf_counter()
    whole = await recognizer.transcribe(audio)
    whole_ms = (time.perf_counter() - started) * 1000
    print(
        f"\n{sentence!r}: streamed {streamed!r} (finish {finish_ms:.0f} ms),"
        f" whole {whole!r} ({whole_ms:.0f} ms)"
    )
    print(f"  partials: {partials}")

    assert word in streamed.split()
    assert word in whole.split()
    assert partials, "what was heard so far was told while the utterance went on"
    assert len(partials) == len(set(partials)), "only changes are told"
    assert partials[-1].split()[0] == streamed.split()[0]


async def test_silence_streams_to_nothing(recognizer: PocketSphinxRecognizer) -> None:
    stream = recognizer.stream()
    assert stream is not None
    await feed(stream, np.zeros(16_000, dtype=np.int16), speed=20)
    assert await stream.finish() == ""
    empty = recognizer.stream()
    assert empty is not None
    assert await empty.finish() == ""


async def test_a_second_speaker_waits_for_the_worker_and_loses_nothing(
    recognizer: PocketSphinxRecognizer, say: Say
) -> None:
    """One worker, two people talking at once: the second is decoded from its start when the first ends."""
    first, second = recognizer.stream(), recognizer.stream()
    assert first is not None
    assert second is not None
    await asyncio.gather(
        feed(first, utterance(say("What time is it?"))), feed(second, utterance(say("Good morning.")))
    )
    assert "time" in (await first.finish()).split()
    assert "morning" in (await second.finish()).split()


async def test_an_abandoned_stream_does_not_leak_into_the_next_utterance(
    recognizer: PocketSphinxRecognizer, say: Say
) -> None:
    (pid,) = recognizer.worker_pids
    stream = recognizer.stream()
    assert stream is not None
    await feed(stream, utterance(say("Tell me about the weather."))[:16_000])
    stream.cancel()
    await asyncio.sleep(0.05)
    assert recognizer.worker_pids == [pid], "the worker finished the utterance and was kept, not killed"

    text = await recognizer.transcribe(utterance(say("Good morning.")))
    assert "morning" in text.split()
    assert "weather" not in text.split()
    following = recognizer.stream()
    assert following is not None
    await feed(following, utterance(say("What time is it?")))
    assert "weather" not in (await following.finish()).split()


async def test_a_stream_cancelled_while_waiting_for_a_worker_takes_none(
    recognizer: PocketSphinxRecognizer, say: Say
) -> None:
    first, waiting = recognizer.stream(), recognizer.stream()  # one worker: the second waits for it
    assert first is not None
    assert waiting is not None
    waiting.cancel()
    await feed(first, utterance(say("What time is it?")))
    assert "time" in (await first.finish()).split()
    assert "morning" in (await recognizer.transcribe(utterance(say("Good morning.")))).split()


async def test_a_worker_killed_mid_stream_fails_that_utterance_only(
    recognizer: PocketSphinxRecognizer, say: Say
) -> None:
    stream = recognizer.stream()
    assert stream is not None
    audio = utterance(say("Tell me about the weather."))
    await feed(stream, audio[: len(audio) // 2])
    (pid,) = recognizer.worker_pids
    os.kill(pid, signal.SIGKILL)
    await feed(stream, audio[len(audio) // 2 :])
    with pytest.raises(RecognitionError, match="stopped; it was restarted"):
        await stream.finish()
    assert "morning" in (await recognizer.transcribe(utterance(say("Good morning.")))).split()


async def test_no_stream_where_a_whole_utterance_must_fail(say: Say) -> None:
    """Another language, or a recogniser shut down: ``transcribe`` says why."""
    recognizer = PocketSphinxRecognizer()
    assert recognizer.stream(language="fr") is None
    await recognizer.aclose()
    assert recognizer.stream() is None


def test_the_worker_refuses_requests_out_of_order() -> None:
    session = protocol.Session(pocketsphinx.Decoder(loglevel="FATAL"))
    for kind in (protocol.REQ_AUDIO, protocol.REQ_FINISH, b"?"):
        assert session.handle(kind, b"\0\0" * 320)[0] == protocol.MSG_ERROR  # type: ignore[index]
    assert session.handle(protocol.REQ_BEGIN, b"") is None
    assert session.handle(protocol.REQ_AUDIO, b"\0\0" * 3200) == (protocol.MSG_PARTIAL, b"")
    # A whole utterance in the middle of a streamed one closes the streamed one first.
    assert session.handle(protocol.REQ_UTTERANCE, b"\0\0" * 3200) == (protocol.MSG_TEXT, b"")
    assert session.handle(protocol.REQ_FINISH, b"")[0] == protocol.MSG_ERROR  # type: ignore[index]
