"""Decoding audio files into canonical PCM, in disposable worker processes, without blocking the event loop.

    async with DecoderPool() as pool:
        async for pcm in pool.decode(download.chunks()):  # 48 kHz mono int16, 100 ms per chunk
            ...

Each job runs in its own ``python -m herald.media.decode_worker`` process, fed the file's bytes as they
arrive and killed as soon as the job ends, so a decoder crash, hang or memory blow-up on hostile input costs
one utterance, never the server; a process never serves a second job. ``spare`` warm workers wait ready to
hide the ~0.1 s a fresh one takes to start. Every failure of a job is a ``DecodeError`` whose ``reason``
is short and fit to show to the caller, except a failure of the input iterator, which propagates as is.

Truncated files: what decodes before the cut is played and the job ends normally (a download cut short
should still say most of its piece); a file cut so early that nothing decodes fails ("the file is
truncated: ..."), as does an M4A whose index was at the lost end.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import signal
import sys
from collections import deque
from collections.abc import AsyncGenerator, AsyncIterator
from dataclasses import asdict, dataclass
from types import TracebackType

import numpy as np

from herald.media import decode_worker as protocol
from herald.media.frames import SAMPLE_RATE_HZ, Pcm

_log = logging.getLogger(__name__)

_STARTUP_TIMEOUT_S = 30.0
_EXIT_GRACE_S = 2.0  # after its output ends, how long a worker may take to exit before it is killed
_READ_LIMIT_BYTES = 32 * 1024  # read-ahead of worker output: with the pipe, well under a second of PCM
_WRITE_PIECE_BYTES = 64 * 1024  # input goes to the worker in pieces this big, each one awaited


@dataclass(frozen=True)
class DecodeLimits:
    """Bounds on one decoding job; breaking one fails the job with a ``DecodeError`` that names it."""

    max_duration_s: float = 600.0
    """Longer audio fails when decoding passes this point (what came before has been yielded)."""
    cpu_s: int = 60
    """CPU time of the worker process (``RLIMIT_CPU``)."""
    memory_bytes: int = 1_000_000_000
    """Address space of the worker process (``RLIMIT_AS``), its ~120 MB of Python and FFmpeg included."""
    wall_s: float = 180.0
    """How long the consumer may wait on the job in all: a hung worker or stalled input. Time the consumer
    spends holding a chunk (playing it, say) does not count."""
    max_sample_rate_hz: int = 384_000
    max_channels: int = 32

    def __post_init__(self) -> None:
        for name, value in asdict(self).items():
            if value <= 0:
                raise ValueError(f"DecodeLimits.{name} must be positive, got {value}")


class DecodeError(Exception):
    """A file could not be decoded; ``reason`` says why in a few words ("not an audio file (...)")."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


class _Worker:
    """One worker process and the pipes to it."""

    def __init__(self, process: asyncio.subprocess.Process) -> None:
        assert process.stdin is not None
        assert process.stdout is not None
        self.process = process
        self.pid = process.pid
        self._stdin = process.stdin
        self._stdout = process.stdout
        self.stopped_by_pool = False

    @property
    def alive(self) -> bool:
        return self.process.returncode is None

    async def read_message(self) -> tuple[bytes, bytes] | None:
        """The next message, or ``None`` if the output ended (cleanly or not) before a whole one."""
        try:
            header = await self._stdout.readexactly(protocol.HEADER.size)
            kind, length = protocol.HEADER.unpack(header)
            if length > protocol.MAX_PAYLOAD_BYTES:
                raise DecodeError("the decoder broke the protocol (oversized message)")
            return kind, await self._stdout.readexactly(length)
        except asyncio.IncompleteReadError:
            return None

    async def write(self, data: bytes | memoryview) -> bool:
        """Send input bytes, waiting while the pipe is full; ``False`` once the worker stopped reading."""
        if self._stdin.is_closing():
            return False
        self._stdin.write(data)
        try:
            await self._stdin.drain()
        except ConnectionError:  # the worker exited: finished, failed or crashed, as its output will say
            return False
        return True

    def close_input(self) -> None:
        self._stdin.close()

    def kill(self) -> None:
        if self.alive:
            with contextlib.suppress(ProcessLookupError):
                self.process.kill()

    async def exit_status(self) -> int | None:
        """The exit status once the worker exits by itself shortly; ``None`` if it had to be killed."""
        try:
            async with asyncio.timeout(_EXIT_GRACE_S):
                return await self.process.wait()
        except TimeoutError:
            self.kill()
            return None

    async def reap(self) -> None:
        """Kill the worker (if still running) and wait until it is gone, pipes closed and process reaped."""
        self.kill()
        self._stdin.close()
        await self._stdout.read()  # drain to the end, so that asyncio sees the pipe close
        await self.process.wait()


