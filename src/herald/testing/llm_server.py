"""A scripted OpenAI-compatible chat model on a real local HTTP server, for tests.

    with ScriptedLlm() as llm:                                   # 127.0.0.1 on a free port
        llm.script(Reply("Hello! How can I help?"), Reply("", status=500))
        llm.default = Reply("Sorry?")                            # once the script is used up
        chat = OpenAIChat(llm.base_url, "any-model", "key", fetcher)
        ...
        request = llm.wait_for_request(0)                        # the first request, once answered
        request.messages                                         # what the agent sent: its history
        request.disconnected                                     # the client left mid-reply

``POST {base_url}/chat/completions`` takes one scripted ``Reply`` per request and streams it as OpenAI
does: a role chunk, content chunks of ``chunk_chars`` characters, a chunk with ``finish_reason: "stop"``,
then ``data: [DONE]``, in ``Transfer-Encoding: chunked``; with ``"stream"`` not true it answers one
``chat.completion`` JSON. Other paths get a 404 and are not recorded. Every request is recorded as an
``LlmRequest`` with ``time.monotonic()`` times. While it sends, the server watches the connection, so a
client that hangs up mid-reply is noticed even between chunks. Stalled and slow answers are abandoned at
once when the server closes.
"""

from __future__ import annotations

import contextlib
import itertools
import json
import math
import select
import socket
import threading
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import KW_ONLY, dataclass
from http.server import BaseHTTPRequestHandler
from typing import Any, Final

from herald.testing.threaded_http import Closing, ThreadedHttpServer

DEFAULT_HOST: Final = "127.0.0.1"
MAX_BODY_BYTES: Final = 8 << 20
_POLL_S: Final = 0.02


@dataclass(frozen=True)
class Reply:
    """One scripted answer."""

    text: str
    _: KW_ONLY
    chunk_chars: int = 8
    """Characters of text per chunk."""
    delay_first_s: float = 0.0
    """Pause after the headers and the role chunk, before the first text."""
    delay_between_s: float = 0.02
    """Pause between text chunks."""
    status: int = 200
    error_body: str | bytes | Mapping[str, Any] | None = None
    """The body to send instead of a completion (a mapping as JSON). A status other than 2xx without one
    sends OpenAI's ``{"error": {"message": text, ...}}``. With status 200 it makes a garbled answer."""
    content_type: str | None = None
    """The ``error_body``'s content type (default: JSON for a mapping, else text/plain)."""
    ignore_stream: bool = False
    """Answer one ``chat.completion`` JSON even to a streaming request, as some servers do."""
    stall: bool = False
    """After the first text chunk (or the role chunk, if ``text`` is empty), send nothing more and keep
    the connection open until the client leaves or the server closes."""

    def __post_init__(self) -> None:
        if self.chunk_chars < 1:
            raise ValueError("chunk_chars must be at least 1")


@dataclass
class LlmRequest:
    """One request as it arrived, and how far its answer got."""

    path: str
    headers: dict[str, str]
    """Header names in lower case."""
    body: dict[str, Any]
    """The body parsed as JSON (empty if it was not a JSON object)."""
    received_s: float
    reply: Reply | None = None
    chunks_sent: int = 0
    """Text chunks sent so far."""
    first_text_s: float | None = None
    completed: bool = False
    """The whole answer was sent ([DONE] included)."""
    disconnected: bool = False
    """The client closed the connection before the answer was complete."""
    ended_s: float | None = None
    """When the answer ended, complete or not (``None``: still going)."""

    @property
    def messages(self) -> list[dict[str, Any]]:
        messages = self.body.get("messages")
        return list(messages) if isinstance(messages, list) else []

    @property
    def model(self) -> str | None:
        model = self.body.get("model")
        return model if isinstance(model, str) else None


