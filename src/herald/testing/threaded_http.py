"""The plumbing the tests' local HTTP servers share: a threaded HTTP/1.1 server on a free port, started and
closed with the test (``with``), each request handed to the subclass's ``_serve`` on its own thread.

``MediaServer`` (audio files) and ``ScriptedLlm`` (an OpenAI-compatible chat server) build on it. Request
threads that wait (a slow body, a stalled reply) watch ``_closing`` and raise ``Closing`` when it is set,
so closing never waits for them.
"""

from __future__ import annotations

import contextlib
import socket
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from types import TracebackType
from typing import ClassVar, Self


class Closing(Exception):
    """The server is closing: the request thread stops where it is."""


class ThreadedHttpServer:
    methods: ClassVar[frozenset[str]] = frozenset({"GET"})
    """The methods ``_serve`` takes; others are answered 501 by the standard handler."""
    thread_name: ClassVar[str] = "http"

    def __init__(self, host: str, port: int) -> None:
        self.host = host
        self._closing = threading.Event()
        self._httpd = _Server((host, port), _handler_for(self))
        self.port: int = self._httpd.server_address[1]
        self._thread: threading.Thread | None = None

    def _serve(self, handler: BaseHTTPRequestHandler) -> None:
        raise NotImplementedError

    def _pause(self, seconds: float) -> None:
        """Wait ``seconds`` on a request thread, unless the server closes first (then ``Closing``)."""
        if seconds > 0 and self._closing.wait(seconds):
            raise Closing

    def start(self) -> Self:
        serve = self._httpd.serve_forever
        self._thread = threading.Thread(
            target=serve, kwargs={"poll_interval": 0.05}, daemon=True, name=self.thread_name
        )
        self._thread.start()
        return self

    def close(self) -> None:
        self._closing.set()  # request threads that wait stop waiting
        if self._thread is not None:
            self._httpd.shutdown()
            self._thread.join(timeout=5)
            self._thread = None
        self._httpd.server_close()

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True
    address_family = socket.AF_INET


def _handler_for(server: ThreadedHttpServer) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, format: str, *args: object) -> None:  # quiet: tests read what was asked
            pass

        def handle_one_request(self) -> None:
            with contextlib.suppress(ConnectionError):
                super().handle_one_request()

    def serve(handler: BaseHTTPRequestHandler) -> None:
        server._serve(handler)

    for method in server.methods:
        setattr(Handler, f"do_{method}", serve)
    return Handler