class DecoderPool:
    """Decodes audio files of any common format to canonical PCM in worker processes, ``spare`` kept warm.

    ``python`` is the interpreter that runs the workers; it must be able to import ``herald`` and ``av``.
    """

    def __init__(
        self, limits: DecodeLimits = DecodeLimits(), *, spare: int = 1, python: str = sys.executable
    ) -> None:
        if spare < 0:
            raise ValueError(f"spare must be 0 or more, got {spare}")
        self.limits = limits
        self._spare = spare
        self._python = python
        self._config = json.dumps(
            {
                "max_duration_s": limits.max_duration_s,
                "max_sample_rate_hz": limits.max_sample_rate_hz,
                "max_channels": limits.max_channels,
                "cpu_s": limits.cpu_s,
                "memory_bytes": limits.memory_bytes,
            }
        )
        self._ready: deque[_Worker] = deque()
        self._starting: set[asyncio.Task[None]] = set()
        self._busy: set[_Worker] = set()
        self._closed = False

    @property
    def busy_pids(self) -> frozenset[int]:
        """Process ids of the workers running a job (for monitoring and tests)."""
        return frozenset(worker.pid for worker in self._busy)

    @property
    def spare_pids(self) -> frozenset[int]:
        """Process ids of the warm workers waiting for a job."""
        return frozenset(worker.pid for worker in self._ready)

    async def start(self) -> None:
        """Start the spare workers and wait until they are warm; ``DecodeError`` if one cannot start."""
        missing = self._spare - len(self._ready)
        results = await asyncio.gather(*(self._spawn() for _ in range(missing)), return_exceptions=True)
        for result in results:
            if isinstance(result, _Worker):
                self._ready.append(result)
        for result in results:
            if isinstance(result, BaseException):
                raise result

    async def close(self) -> None:
        """Kill every worker, spare or busy; the jobs still running fail with a ``DecodeError``."""
        self._closed = True
        for task in self._starting:
            task.cancel()
        await asyncio.gather(*self._starting, return_exceptions=True)
        for worker in self._busy:
            worker.stopped_by_pool = True
            worker.kill()  # its job reaps it
        spares = list(self._ready)
        self._ready.clear()
        await asyncio.gather(*(worker.reap() for worker in spares))

    async def __aenter__(self) -> DecoderPool:
        await self.start()
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self.close()

    async def decode(self, data: AsyncIterator[bytes]) -> AsyncGenerator[Pcm, None]:
        """Decode the file whose bytes ``data`` yields, yielding 48 kHz mono int16 chunks of ~100 ms.

        ``data`` is read concurrently, as fast as the worker takes it, and closed when the job ends.
        Closing this generator early (``aclose``, cancellation) kills the worker at once. Raises
        ``DecodeError``, or whatever ``data`` raised.
        """
        try:
            if self._closed:
                raise DecodeError("the decoder pool is closed")
            worker = await self._acquire()
        except BaseException:
            await _aclose(data)
            raise
        self._busy.add(worker)
        job = _Job(worker, data, self.limits)
        feeder = asyncio.create_task(job.feed())
        try:
            while True:
                kind, payload = await job.next_message()
                # The used spare is replaced once this job's first audio is out (a new worker's start-up
                # is ~0.1 s of CPU, which on a small machine would delay that audio).
                self._refill()
                if kind == protocol.MSG_PCM:
                    yield job.pcm(payload)
                elif kind == protocol.MSG_DONE:
                    job.raise_input_error()
                    return
                elif kind == protocol.MSG_ERROR:
                    raise DecodeError(payload.decode("utf-8", "replace")[:200] or "the decoder failed")
                else:
                    raise DecodeError("the decoder broke the protocol (unknown message)")
        finally:
            self._refill()
            worker.kill()
            feeder.cancel()
            # Shielded: even if we are cancelled again, the worker is reaped and the input closed.
            await asyncio.shield(self._end_job(worker, feeder, data))

    async def _end_job(self, worker: _Worker, feeder: asyncio.Task[None], data: AsyncIterator[bytes]) -> None:
        await asyncio.wait([feeder])
        await _aclose(data)
        await worker.reap()
        self._busy.discard(worker)

    async def _acquire(self) -> _Worker:
        while self._ready:
            worker = self._ready.popleft()
            if worker.alive:
                return worker  # replaced by ``decode`` once the job is under way
            await worker.reap()  # died while waiting (killed from outside): take the next
        self._refill()
        # No warm worker: start one for this job rather than wait for a spare that may be further behind.
        worker = await self._spawn()
        if self._closed:  # closed while this one was starting
            await worker.reap()
            raise DecodeError("the decoder pool is closed")
        return worker

    def _refill(self) -> None:
        while not self._closed and len(self._ready) + len(self._starting) < self._spare:
            task = asyncio.create_task(self._start_spare())
            self._starting.add(task)
            task.add_done_callback(self._starting.discard)

    async def _start_spare(self) -> None:
        try:
            worker = await self._spawn()
        except DecodeError as exc:
            _log.warning("could not start a spare decoder: %s", exc.reason)
            return
        if self._closed:
            await worker.reap()
        else:
            self._ready.append(worker)

    async def _spawn(self) -> _Worker:
        """A new worker, warm and waiting for its job."""
        try:
            process = await asyncio.create_subprocess_exec(
                self._python,
                "-m",
                "herald.media.decode_worker",
                self._config,
                stdin=asyncio.subprocess.PIPE,
                stdout=asyncio.subprocess.PIPE,
                limit=_READ_LIMIT_BYTES,
            )
        except OSError as exc:
            raise DecodeError(f"could not start the decoder: {exc.strerror or exc}") from exc
        worker = _Worker(process)
        try:
            async with asyncio.timeout(_STARTUP_TIMEOUT_S):
                message = await worker.read_message()
            if message != (protocol.MSG_READY, b""):
                status = await worker.exit_status()
                raise DecodeError(f"could not start the decoder ({_exit_reason(status, self.limits)})")
        except BaseException as exc:
            await asyncio.shield(worker.reap())
            if isinstance(exc, TimeoutError):
                raise DecodeError(f"the decoder did not start in {_STARTUP_TIMEOUT_S:g} s") from exc
            raise
        return worker


