"""Many audio-WebSocket listeners in a process of their own, cheap enough to follow hundreds of calls.

The capacity figure needs a listener per speaking instance, and the listeners share the machine's two cores
with the server: the ``websockets`` client costs tens of microseconds a message, so this one is an
``asyncio.Protocol`` that parses frames by hand and keeps counters, no audio. Per listener it tracks,
during a measuring window:

* gaps between consecutive audio frames as they arrive (the server sends one every 20 ms, silence
  included, so a long gap is audio late at the listener), in a shared 1 ms histogram;
* starved frames: frames between one subtitle's ``end:true`` and the next one's ``end:false`` (``1002``),
  i.e. silence inside continuous speech because synthesis had not caught up, also counted by the piece
  of the utterance whose start they delayed (pieces counted from 1 after each ``1900`` outcome).

``python -m bench.listeners`` runs the process; ``ListenerProcess`` drives it over stdin/stdout with one
JSON object per line: ``{"cmd": "add", "urls": [...]}``, ``{"cmd": "window", "seconds": s}``,
``{"cmd": "quit"}``.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import json
import os
import resource
import struct
import sys
import time
from collections.abc import Callable, Coroutine
from pathlib import Path
from types import TracebackType
from typing import Any, Final, cast
from urllib.parse import urlsplit

LATE_GAP_MS: Final = 40
_HISTOGRAM_MS: Final = 2000  # gaps longer than this are counted in the last bucket
_OP_TEXT, _OP_BINARY, _OP_CLOSE, _OP_PING = 1, 2, 8, 9
_ROOT: Final = Path(__file__).resolve().parent.parent


class Listener(asyncio.Protocol):
    """One audio WebSocket, read without keeping the audio (server frames are never masked)."""

    def __init__(
        self,
        host: str,
        target: str,
        histogram: list[int],
        late_moments: set[int],
        starved_by_piece: dict[int, int],
    ) -> None:
        self._host = host
        self._target = target
        self._histogram = histogram
        self._late_moments = late_moments
        self._starved_by_piece = starved_by_piece
        self._piece = 0  # subtitles seen of the current utterance
        self._buffer = bytearray()
        self._transport: asyncio.Transport | None = None
        self.opened: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self.closed = False
        self.reset()

    def reset(self) -> None:
        """Start a new window: counters to zero, the next frame starts the gap measurement."""
        self.frames = 0
        self.late = 0
        self.max_gap_ms = 0.0
        self.starved = 0
        self._last_frame_s: float | None = None
        self._between_pieces = False
        self._pending_starved = 0

    # -- asyncio.Protocol --

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        transport = cast(asyncio.Transport, transport)  # a stream transport (uvloop's is not a subclass)
        self._transport = transport
        key = base64.b64encode(os.urandom(16)).decode()
        transport.write(
            f"GET {self._target} HTTP/1.1\r\nHost: {self._host}\r\nUpgrade: websocket\r\n"
            f"Connection: Upgrade\r\nSec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: 13\r\n\r\n".encode()
        )

    def connection_lost(self, exc: Exception | None) -> None:
        self.closed = True
        if not self.opened.done():
            self.opened.set_exception(ConnectionError(f"closed before the upgrade: {exc}"))

    def data_received(self, data: bytes) -> None:
        now = time.monotonic()
        self._buffer += data
        if not self.opened.done():
            end = self._buffer.find(b"\r\n\r\n")
            if end < 0:
                return
            status = bytes(self._buffer[:end].split(b"\r\n", 1)[0])
            del self._buffer[: end + 4]
            if b" 101 " not in status + b" ":
                self.opened.set_exception(ConnectionError(f"upgrade refused: {status!r}"))
                self._close()
                return
            self.opened.set_result(None)
        self._parse(now)

    # -- frames --

    def _parse(self, now: float) -> None:
        buffer = self._buffer
        start = 0
        while len(buffer) - start >= 2:
            opcode = buffer[start] & 0x0F
            length = buffer[start + 1] & 0x7F
            head = 2
            if length == 126:
                if len(buffer) - start < 4:
                    break
                length = struct.unpack_from(">H", buffer, start + 2)[0]
                head = 4
            elif length == 127:
                if len(buffer) - start < 10:
                    break
                length = struct.unpack_from(">Q", buffer, start + 2)[0]
                head = 10
            end = start + head + length
            if len(buffer) < end:
                break
            self._message(opcode, buffer, start + head, end, now)
            start = end
        del buffer[:start]

    def _message(self, opcode: int, buffer: bytearray, start: int, end: int, now: float) -> None:
        if opcode == _OP_BINARY:
            self._frame(now)
        elif opcode == _OP_TEXT:
            self._text(bytes(buffer[start:end]))
        elif opcode == _OP_PING:
            self._send(0x8A, bytes(buffer[start:end]))  # pong
        elif opcode == _OP_CLOSE:
            self._close()

    def _frame(self, now: float) -> None:
        self.frames += 1
        if self._between_pieces:
            self._pending_starved += 1
        last, self._last_frame_s = self._last_frame_s, now
        if last is None:
            return
        gap_ms = (now - last) * 1000
        self._histogram[min(int(gap_ms), _HISTOGRAM_MS)] += 1
        if gap_ms > self.max_gap_ms:
            self.max_gap_ms = gap_ms
        if gap_ms > LATE_GAP_MS:
            self.late += 1
            self._late_moments.add(int(now * 50))  # the 20 ms slot it arrived in

    def _text(self, payload: bytes) -> None:
        if b"1002" not in payload and b"1900" not in payload:  # only these matter: skip parsing the rest
            return
        message = json.loads(payload)
        if message.get("type") == 1900:  # an utterance ended: the next one's pieces count from 1
            self._piece = 0
            return
        if message.get("type") != 1002:
            return
        if message["data"].get("end"):
            self._between_pieces = True
            self._pending_starved = 0
            return
        self._piece += 1
        if self._between_pieces and self._pending_starved:
            # The next piece started: every frame since the last one ended was a hole in the speech.
            self.starved += self._pending_starved
            self._starved_by_piece[self._piece] = (
                self._starved_by_piece.get(self._piece, 0) + self._pending_starved
            )
        self._between_pieces = False

    def _send(self, first_byte: int, payload: bytes) -> None:
        if self._transport is None or self._transport.is_closing() or len(payload) > 125:
            return
        mask = os.urandom(4)
        masked = bytes(b ^ mask[i % 4] for i, b in enumerate(payload))
        self._transport.write(bytes([first_byte, 0x80 | len(payload)]) + mask + masked)

    def _close(self) -> None:
        self._send(0x88, struct.pack(">H", 1000))
        if self._transport is not None:
            self._transport.close()


class _Listeners:
    """The child process's state: every listener and the shared gap histogram."""

    def __init__(self) -> None:
        self.listeners: list[Listener] = []
        self.histogram = [0] * (_HISTOGRAM_MS + 1)
        self.starved_by_piece: dict[int, int] = {}
        """Starved frames by the piece (1 = an utterance's first) whose start they delayed."""
        self.late_moments: set[int] = set()
        """20 ms slots in which some late frame arrived: few slots for many late frames means a stall."""

    async def add(self, urls: list[str]) -> dict[str, Any]:
        limit = asyncio.Semaphore(32)  # connecting hundreds at once only makes the server's accept queue long
        failed: list[str] = []

        async def one(url: str) -> None:
            parts = urlsplit(url)
            host, port = parts.hostname or "127.0.0.1", parts.port or 80
            target = parts.path + (f"?{parts.query}" if parts.query else "")
            async with limit:
                loop = asyncio.get_running_loop()
                try:
                    _, listener = await loop.create_connection(
                        lambda: Listener(
                            f"{host}:{port}", target, self.histogram, self.late_moments, self.starved_by_piece
                        ),
                        host,
                        port,
                    )
                    await asyncio.wait_for(listener.opened, 10)
                except (OSError, TimeoutError) as exc:
                    failed.append(f"{parts.path}: {exc}")
                    return
                self.listeners.append(listener)

        await asyncio.gather(*(one(url) for url in urls))
        return {"listeners": len(self.listeners), "failed": failed}

    async def window(self, seconds: float) -> dict[str, Any]:
        for listener in self.listeners:
            listener.reset()
        self.histogram[:] = [0] * len(self.histogram)
        self.late_moments.clear()
        self.starved_by_piece.clear()
        cpu_before, wall_before = _cpu_s(), time.monotonic()
        await asyncio.sleep(seconds)
        wall_s = time.monotonic() - wall_before
        live = [listener for listener in self.listeners if not listener.closed]
        gaps = sum(self.histogram)
        return {
            "listeners": len(self.listeners),
            "closed": len(self.listeners) - len(live),
            "window_s": round(wall_s, 3),
            "frames": sum(listener.frames for listener in live),
            "expected_frames": round(len(live) * wall_s * 50),
            "min_frames": min((listener.frames for listener in live), default=0),
            "late_gaps": sum(listener.late for listener in live),
            "late_listeners": sum(1 for listener in live if listener.late),
            "late_moments": len(self.late_moments),
            "max_gap_ms": round(max((listener.max_gap_ms for listener in live), default=0.0), 1),
            "gap_p50_ms": _histogram_percentile(self.histogram, 50) if gaps else None,
            "gap_p99_ms": _histogram_percentile(self.histogram, 99) if gaps else None,
            "gap_p999_ms": _histogram_percentile(self.histogram, 99.9) if gaps else None,
            "starved_frames": sum(listener.starved for listener in live),
            "starved_listeners": sum(1 for listener in live if listener.starved),
            "starved_by_piece": dict(sorted(self.starved_by_piece.items())),
            "listener_cpu_share": round((_cpu_s() - cpu_before) / wall_s, 3),
        }

    def close(self) -> None:
        for listener in self.listeners:
            listener._close()


