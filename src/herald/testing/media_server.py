"""A local HTTP server for audio files that tests generate, with control over how each one is sent.

Herald fetches ``Type=AudioUrl`` speech itself; end-to-end tests point it at this server (started with
``HERALD_FETCH_ALLOW`` naming the server's address, as a private media server would be allowlisted).

    with MediaServer() as media:                                   # 127.0.0.2 on a free port
        url = media.add("/tone.wav", Media(sine_wav(1.0), "audio/wav"))
        slow = media.add("/slow.wav", Media(data, "audio/wav", chunk_bytes=16_384, delay_s=0.25))
        hop = media.redirect("/hop", "http://127.0.0.1:9/x.wav")
        ...
        delivery = media.wait_for_delivery("/slow.wav", timeout_s=30)
        delivery.last_byte_s                                         # when the body's last byte was sent

Every request is recorded as a ``Delivery`` with ``time.monotonic()`` times (the clock ``AudioRecorder``
uses by default, so arrival times of audio can be compared with them). Slow deliveries are abandoned at
once when the server closes.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler
from typing import Final

from herald.testing.threaded_http import Closing, ThreadedHttpServer

DEFAULT_HOST: Final = "127.0.0.2"
"""A loopback address other than 127.0.0.1, so a test can allowlist it alone (``HERALD_FETCH_ALLOW``)."""


@dataclass(frozen=True)
class Media:
    """What to answer for one path, and how to send it."""

    body: bytes = b""
    content_type: str = "application/octet-stream"
    status: int = 200
    headers: Mapping[str, str] = field(default_factory=dict)
    """Extra response headers (``Location`` for a redirect, say)."""
    chunk_bytes: int = 0
    """Send the body in pieces this big (0: in one write)."""
    delay_s: float = 0.0
    """Pause before each piece but the first."""
    first_delay_s: float = 0.0
    """Pause after the headers, before the first piece."""
    chunked: bool = False
    """``Transfer-Encoding: chunked`` (each piece one HTTP chunk) instead of ``Content-Length``."""


@dataclass
class Delivery:
    """One request and how far its answer got."""

    path: str
    client: str
    started_s: float
    first_byte_s: float | None = None
    """When the first byte of the body was written (``None``: none was)."""
    last_byte_s: float | None = None
    """When the last byte of the body was written (``None``: the body was not sent to its end)."""
    bytes_sent: int = 0
    error: str | None = None
    """Why sending stopped early: the client closed the connection, or the server closed."""

    @property
    def completed(self) -> bool:
        return self.last_byte_s is not None


class MediaServer(ThreadedHttpServer):
    """A threaded HTTP/1.1 server on ``host`` (default 127.0.0.2) and a free port, for test media."""

    methods = frozenset({"GET", "HEAD"})
    thread_name = "media"

    def __init__(
        self, host: str = DEFAULT_HOST, port: int = 0, *, clock: Callable[[], float] = time.monotonic
    ) -> None:
        super().__init__(host, port)
        self._clock = clock
        self._routes: dict[str, Media] = {}
        self._deliveries: list[Delivery] = []
        self._lock = threading.Lock()
        self._changed = threading.Condition(self._lock)

    # -- addresses and content -----------------------------------------------------------------------

    @property
    def base_url(self) -> str:
        return f"http://{self.host}:{self.port}"

    def url(self, path: str) -> str:
        return self.base_url + _path(path)

    def add(self, path: str, media: Media) -> str:
        """Serve ``media`` at ``path``; returns its URL."""
        with self._lock:
            self._routes[_path(path)] = media
        return self.url(path)

    def file(self, path: str, body: bytes, content_type: str = "application/octet-stream") -> str:
        """Serve ``body`` at ``path`` in one write; returns its URL."""
        return self.add(path, Media(body, content_type))

    def redirect(self, path: str, location: str, status: int = 302) -> str:
        """Answer ``path`` with a redirect to ``location``; returns the URL of ``path``."""
        return self.add(path, Media(status=status, headers={"Location": location}, content_type="text/plain"))

    # -- what was sent -------------------------------------------------------------------------------

    def deliveries(self, path: str | None = None) -> list[Delivery]:
        """Requests so far (for ``path``, if given), oldest first."""
        with self._lock:
            return [d for d in self._deliveries if path is None or d.path == _path(path)]

    def wait_for_delivery(self, path: str, *, timeout_s: float = 30.0) -> Delivery:
        """The first request for ``path`` once its answer has ended (sent in full or abandoned)."""
        deadline = self._clock() + timeout_s
        with self._changed:
            while True:
                done = [
                    d
                    for d in self._deliveries
                    if d.path == _path(path) and (d.completed or d.error is not None)
                ]
                if done:
                    return done[0]
                left = deadline - self._clock()
                if left <= 0:
                    raise TimeoutError(f"no finished delivery of {path} within {timeout_s} s")
                self._changed.wait(min(left, 0.1))

    # -- serving (request threads) -------------------------------------------------------------------

    def _serve(self, handler: BaseHTTPRequestHandler) -> None:
        path = _path(handler.path.split("?", 1)[0])
        delivery = Delivery(path, handler.client_address[0], self._clock())
        with self._changed:
            self._deliveries.append(delivery)
            media = self._routes.get(path)
        try:
            if media is None:
                self._send(handler, delivery, Media(b"not found\n", "text/plain", status=404))
            else:
                self._send(handler, delivery, media)
        except (OSError, Closing) as exc:
            delivery.error = "the server is closing" if isinstance(exc, Closing) else repr(exc)
        finally:
            handler.close_connection = True
            with self._changed:
                self._changed.notify_all()

    def _send(self, handler: BaseHTTPRequestHandler, delivery: Delivery, media: Media) -> None:
        handler.send_response(media.status)
        handler.send_header("Content-Type", media.content_type)
        for name, value in media.headers.items():
            handler.send_header(name, value)
        if media.chunked:
            handler.send_header("Transfer-Encoding", "chunked")
        else:
            handler.send_header("Content-Length", str(len(media.body)))
        handler.send_header("Connection", "close")
        handler.end_headers()
        handler.wfile.flush()
        if handler.command == "HEAD":
            delivery.last_byte_s = self._clock()
            return

        body = media.body
        size = media.chunk_bytes if media.chunk_bytes > 0 else max(len(body), 1)
        pieces = [body[i : i + size] for i in range(0, len(body), size)]
        self._pause(media.first_delay_s)
        for index, piece in enumerate(pieces):
            if index:
                self._pause(media.delay_s)
            if media.chunked:
                handler.wfile.write(b"%x\r\n%s\r\n" % (len(piece), piece))
            else:
                handler.wfile.write(piece)
            handler.wfile.flush()
            now = self._clock()
            if delivery.first_byte_s is None:
                delivery.first_byte_s = now
            delivery.bytes_sent += len(piece)
        if media.chunked:
            handler.wfile.write(b"0\r\n\r\n")
            handler.wfile.flush()
        delivery.last_byte_s = self._clock()


def _path(path: str) -> str:
    return path if path.startswith("/") else "/" + path
