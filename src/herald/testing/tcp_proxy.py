"""A TCP proxy for tests that break the network between Herald and a service (PostgreSQL, Redis).

    with TcpProxy("127.0.0.1", 5432) as proxy:      # listens on 127.0.0.1:<proxy.port>
        url = f"postgresql://postgres@127.0.0.1:{proxy.port}/db"
        proxy.cut()        # the server is down: open connections reset, new ones refused
        proxy.hang()       # the server stops answering (a partition): connections open, nothing moves
        proxy.restore()    # back to forwarding

The proxy runs its own event loop in a background thread, so synchronous tests and async tests alike drive
it; every method returns once the change is in effect. ``hang()`` holds bytes, it does not drop them: a
connection that lives through a hang gets what was sent meanwhile once ``restore()`` is called, as TCP
would after a partition heals. Bytes are forwarded as they come, in both directions.
"""

from __future__ import annotations

import asyncio
import contextlib
import enum
import logging
import socket
import struct
import threading
from collections.abc import Coroutine
from types import TracebackType
from typing import Any, Final, TypeVar

_log = logging.getLogger(__name__)

CHUNK_BYTES: Final = 65_536
CONTROL_TIMEOUT_S: Final = 10.0
"""How long a call from the test's thread waits for the proxy's loop to act."""

T = TypeVar("T")


class ProxyState(enum.Enum):
    FORWARDING = "forwarding"
    CUT = "cut"
    """Nothing listens (a connect is refused); every connection was reset."""
    HUNG = "hung"
    """Connections are accepted and kept, but nothing is forwarded either way."""


class TcpProxy:
    """Forwards ``host:port`` (loopback, a free port unless given) to ``target_host:target_port``."""

    def __init__(self, target_host: str, target_port: int, *, host: str = "127.0.0.1", port: int = 0) -> None:
        self.target_host = target_host
        self.target_port = target_port
        self.host = host
        self._port = port
        self._state = ProxyState.FORWARDING
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._server: asyncio.Server | None = None
        self._flowing: asyncio.Event | None = None
        """Set while forwarding; every pump waits on it before reading and before writing."""
        self._links: set[_Link] = set()
        self.accepted = 0
        """Connections accepted so far (a diagnostic)."""

    # -- the test's side ---------------------------------------------------------------------------

    @property
    def port(self) -> int:
        """The port the proxy listens on (fixed at ``start()``, kept across ``cut()``/``restore()``)."""
        if not self._port:
            raise RuntimeError("the proxy is not started")
        return self._port

    @property
    def state(self) -> ProxyState:
        return self._state

    @property
    def open_connections(self) -> int:
        return len(self._links)

    def start(self) -> TcpProxy:
        """Start the loop's thread and listen."""
        if self._thread is not None:
            raise RuntimeError("the proxy is already started")
        loop = asyncio.new_event_loop()
        self._loop = loop
        self._thread = threading.Thread(target=loop.run_forever, name="tcp-proxy", daemon=True)
        self._thread.start()
        try:
            self._run(self._start())
        except BaseException:
            self.close()
            raise
        return self

    def cut(self) -> None:
        """The server goes down: every open connection is reset (RST) and new ones are refused."""
        self._run(self._cut())

    def hang(self) -> None:
        """The server stops answering: open connections stay open and new ones are accepted, but no byte
        is forwarded either way until ``restore()``."""
        self._run(self._hang())

    def restore(self) -> None:
        """Forward again (and listen again after a ``cut()``)."""
        self._run(self._restore())

    def close(self) -> None:
        """Reset every connection, stop listening and stop the thread. Safe to call twice."""
        loop, thread = self._loop, self._thread
        if loop is None or thread is None:
            return
        if thread.is_alive():
            with contextlib.suppress(Exception):
                self._run(self._cut())
            loop.call_soon_threadsafe(loop.stop)
            thread.join(CONTROL_TIMEOUT_S)
        loop.close()
        self._loop, self._thread = None, None

    def __enter__(self) -> TcpProxy:
        return self.start()

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()

    def _run(self, coro: Coroutine[Any, Any, T]) -> T:
        if self._loop is None:
            coro.close()
            raise RuntimeError("the proxy is not started")
        return asyncio.run_coroutine_threadsafe(coro, self._loop).result(CONTROL_TIMEOUT_S)

    # -- the loop's side ---------------------------------------------------------------------------

    async def _start(self) -> None:
        self._flowing = asyncio.Event()
        self._flowing.set()
        await self._listen()

    async def _listen(self) -> None:
        if self._server is None:
            self._server = await asyncio.start_server(self._accept, self.host, self._port)
            self._port = self._server.sockets[0].getsockname()[1]

    async def _cut(self) -> None:
        assert self._flowing is not None
        self._state = ProxyState.CUT
        self._flowing.clear()
        if self._server is not None:
            self._server.close()  # a connect from now on is refused
            self._server = None
        links, self._links = list(self._links), set()
        for link in links:
            link.reset()
        await asyncio.gather(*(link.task for link in links), return_exceptions=True)

    async def _hang(self) -> None:
        assert self._flowing is not None
        self._state = ProxyState.HUNG
        self._flowing.clear()
        await self._listen()

    async def _restore(self) -> None:
        assert self._flowing is not None
        await self._listen()
        self._state = ProxyState.FORWARDING
        self._flowing.set()

    async def _accept(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None
        assert self._flowing is not None
        self.accepted += 1
        link = _Link(task, writer)
        self._links.add(link)
        try:
            if self._state is ProxyState.CUT:  # accepted just before the listener closed
                link.reset()
                return
            await self._flowing.wait()  # a partitioned server is not reached until the partition heals
            try:
                upstream_reader, upstream = await asyncio.open_connection(self.target_host, self.target_port)
            except OSError as exc:
                _log.debug("the proxy's target %s:%d refused: %s", self.target_host, self.target_port, exc)
                link.reset()
                return
            link.upstream = upstream
            await asyncio.gather(self._pump(reader, upstream), self._pump(upstream_reader, writer))
        except (OSError, asyncio.CancelledError):
            link.reset()
        finally:
            self._links.discard(link)
            link.close()

    async def _pump(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        """Copy one direction until its end of file, then pass the end on (a half-close)."""
        assert self._flowing is not None
        while True:
            await self._flowing.wait()
            data = await reader.read(CHUNK_BYTES)
            if not data:
                break
            await self._flowing.wait()  # a hang that began during the read holds what it read
            writer.write(data)
            await writer.drain()
        if writer.can_write_eof():
            with contextlib.suppress(OSError):
                writer.write_eof()


class _Link:
    """One client connection and its connection to the target."""

    def __init__(self, task: asyncio.Task[Any], client: asyncio.StreamWriter) -> None:
        self.task = task
        self.client = client
        self.upstream: asyncio.StreamWriter | None = None

    def reset(self) -> None:
        """Abort both sides with a TCP reset, and stop the pumps."""
        for writer in (self.client, self.upstream):
            if writer is not None:
                _abort_with_reset(writer)
        if self.task is not asyncio.current_task():
            self.task.cancel()

    def close(self) -> None:
        for writer in (self.client, self.upstream):
            if writer is not None:
                writer.close()


def _abort_with_reset(writer: asyncio.StreamWriter) -> None:
    sock = writer.get_extra_info("socket")
    if sock is not None:
        with contextlib.suppress(OSError):  # linger 0: close() sends RST, not FIN
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    writer.transport.abort()


__all__ = ["ProxyState", "TcpProxy"]