def _histogram_percentile(histogram: list[int], q: float) -> float:
    """The percentile of gaps, to the 1 ms bucket (the bucket's upper edge)."""
    total = sum(histogram)
    rank = total * q / 100
    seen = 0
    for gap_ms, count in enumerate(histogram):
        seen += count
        if seen >= rank:
            return float(gap_ms + 1)
    return float(len(histogram))


def _cpu_s() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


async def _serve() -> None:
    loop = asyncio.get_running_loop()
    reader = asyncio.StreamReader(limit=64 * 1024 * 1024)  # an "add" line carries hundreds of URLs
    await loop.connect_read_pipe(lambda: asyncio.StreamReaderProtocol(reader), sys.stdin)
    state = _Listeners()
    try:
        while line := await reader.readline():
            command = json.loads(line)
            if command["cmd"] == "add":
                answer = await state.add(command["urls"])
            elif command["cmd"] == "window":
                answer = await state.window(float(command["seconds"]))
            else:
                break
            sys.stdout.write(json.dumps(answer) + "\n")
            sys.stdout.flush()
    finally:
        state.close()
        await asyncio.sleep(0.05)  # let the close frames go out


class ListenerProcess:
    """The listener process, driven from the benchmark's event loop; killed on exit whatever happens."""

    def __init__(self) -> None:
        self._process: asyncio.subprocess.Process | None = None

    @property
    def pid(self) -> int:
        assert self._process is not None
        return self._process.pid

    async def __aenter__(self) -> ListenerProcess:
        self._process = await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            "bench.listeners",
            stdin=asyncio.subprocess.PIPE,
            stdout=asyncio.subprocess.PIPE,
            cwd=_ROOT,
        )
        return self

    async def _ask(self, command: dict[str, Any], timeout_s: float) -> dict[str, Any]:
        process = self._process
        assert process is not None
        assert process.stdin is not None
        assert process.stdout is not None
        process.stdin.write((json.dumps(command) + "\n").encode())
        await process.stdin.drain()
        line = await asyncio.wait_for(process.stdout.readline(), timeout_s)
        if not line:
            raise RuntimeError(f"the listener process exited ({await process.wait()})")
        answer: dict[str, Any] = json.loads(line)
        return answer

    async def add(self, urls: list[str]) -> dict[str, Any]:
        """Connect a listener to each URL; the answer counts them and lists failures."""
        return await self._ask({"cmd": "add", "urls": urls}, timeout_s=60 + len(urls) / 10)

    async def window(self, seconds: float) -> dict[str, Any]:
        """Measure every listener for ``seconds``; the answer has the gap and starvation counts."""
        return await self._ask({"cmd": "window", "seconds": seconds}, timeout_s=seconds + 30)

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        process = self._process
        if process is None or process.returncode is not None:
            return
        with contextlib.suppress(Exception):
            assert process.stdin is not None
            process.stdin.write(b'{"cmd": "quit"}\n')
            process.stdin.close()
        try:
            await asyncio.wait_for(process.wait(), 5)
        except TimeoutError:
            process.kill()
            await process.wait()
        except BaseException:
            process.kill()
            raise


def run_fast(main: Coroutine[Any, Any, None]) -> None:
    """Run ``main`` on uvloop when it is installed: clients share the cores with the server, so the
    cheaper loop leaves the server more. Ctrl-C ends quietly (the parent reports)."""
    try:
        import uvloop
    except ImportError:
        runner: Callable[[Coroutine[Any, Any, None]], None] = asyncio.run
    else:
        runner = uvloop.run
    with contextlib.suppress(KeyboardInterrupt):
        runner(main)


if __name__ == "__main__":
    run_fast(_serve())