class _Job:
    """One decoding job's state: the input feeder's outcome, the wall-clock budget, the output so far."""

    def __init__(self, worker: _Worker, data: AsyncIterator[bytes], limits: DecodeLimits) -> None:
        self._worker = worker
        self._data = data
        self._limits = limits
        self._wall_left_s = limits.wall_s
        self._samples = 0
        # The worker stops by itself at max_duration_s; a worker gone rogue is stopped here.
        self._max_samples = round(limits.max_duration_s * SAMPLE_RATE_HZ) + protocol.CHUNK_SAMPLES
        self._input_error: Exception | None = None

    async def feed(self) -> None:
        """Copy the input to the worker, a bounded piece at a time; record the input's failure, if any."""
        try:
            async for chunk in self._data:
                view = memoryview(chunk)
                for start in range(0, len(view), _WRITE_PIECE_BYTES):
                    if not await self._worker.write(view[start : start + _WRITE_PIECE_BYTES]):
                        return  # the worker is done with the input (or dead): its output says which
            self._worker.close_input()
        except Exception as exc:  # the input failed (a download error): the job fails with it
            self._input_error = exc
            self._worker.kill()

    def raise_input_error(self) -> None:
        if self._input_error is not None:
            raise self._input_error

    async def next_message(self) -> tuple[bytes, bytes]:
        """The worker's next message, within the wall-clock budget; raises if the worker or input failed."""
        loop = asyncio.get_running_loop()
        started = loop.time()
        try:
            async with asyncio.timeout(self._wall_left_s):
                message = await self._worker.read_message()
        except TimeoutError:
            raise DecodeError(f"decoding took more than {self._limits.wall_s:g} s") from None
        finally:
            self._wall_left_s -= loop.time() - started
        self.raise_input_error()
        if message is None:
            if self._worker.stopped_by_pool:
                raise DecodeError("the decoder pool was closed")
            raise DecodeError(_exit_reason(await self._worker.exit_status(), self._limits))
        return message

    def pcm(self, payload: bytes) -> Pcm:
        if len(payload) % 2:
            raise DecodeError("the decoder broke the protocol (odd PCM length)")
        self._samples += len(payload) // 2
        if self._samples > self._max_samples:
            raise DecodeError(f"the audio is longer than {self._limits.max_duration_s:g} s")
        return np.frombuffer(payload, dtype=np.int16)  # read-only, as frames are


def _exit_reason(status: int | None, limits: DecodeLimits) -> str:
    """Why a worker ended without a result, from its exit status (``None``: it would not exit)."""
    if status is None:
        return "the decoder stopped answering"
    if status == -signal.SIGXCPU:
        return f"the decoder used more than {limits.cpu_s} s of CPU"
    if status < 0:
        try:
            name = signal.Signals(-status).name
        except ValueError:
            name = "unknown"
        return f"the decoder crashed (signal {-status}, {name})"
    return f"the decoder stopped without a result (exit status {status})"


async def _aclose(data: AsyncIterator[bytes]) -> None:
    aclose = getattr(data, "aclose", None)
    if aclose is None:
        return
    try:
        await aclose()
    except Exception:  # the job's own outcome matters more than a failure to clean up its input
        _log.warning("closing a decoder's input failed", exc_info=True)