class ScriptedLlm(ThreadedHttpServer):
    """A threaded HTTP/1.1 server on ``host`` (default 127.0.0.1) and a free port; thread-safe."""

    methods = frozenset({"GET", "POST"})
    thread_name = "llm"

    def __init__(
        self,
        replies: Iterable[Reply | str] = (),
        *,
        default: Reply | str = "OK.",
        host: str = DEFAULT_HOST,
        port: int = 0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        super().__init__(host, port)
        self._clock = clock
        self._lock = threading.Lock()
        self._changed = threading.Condition(self._lock)
        self._script: list[Reply] = [_reply(r) for r in replies]
        self._default = _reply(default)
        self._requests: list[LlmRequest] = []
        self._ids = itertools.count(1)

    @property
    def base_url(self) -> str:
        """What an OpenAI client takes as its base URL: ``http://HOST:PORT/v1``."""
        return f"http://{self.host}:{self.port}/v1"

    def server_config(self, model: str = "scripted") -> str:
        """A Herald config file's ``[llm]`` section naming this server."""
        return f'[llm]\nurl = "{self.base_url}"\nmodel = "{model}"\n'

    # -- the script ------------------------------------------------------------------------------------

    def script(self, *replies: Reply | str) -> None:
        """Answer the next requests with ``replies``, in order, after those already scripted."""
        with self._lock:
            self._script += [_reply(r) for r in replies]

    @property
    def default(self) -> Reply:
        """The answer once the script is used up."""
        with self._lock:
            return self._default

    @default.setter
    def default(self, reply: Reply | str) -> None:
        with self._lock:
            self._default = _reply(reply)

    # -- what was asked --------------------------------------------------------------------------------

    @property
    def requests(self) -> list[LlmRequest]:
        """Every request so far, oldest first."""
        with self._lock:
            return list(self._requests)

    def wait_for_request(self, index: int, *, timeout_s: float = 10.0) -> LlmRequest:
        """Request number ``index`` (from 0) once its answer has ended: sent in full, or abandoned."""
        deadline = self._clock() + timeout_s
        with self._changed:
            while True:
                if index < len(self._requests) and self._requests[index].ended_s is not None:
                    return self._requests[index]
                left = deadline - self._clock()
                if left <= 0:
                    raise TimeoutError(f"request {index} was not answered within {timeout_s} s")
                self._changed.wait(min(left, 0.1))

    # -- serving (request threads) ---------------------------------------------------------------------

    def _serve(self, handler: BaseHTTPRequestHandler) -> None:
        handler.close_connection = True
        path = handler.path.split("?", 1)[0]
        if handler.command != "POST" or not path.rstrip("/").endswith("/chat/completions"):
            _send_json(
                handler, 404, _error(f"no route for {handler.command} {path}", "invalid_request_error")
            )
            return
        length = handler.headers.get("content-length", "")
        if not length.isdigit() or int(length) > MAX_BODY_BYTES:
            _send_json(handler, 411, _error("a Content-Length is required", "invalid_request_error"))
            return
        raw = handler.rfile.read(int(length))
        try:
            parsed = json.loads(raw)
        except ValueError:
            parsed = None
        headers = {name.lower(): value for name, value in handler.headers.items()}
        request = LlmRequest(path, headers, parsed if isinstance(parsed, dict) else {}, self._clock())
        with self._changed:
            request.reply = self._script.pop(0) if self._script else self._default
            self._requests.append(request)
            self._changed.notify_all()
        try:
            _Answer(self, handler, request).send()
        except (OSError, Closing):
            pass  # the answer records how far it got
        finally:
            with self._changed:
                request.ended_s = self._clock()
                self._changed.notify_all()

    def _wait(self, seconds: float, connection: socket.socket, request: LlmRequest) -> None:
        """Pause for ``seconds`` (``math.inf``: until the end), watching for the client hanging up."""
        deadline = self._clock() + seconds
        while True:
            if self._closing.is_set():
                raise Closing
            if _hung_up(connection):
                request.disconnected = True
                raise Closing
            left = deadline - self._clock()
            if left <= 0:
                return
            time.sleep(min(left, _POLL_S))


class _Answer:
    """Sends one scripted reply on one connection."""

    def __init__(self, server: ScriptedLlm, handler: BaseHTTPRequestHandler, request: LlmRequest) -> None:
        assert request.reply is not None
        self._server = server
        self._handler = handler
        self._request = request
        self._reply = request.reply
        self._id = f"chatcmpl-scripted-{next(server._ids)}"
        self._model = request.model or "scripted"
        self._created = int(time.time())  # a wall-clock stamp in the payload, as OpenAI sends

    def send(self) -> None:
        reply = self._reply
        if reply.error_body is not None or not 200 <= reply.status < 300:
            self._send_body()
        elif self._request.body.get("stream") is True and not reply.ignore_stream:
            self._stream()
        else:
            self._pause(reply.delay_first_s)
            _send_json(self._handler, reply.status, self._completion())
            self._request.completed = True

    def _send_body(self) -> None:
        reply = self._reply
        body = reply.error_body
        if body is None:
            kind = "invalid_request_error" if reply.status < 500 else "server_error"
            body = _error(reply.text or "scripted failure", kind)
        if isinstance(body, Mapping):
            data, content_type = json.dumps(body).encode(), "application/json"
        else:
            data = body.encode() if isinstance(body, str) else body
            content_type = "text/plain; charset=utf-8"
        self._pause(reply.delay_first_s)
        _send(self._handler, reply.status, data, reply.content_type or content_type)
        self._request.completed = True

    def _stream(self) -> None:
        reply, handler = self._reply, self._handler
        handler.send_response(reply.status)
        handler.send_header("Content-Type", "text/event-stream; charset=utf-8")
        handler.send_header("Cache-Control", "no-cache")
        handler.send_header("Transfer-Encoding", "chunked")
        handler.send_header("Connection", "close")
        handler.end_headers()
        self._event(self._chunk({"role": "assistant", "content": ""}, None))
        self._pause(reply.delay_first_s)
        pieces = [reply.text[i : i + reply.chunk_chars] for i in range(0, len(reply.text), reply.chunk_chars)]
        for index, piece in enumerate(pieces):
            if index:
                self._pause(reply.delay_between_s)
            self._event(self._chunk({"content": piece}, None))
            self._request.chunks_sent += 1
            if self._request.first_text_s is None:
                self._request.first_text_s = self._server._clock()
            if reply.stall:
                break
        if reply.stall:
            self._server._wait(math.inf, handler.connection, self._request)
        self._pause(reply.delay_between_s if pieces else 0.0)
        self._event(self._chunk({}, "stop"))
        self._event(b"data: [DONE]\n\n")
        self._request.completed = True
        with contextlib.suppress(OSError):  # the client may leave once it has read [DONE]
            handler.wfile.write(b"0\r\n\r\n")
            handler.wfile.flush()

    def _pause(self, seconds: float) -> None:
        if seconds > 0:
            self._server._wait(seconds, self._handler.connection, self._request)

    def _event(self, data: bytes) -> None:
        """One SSE event in one HTTP chunk, sent now."""
        try:
            self._handler.wfile.write(b"%x\r\n%s\r\n" % (len(data), data))
            self._handler.wfile.flush()
        except OSError:
            self._request.disconnected = True
            raise

    def _chunk(self, delta: dict[str, Any], finish_reason: str | None) -> bytes:
        chunk = {
            "id": self._id,
            "object": "chat.completion.chunk",
            "created": self._created,
            "model": self._model,
            "choices": [{"index": 0, "delta": delta, "logprobs": None, "finish_reason": finish_reason}],
        }
        return b"data: " + json.dumps(chunk, ensure_ascii=False).encode() + b"\n\n"

    def _completion(self) -> dict[str, Any]:
        return {
            "id": self._id,
            "object": "chat.completion",
            "created": self._created,
            "model": self._model,
            "choices": [
                {
                    "index": 0,
                    "message": {"role": "assistant", "content": self._reply.text},
                    "logprobs": None,
                    "finish_reason": "stop",
                }
            ],
            "usage": {"prompt_tokens": 0, "completion_tokens": 0, "total_tokens": 0},
        }


def _reply(reply: Reply | str) -> Reply:
    return Reply(reply) if isinstance(reply, str) else reply


def _error(message: str, kind: str) -> dict[str, Any]:
    return {"error": {"message": message, "type": kind, "param": None, "code": None}}


def _send_json(handler: BaseHTTPRequestHandler, status: int, body: Mapping[str, Any]) -> None:
    _send(handler, status, json.dumps(body, ensure_ascii=False).encode(), "application/json")


def _send(handler: BaseHTTPRequestHandler, status: int, body: bytes, content_type: str) -> None:
    handler.send_response(status)
    handler.send_header("Content-Type", content_type)
    handler.send_header("Content-Length", str(len(body)))
    handler.send_header("Connection", "close")
    handler.end_headers()
    handler.wfile.write(body)
    handler.wfile.flush()


def _hung_up(connection: socket.socket) -> bool:
    """Whether the client closed its end (its request was read in full, so anything readable is EOF)."""
    try:
        readable, _, _ = select.select([connection], [], [], 0)
        if not readable:
            return False
        return connection.recv(1, socket.MSG_PEEK) == b""
    except (OSError, ValueError):
        return True
