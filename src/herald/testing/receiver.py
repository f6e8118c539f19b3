"""A local HTTP receiver for event callbacks, recording every POST, with behaviours a test can set.

Herald POSTs each event of an instance to ``AgentConfig.CallbackConfig.Url``; end-to-end tests point that
URL at this receiver (started with ``HERALD_FETCH_ALLOW`` naming the receiver's address, as an operator
allowlists an intranet receiver).

    with CallbackReceiver() as receiver:                     # 127.0.0.3 on a free port
        url = receiver.url                                   # http://127.0.0.3:PORT/callbacks
        receiver.fail_first(2)                               # answer the first 2 attempts of each event 500
        receiver.hang(5.0)                                   # wait 5 s before answering anything
        receiver.refuse()                                    # stop listening: connections are refused
        receiver.listen()                                    # ... and listen again, on the same port
        receiver.wait_for(lambda: len(receiver.events()) >= 3, timeout_s=10)
        receiver.events()                                    # accepted bodies, one per eventId
        receiver.attempts(event_id)                          # every request that carried it

Every request is recorded as an ``Attempt`` on arrival, with a ``time.monotonic()`` time, before any hang,
and gets its answer's status once answered. Every answer closes its connection, so ``refuse()`` refuses
the very next attempt. Hanging requests are released at once (with no answer) when the receiver closes.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import socket
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from types import TracebackType
from typing import Any, Final

DEFAULT_HOST: Final = "127.0.0.3"
"""A loopback address other than 127.0.0.1 (and MediaServer's 127.0.0.2), so a test can allowlist it
alone (``HERALD_FETCH_ALLOW``)."""
DEFAULT_PATH: Final = "/callbacks"
MAX_BODY_BYTES: Final = 1 << 20
EVENT_ID_HEADER: Final = "x-herald-event-id"


@dataclass
class Attempt:
    """One POST as it arrived, and how it was answered."""

    received_s: float
    path: str
    headers: dict[str, str]
    """Header names in lower case."""
    body: bytes
    payload: Any
    """The body parsed as JSON (``None`` if it is not JSON)."""
    status: int | None = None
    """What the receiver answered (``None``: not yet, or never because the receiver closed meanwhile)."""
    answered_s: float | None = None

    @property
    def event_id(self) -> str | None:
        """The body's ``eventId``."""
        value = self.payload.get("eventId") if isinstance(self.payload, dict) else None
        return value if isinstance(value, str) else None

    @property
    def accepted(self) -> bool:
        """Answered with a 2xx status."""
        return self.status is not None and 200 <= self.status < 300


@dataclass
class _Behaviour:
    fail_first: int = 0
    fail_status: int = 500
    hang_s: float = 0.0
    seen: dict[str, int] = field(default_factory=dict)
    """Attempts so far per eventId (for ``fail_first``)."""


class CallbackReceiver:
    """A threaded HTTP/1.1 server on ``host`` (default 127.0.0.3) and a free port, recording POSTs."""

    def __init__(
        self,
        host: str = DEFAULT_HOST,
        port: int = 0,
        *,
        path: str = DEFAULT_PATH,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.host = host
        self.path = path
        self._clock = clock
        self._lock = threading.Lock()
        self._changed = threading.Condition(self._lock)
        self._closing = threading.Event()
        self._behaviour = _Behaviour()
        self._attempts: list[Attempt] = []
        self._httpd: _Server | None = _Server((host, port), _handler_for(self))
        self.port: int = self._httpd.server_address[1]
        self._thread: threading.Thread | None = None
        self._retired: list[_Server] = []
        """Servers stopped by ``refuse()``: their request threads are joined on ``close()``."""

    # -- addresses -----------------------------------------------------------------------------------

    @property
    def base_url(self) -> str:
        return f"http://{self.host}:{self.port}"

    @property
    def url(self) -> str:
        """The callback URL to configure (``AgentConfig.CallbackConfig.Url``)."""
        return self.base_url + self.path

    # -- behaviours ----------------------------------------------------------------------------------

    def fail_first(self, attempts: int, status: int = 500) -> None:
        """Answer the first ``attempts`` attempts of each event (by ``eventId``) with ``status``."""
        with self._lock:
            self._behaviour.fail_first = attempts
            self._behaviour.fail_status = status

    def hang(self, seconds: float) -> None:
        """Wait ``seconds`` before answering each request from now on (0: answer at once)."""
        with self._lock:
            self._behaviour.hang_s = seconds

    def refuse(self) -> None:
        """Stop listening: connections to the port are refused until ``listen()``."""
        if self._httpd is None:
            return
        httpd, self._httpd = self._httpd, None
        if self._thread is not None:
            httpd.shutdown()
            self._thread.join(timeout=5)
            self._thread = None
        httpd.socket.close()  # requests in progress keep their own sockets
        self._retired.append(httpd)

    def listen(self) -> None:
        """Listen again on the same address and port (after ``refuse()``)."""
        if self._httpd is not None:
            return
        self._httpd = _Server((self.host, self.port), _handler_for(self))
        self._serve()

    @property
    def listening(self) -> bool:
        return self._httpd is not None

    # -- what arrived --------------------------------------------------------------------------------

    def requests(self) -> list[Attempt]:
        """Every request so far, oldest first."""
        with self._lock:
            return list(self._attempts)

    def attempts(self, event_id: str) -> list[Attempt]:
        """The requests that carried ``event_id`` (in the body), oldest first."""
        with self._lock:
            return [a for a in self._attempts if a.event_id == event_id]

    def events(self) -> list[dict[str, Any]]:
        """The bodies the receiver accepted (answered 2xx), one per ``eventId``, in order of arrival."""
        seen: set[str] = set()
        bodies: list[dict[str, Any]] = []
        with self._lock:
            for attempt in self._attempts:
                event_id = attempt.event_id
                if not attempt.accepted or event_id is None or event_id in seen:
                    continue
                seen.add(event_id)
                bodies.append(attempt.payload)
        return bodies

    def describe(self, limit: int = 40) -> str:
        """A compact list of the requests, for assertion messages."""
        requests = self.requests()
        first = requests[0].received_s if requests else 0.0
        lines = [
            f"+{a.received_s - first:7.3f} s {a.status} "
            f"{a.payload.get('event') if isinstance(a.payload, dict) else '?'} {a.event_id}"
            for a in requests
        ]
        if len(lines) > limit:
            lines = [*lines[: limit // 2], f"... {len(lines) - limit} more ...", *lines[-limit // 2 :]]
        return "\n".join(lines) or "(nothing received)"

    # -- waiting -------------------------------------------------------------------------------------

    def wait_for(self, predicate: Callable[[], bool], timeout_s: float, what: str = "condition") -> None:
        """Block until ``predicate()`` holds (checked on every request and answer, and every 50 ms);
        ``TimeoutError`` with what was received if it does not within ``timeout_s``."""
        deadline = time.monotonic() + timeout_s
        while not predicate():
            left = deadline - time.monotonic()
            if left <= 0:
                raise TimeoutError(f"no {what} within {timeout_s} s; received:\n{self.describe()}")
            with self._changed:
                self._changed.wait(min(left, 0.05))

    async def wait(self, predicate: Callable[[], bool], timeout_s: float, what: str = "condition") -> None:
        """``wait_for`` for async tests: the event loop keeps running meanwhile."""
        deadline = time.monotonic() + timeout_s
        while not predicate():
            if time.monotonic() >= deadline:
                raise TimeoutError(f"no {what} within {timeout_s} s; received:\n{self.describe()}")
            await asyncio.sleep(0.02)

    # -- lifecycle -----------------------------------------------------------------------------------

    def start(self) -> CallbackReceiver:
        self._serve()
        return self

    def close(self) -> None:
        self._closing.set()  # hanging requests stop waiting
        self.refuse()
        for httpd in self._retired:
            httpd.server_close()  # joins the request threads
        self._retired.clear()

    def __enter__(self) -> CallbackReceiver:
        return self.start()

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()

    def _serve(self) -> None:
        httpd = self._httpd
        assert httpd is not None
        self._thread = threading.Thread(
            target=httpd.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True, name="callbacks"
        )
        self._thread.start()

    # -- serving (request threads) -------------------------------------------------------------------

    def _serve_post(self, handler: BaseHTTPRequestHandler) -> None:
        length = int(handler.headers.get("Content-Length") or 0)
        body = handler.rfile.read(min(length, MAX_BODY_BYTES))
        try:
            payload: Any = json.loads(body)
        except ValueError:
            payload = None
        attempt = Attempt(
            received_s=self._clock(),
            path=handler.path,
            headers={name.lower(): value for name, value in handler.headers.items()},
            body=body,
            payload=payload,
        )
        with self._changed:
            self._attempts.append(attempt)
            behaviour = self._behaviour
            key = attempt.event_id or ""
            behaviour.seen[key] = seen = behaviour.seen.get(key, 0) + 1
            status = behaviour.fail_status if seen <= behaviour.fail_first else 200
            hang_s = behaviour.hang_s
            self._changed.notify_all()
        if hang_s > 0 and self._closing.wait(hang_s):
            return  # closing: drop the connection unanswered
        reply = b'{"ok":true}' if 200 <= status < 300 else b'{"ok":false}'
        handler.send_response(status)
        handler.send_header("Content-Type", "application/json")
        handler.send_header("Content-Length", str(len(reply)))
        handler.send_header("Connection", "close")
        handler.end_headers()
        handler.wfile.write(reply)
        handler.wfile.flush()
        with self._changed:
            attempt.status, attempt.answered_s = status, self._clock()
            self._changed.notify_all()


class _Server(ThreadingHTTPServer):
    # Request threads are joined by server_close(), so closing the receiver leaves none running.
    daemon_threads = False
    block_on_close = True
    allow_reuse_address = True
    address_family = socket.AF_INET


def _handler_for(receiver: CallbackReceiver) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def do_POST(self) -> None:
            self.close_connection = True
            receiver._serve_post(self)

        def log_message(self, format: str, *args: object) -> None:  # quiet: tests read requests()
            pass

        def handle_one_request(self) -> None:
            with contextlib.suppress(ConnectionError):
                super().handle_one_request()

    return Handler
