"""The embedded, offline recogniser: PocketSphinx with the US English model shipped in its package.

Accuracy is modest (see docs/listening.md): short, common phrases come through; names, rare words and noisy
speech often do not. An OpenAI-compatible service (``openai_asr``) is the choice for real accuracy.

    recognizer = PocketSphinxRecognizer(workers=2)
    await recognizer.start()                      # at server start: ~0.3 s, the models load in parallel
    text = await recognizer.transcribe(ended.audio, language="en")
    await recognizer.aclose()

Decoding runs in worker processes (``pocketsphinx_worker``), not threads: the Python binding holds the GIL
for the whole decode (measured: a 12 s utterance froze the event loop for 1.3 s from a worker thread), so
only another process keeps the loop's 20 ms pacing intact. Each worker holds one decoder (~0.2 s to load),
decodes one utterance at a time at a lower CPU priority than the server, and is replaced if it dies, hangs
or is abandoned mid-decode (its caller cancelled).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import sys
from collections.abc import AsyncIterator, Callable
from typing import Final

import numpy as np

from herald.listening import pocketsphinx_worker as protocol
from herald.listening.asr import (
    SAMPLE_RATE_HZ,
    Pcm16k,
    RecognitionError,
    RecognitionStream,
    language_refusal,
)

_log = logging.getLogger(__name__)

ASR_NICENESS: Final = 10
"""As TTS: on a busy machine recognition may run late, the 20 ms pacer must not."""
MIN_DURATION_S: Final = 0.1
"""Shorter audio holds no word (PocketSphinx cannot even align its start): "" without decoding."""
SILENCE_PEAK: Final = 100
"""Audio that never exceeds this (about -50 dBFS) is silence: "" without decoding. Given digital silence,
PocketSphinx tends to invent a word."""
STREAM_CHUNK_S: Final = 0.2
"""A streamed utterance goes to its worker in parts of at least this much audio: a partial hypothesis five
times a second, and few enough round trips to cost nothing."""
_LANGUAGES: Final = frozenset({"en"})
"""The model the ``pocketsphinx`` package ships is US English."""
_STARTUP_TIMEOUT_S: Final = 30.0
_EXIT_GRACE_S: Final = 2.0


def decode_timeout_s(duration_s: float) -> float:
    """How long one decode may take before its worker counts as hung: generous, ~10x the usual."""
    return 10.0 + 2.0 * duration_s


class _WorkerFailed(Exception):
    pass


class _Worker:
    """One worker process and its pipes; used by one caller at a time."""

    def __init__(self, process: asyncio.subprocess.Process) -> None:
        assert process.stdin is not None
        assert process.stdout is not None
        self.process = process
        self._stdin = process.stdin
        self._stdout = process.stdout

    @property
    def alive(self) -> bool:
        return self.process.returncode is None

    async def read_message(self) -> tuple[bytes, bytes]:
        try:
            kind, length = protocol.HEADER.unpack(await self._stdout.readexactly(protocol.HEADER.size))
            return kind, await self._stdout.readexactly(length)
        except asyncio.IncompleteReadError:
            raise _WorkerFailed("the worker process stopped") from None

    async def ask(
        self, kind: bytes, payload: bytes = b"", *, answer: bytes | None = protocol.MSG_TEXT
    ) -> str:
        """Send one request; the text of its ``answer`` (a message of that type), "" when none is due."""
        self._stdin.write(protocol.HEADER.pack(kind, len(payload)) + payload)
        try:
            await self._stdin.drain()
        except ConnectionError:
            raise _WorkerFailed("the worker process stopped") from None
        if answer is None:
            return ""
        kind, payload = await self.read_message()
        text = payload.decode("utf-8", errors="replace")
        if kind == answer:
            return text
        if kind == protocol.MSG_ERROR:
            raise RecognitionError(f"the built-in recogniser failed: {text[:200]}")
        raise _WorkerFailed("the worker process broke the protocol")

    def kill(self) -> None:
        if self.alive:
            with contextlib.suppress(ProcessLookupError):
                self.process.kill()

    async def stop(self) -> None:
        """Close its input (it exits when idle); kill it if it does not within a grace period."""
        if self.alive:
            self._stdin.close()
            try:
                async with asyncio.timeout(_EXIT_GRACE_S):
                    await self.process.wait()
            except TimeoutError:
                self.kill()
        await self.process.wait()


class PocketSphinxRecognizer:
    """A ``SpeechRecognizer`` for English, offline, on ``workers`` processes (~115 MB each); each decodes
    one utterance at a time, further ones wait their turn.

    ``python`` is the interpreter that runs the workers; it must be able to import ``herald`` and
    ``pocketsphinx``.
    """

    def __init__(
        self, workers: int = 1, *, niceness: int = ASR_NICENESS, python: str = sys.executable
    ) -> None:
        if workers < 1:
            raise ValueError("the recogniser needs at least one worker")
        self._workers = workers
        self._niceness = niceness
        self._python = python
        self._idle: asyncio.Queue[_Worker | None] = asyncio.Queue()  # None: a slot whose worker must start
        self._all: set[_Worker] = set()
        self._start_lock = asyncio.Lock()
        self._started = False
        self._closed = False

    @property
    def languages(self) -> frozenset[str]:
        return _LANGUAGES

    @property
    def worker_pids(self) -> list[int]:
        """The process ids of the workers running now."""
        return sorted(worker.process.pid for worker in self._all if worker.alive)

    async def start(self) -> None:
        """Start every worker and wait until their models are loaded; ``RecognitionError`` if one cannot
        start. Optional: the first ``transcribe`` starts them otherwise (and waits ~0.3 s longer)."""
        async with self._start_lock:
            if self._started:
                return
            if self._closed:
                raise RecognitionError("the speech recogniser is shut down")
            spawned = await asyncio.gather(
                *(self._spawn() for _ in range(self._workers)), return_exceptions=True
            )
            workers = [result for result in spawned if isinstance(result, _Worker)]
            if len(workers) < len(spawned):
                await asyncio.gather(*(worker.stop() for worker in workers))
                raise next(result for result in spawned if isinstance(result, BaseException))
            for worker in workers:
                self._idle.put_nowait(worker)
            self._started = True

    async def transcribe(self, audio: Pcm16k, *, language: str | None = None) -> str:
        """The words PocketSphinx hears in ``audio`` (16 kHz mono int16), lower case; "" for none."""
        refusal = language_refusal(self, language)
        if refusal is not None:
            raise RecognitionError(refusal)
        if self._closed:
            raise RecognitionError("the speech recogniser is shut down")
        if not _holds_speech(len(audio), _peak(audio)):
            return ""
        pcm = np.ascontiguousarray(audio, dtype=np.int16).tobytes()
        async with self._worker() as worker:
            async with asyncio.timeout(decode_timeout_s(len(audio) / SAMPLE_RATE_HZ)):
                text = await worker.ask(protocol.REQ_UTTERANCE, pcm)
        return text.strip()

    def stream(
        self, *, language: str | None = None, on_partial: Callable[[str], None] | None = None
    ) -> RecognitionStream | None:
        """An utterance decoded while it is spoken: ``feed`` it as it comes, ``finish`` when it ended (a
        few tens of ms of work are left then, where ``transcribe`` needs ~0.2x the utterance's length).
        ``None`` when this recogniser cannot take it (shut down, another language): ``transcribe`` it."""
        if self._closed or language_refusal(self, language) is not None:
            return None
        return _Stream(self, on_partial)

    @contextlib.asynccontextmanager
    async def _worker(self) -> AsyncIterator[_Worker]:
        """A worker for one utterance, given back after it; errors are ``RecognitionError``."""
        await self.start()
        worker = await self._acquire()
        keep = False
        try:
            yield worker
            keep = True
        except TimeoutError:
            raise RecognitionError(
                "the built-in recogniser took too long; its worker was restarted"
            ) from None
        except _WorkerFailed as exc:
            if self._closed:
                raise RecognitionError("the speech recogniser is shut down") from None
            _log.warning("PocketSphinx worker %s: %s", worker.process.pid, exc)
            raise RecognitionError(
                "the built-in recogniser's worker process stopped; it was restarted"
            ) from None
        except RecognitionError:
            keep = True  # the worker answered: it is fine
            raise
        finally:
            if keep:
                self._idle.put_nowait(worker)
            else:
                # A worker abandoned mid-request (timeout, cancellation) would answer the next caller with
                # this one's text: it is killed, and its slot starts a fresh one when next needed.
                worker.kill()
                self._idle.put_nowait(None)

    async def aclose(self) -> None:
        """Stop the workers: each finishes the utterance it is decoding (2 s at most, then it is killed and
        its caller gets ``RecognitionError``) and exits; later calls fail with ``RecognitionError``."""
        self._closed = True
        await asyncio.gather(*(worker.stop() for worker in list(self._all)))
        self._all.clear()

    async def _spawn(self) -> _Worker:
        try:
            process = await asyncio.create_subprocess_exec(
                self._python,
                "-m",
                "herald.listening.pocketsphinx_worker",
                str(self._niceness),
                stdin=asyncio.subprocess.PIPE,
                stdout=asyncio.subprocess.PIPE,
            )
        except OSError as exc:
            raise RecognitionError(f"could not start the built-in recogniser: {exc.strerror or exc}") from exc
        worker = _Worker(process)
        # Every worker is kept until it has exited and been reaped, so that aclose() can wait for it.
        self._all = {known for known in self._all if known.alive}
        self._all.add(worker)
        try:
            async with asyncio.timeout(_STARTUP_TIMEOUT_S):
                kind, _ = await worker.read_message()
            if kind != protocol.MSG_READY:
                raise _WorkerFailed("the worker process broke the protocol")
        except (TimeoutError, _WorkerFailed):
            worker.kill()
            await worker.process.wait()
            raise RecognitionError("the built-in recogniser could not load its model (see the log)") from None
        except BaseException:
            worker.kill()
            raise
        return worker

    async def _acquire(self) -> _Worker:
        worker = await self._idle.get()
        if self._closed:
            self._idle.put_nowait(worker)  # wakes the next waiter, which fails the same way
            raise RecognitionError("the speech recogniser is shut down")
        if worker is not None and worker.alive:
            return worker
        try:
            return await self._spawn()
        except BaseException:
            self._idle.put_nowait(None)  # keep the slot: the next caller tries again
            raise


class _Stream:
    """One utterance streamed to a worker: audio goes out in parts of at least ``STREAM_CHUNK_S`` as the
    worker is free for them, each answered with the hypothesis so far (``on_partial`` when it changed)."""

    def __init__(self, recognizer: PocketSphinxRecognizer, on_partial: Callable[[str], None] | None) -> None:
        self._recognizer = recognizer
        self._on_partial = on_partial
        self._unsent: list[Pcm16k] = []
        self._unsent_samples = 0
        self._samples = 0
        self._peak = 0
        self._ended = False
        self._partial = ""
        self._wake = asyncio.Event()
        self._has_worker = False
        self._min_chunk = int(STREAM_CHUNK_S * SAMPLE_RATE_HZ)
        self._task = asyncio.create_task(self._decode(), name="pocketsphinx-stream")
        # A stream cancelled after its decode failed never has its error asked for: that is not a bug.
        self._task.add_done_callback(lambda task: task.cancelled() or task.exception())

    def feed(self, audio: Pcm16k) -> None:
        if self._ended or not len(audio):
            return
        self._unsent.append(audio)
        self._unsent_samples += len(audio)
        self._samples += len(audio)
        self._peak = max(self._peak, _peak(audio))
        if self._unsent_samples >= self._min_chunk:
            self._wake.set()

    async def finish(self) -> str:
        self._ended = True
        self._wake.set()
        text = await self._task
        return text.strip() if _holds_speech(self._samples, self._peak) else ""

    def cancel(self) -> None:
        """Abandon the utterance. A worker it holds finishes what it was sent (the text goes unused) and
        goes back to the pool, rather than being killed and reloaded; one it waits for is not waited for."""
        self._ended = True
        self._on_partial = None
        self._unsent, self._unsent_samples = [], 0
        if self._has_worker:
            self._wake.set()
        else:
            self._task.cancel()

    async def _decode(self) -> str:
        async with self._recognizer._worker() as worker:
            self._has_worker = True
            await worker.ask(protocol.REQ_BEGIN, answer=None)
            while True:
                if not self._ended and self._unsent_samples < self._min_chunk:
                    self._wake.clear()
                    await self._wake.wait()
                    continue
                if self._unsent:
                    chunk = np.ascontiguousarray(np.concatenate(self._unsent), dtype=np.int16)
                    self._unsent, self._unsent_samples = [], 0
                    async with asyncio.timeout(decode_timeout_s(len(chunk) / SAMPLE_RATE_HZ)):
                        partial = await worker.ask(
                            protocol.REQ_AUDIO, chunk.tobytes(), answer=protocol.MSG_PARTIAL
                        )
                    self._heard(partial.strip())
                if self._ended and not self._unsent:
                    break
            async with asyncio.timeout(decode_timeout_s(0.0)):
                return await worker.ask(protocol.REQ_FINISH)

    def _heard(self, partial: str) -> None:
        if partial and partial != self._partial and self._on_partial is not None:
            self._partial = partial
            self._on_partial(partial)


def _holds_speech(samples: int, peak: int) -> bool:
    """Whether audio this long and this loud may hold a word (otherwise "" without decoding)."""
    return samples >= MIN_DURATION_S * SAMPLE_RATE_HZ and peak >= SILENCE_PEAK


def _peak(audio: Pcm16k) -> int:
    return int(np.max(np.abs(audio.astype(np.int32)))) if len(audio) else 0
