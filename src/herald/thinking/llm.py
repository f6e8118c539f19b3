"""A chat model behind an OpenAI-compatible chat-completions endpoint, its reply streamed.

    chat = OpenAIChat("https://api.example/v1", "some-model", api_key, fetcher)   # fetcher: SafeFetcher
    async with contextlib.aclosing(chat.reply([ChatMessage("user", "Hi!")])) as deltas:
        async for delta in deltas:                                            # text as it is written
            ...

The request is ``POST {base_url}/chat/completions`` with ``"stream": true``; the answer is read as
server-sent events (``data: {chat.completion.chunk}`` ... ``data: [DONE]``), or as one ``chat.completion``
JSON from a server that ignores ``stream``. Closing the generator early (the user interrupted) closes the
HTTP response at once. Every failure is an ``LlmError`` whose ``reason`` can be shown to an operator or
user and never holds the API key.

The network is reached through ``SafeFetcher.exchange`` (``HttpExchange``), under its address policy.
"""

from __future__ import annotations

import codecs
import json
from collections.abc import AsyncGenerator, AsyncIterator, Callable, Iterator, Mapping, Sequence
from contextlib import AsyncExitStack, aclosing
from dataclasses import dataclass
from typing import Any, Final, Protocol

from herald.media.fetch import FetchError, FetchLimits, HttpExchange, WaitBudget, check_url

ROLES: Final = frozenset({"system", "user", "assistant"})
_EXCERPT_CHARS: Final = 200
_ERROR_BODY_BYTES: Final = 16_384  # enough for any error message; the rest is not read


@dataclass(frozen=True)
class ChatMessage:
    role: str
    """``system``, ``user`` or ``assistant``."""
    content: str

    def __post_init__(self) -> None:
        if self.role not in ROLES:
            raise ValueError(f"a chat message's role is system, user or assistant, not {self.role!r}")


class ChatModel(Protocol):
    def reply(self, messages: Sequence[ChatMessage]) -> AsyncGenerator[str, None]:
        """The reply's text as it is written, in deltas; raises ``LlmError``. Close it to stop early."""
        ...


class LlmError(Exception):
    """The model gave no usable reply; ``reason`` says why, fit for an operator or user."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


class OpenAIChat:
    """A ``ChatModel`` speaking the OpenAI chat-completions API.

    ``first_token_timeout_s`` bounds the wait for the reply's first text (connecting included),
    ``between_tokens_timeout_s`` each wait for more; only time spent waiting on the network counts, not
    time the consumer spends between deltas. ``reply_timeout_s`` bounds the whole reply's network time.
    ``extra_body`` adds fields to each request (``temperature``, ``max_tokens``, ...); it may replace
    ``model`` but not ``messages`` or ``stream``.
    """

    def __init__(
        self,
        base_url: str,
        model: str,
        api_key: str,
        exchange: HttpExchange,
        *,
        first_token_timeout_s: float = 10.0,
        between_tokens_timeout_s: float = 10.0,
        reply_timeout_s: float = 120.0,
        max_reply_bytes: int = 8_000_000,
        extra_body: Mapping[str, Any] | None = None,
    ) -> None:
        self._url = base_url.rstrip("/") + "/chat/completions"
        violation = check_url(self._url)
        if violation is not None:
            raise ValueError(f"the model's base URL is not usable: {violation}")
        if first_token_timeout_s <= 0 or between_tokens_timeout_s <= 0:
            raise ValueError("the model's timeouts must be positive")
        self.model = model
        self._api_key = api_key
        self._http = exchange
        self._first_s = first_token_timeout_s
        self._between_s = between_tokens_timeout_s
        # The fetcher's own read timeout stays behind ours, so the reason names the model's wait.
        self._limits = FetchLimits(
            max_bytes=max_reply_bytes,
            connect_timeout_s=min(5.0, first_token_timeout_s),
            read_timeout_s=max(first_token_timeout_s, between_tokens_timeout_s) + 5.0,
            total_timeout_s=reply_timeout_s,
        )
        self._extra = dict(extra_body or {})
        if "messages" in self._extra or "stream" in self._extra:
            raise ValueError("extra_body must not set messages or stream")

    async def reply(self, messages: Sequence[ChatMessage]) -> AsyncGenerator[str, None]:
        """The reply's text deltas, none empty; raises ``LlmError``. Close it to stop reading at once."""
        body = {
            "model": self.model,
            **self._extra,
            "messages": [{"role": m.role, "content": m.content} for m in messages],
            "stream": True,
        }
        headers = {"Content-Type": "application/json", "Accept": "text/event-stream"}
        if self._api_key:
            headers["Authorization"] = f"Bearer {self._api_key}"
        patience = _Patience(self._first_s, self._between_s)
        try:
            async with AsyncExitStack() as stack:
                async with patience.waiting():
                    answer = await stack.enter_async_context(
                        self._http.exchange(self._url, _json_bytes(body), headers, limits=self._limits)
                    )
                chunks = await stack.enter_async_context(aclosing(answer.chunks()))
                if not 200 <= answer.status_code < 300:
                    raise LlmError(await self._http_error(answer.status_code, chunks, patience))
                parser = _ReplyParser(self._excerpt)
                while not parser.done:
                    try:
                        async with patience.waiting():
                            chunk = await anext(chunks, None)
                    except _Timeout:
                        if parser.finished:
                            break  # the reply is complete; only its [DONE] is late
                        raise
                    texts = parser.feed(chunk) if chunk is not None else parser.finish()
                    for text in texts:
                        patience.text_arrived()
                        yield text
                    if chunk is None:
                        break
        except _Timeout as exc:
            raise LlmError(exc.reason) from None
        except FetchError as exc:
            raise LlmError(f"could not get a reply from the model: {self._excerpt(exc.reason)}") from None

    async def _http_error(self, status: int, chunks: AsyncIterator[bytes], patience: _Patience) -> str:
        """The reason for an HTTP error: its status and the message of its body, if one comes in time."""
        body = b""
        try:
            while len(body) < _ERROR_BODY_BYTES:
                async with patience.waiting():
                    chunk = await anext(chunks, None)
                if chunk is None:
                    break
                body += chunk
        except (_Timeout, FetchError):
            pass  # the status alone will do
        message = _error_message(body.decode("utf-8", errors="replace"))
        if not message:
            return f"the model answered HTTP {status}"
        return f"the model answered HTTP {status}: {self._excerpt(message)}"

    def _excerpt(self, text: str) -> str:
        """``text`` on one line, short, without the API key (a server may echo it)."""
        if self._api_key:
            text = text.replace(self._api_key, "***")
        text = " ".join(text.split())
        return text if len(text) <= _EXCERPT_CHARS else text[: _EXCERPT_CHARS - 1] + "…"


def _json_bytes(value: object) -> bytes:
    return json.dumps(value, ensure_ascii=False).encode("utf-8")


def _error_message(body: str) -> str:
    """The message of an error body: OpenAI's ``{"error": {"message": ...}}``, a few kin, or the text."""
    try:
        parsed: object = json.loads(body)
    except ValueError:
        return body.strip()
    if isinstance(parsed, dict):
        error = parsed.get("error", parsed)
        if isinstance(error, str):
            return error
        if isinstance(error, dict):
            for key in ("message", "detail", "msg"):
                if isinstance(error.get(key), str):
                    return str(error[key])
    return body.strip()


class _Timeout(Exception):
    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


class _Patience(WaitBudget):
    """How long to keep waiting on the network: for the first text, then for each next one."""

    def __init__(self, first_s: float, between_s: float) -> None:
        super().__init__(first_s, self._timed_out)
        self._between_s = between_s
        self._started = False

    def text_arrived(self) -> None:
        self._started = True
        self.renew(self._between_s)

    def _timed_out(self, limit_s: float) -> _Timeout:
        what = "more of the reply" if self._started else "the reply to start"
        return _Timeout(f"timed out after {limit_s:g} s waiting for {what}")


class _ReplyParser:
    """Text deltas from a reply's body as it arrives: server-sent ``chat.completion.chunk`` events, or a
    single ``chat.completion`` JSON. The body's first character tells which (a stream never starts with
    "{"), whatever the content type claims."""

    def __init__(self, excerpt: Callable[[str], str]) -> None:
        self._mode = "sniff"
        self._excerpt = excerpt
        self._decoder = codecs.getincrementaldecoder("utf-8")(errors="replace")
        self._pending = ""  # text after the last complete line (or the whole JSON body)
        self._data: list[str] = []  # the data lines of the event being read
        self._event = ""
        self._events = 0
        self.done = False  # [DONE] arrived: nothing more to read
        self.finished = False  # a finish_reason arrived: the text is complete

    def feed(self, chunk: bytes) -> Iterator[str]:
        """The texts ``chunk`` completed; a failure is raised after the texts that came before it."""
        self._pending += self._decoder.decode(chunk)
        if self._mode == "sniff" and self._pending.strip():
            self._mode = "json" if self._pending.lstrip().startswith("{") else "sse"
        if self._mode != "sse":
            return
        # Lines end in CRLF, LF or CR; a CR at the very end may be half of a CRLF still on its way, so
        # it and its line wait for the next chunk.
        text, held = self._pending, ""
        if text.endswith("\r"):
            text, held = text[:-1], "\r"
        lines = text.replace("\r\n", "\n").replace("\r", "\n").split("\n")
        self._pending = lines.pop() + held
        for line in lines:
            if self.done:
                return
            yield from self._line(line)

    def finish(self) -> Iterator[str]:
        """The body ended: the texts its last, unterminated part held."""
        self._pending += self._decoder.decode(b"", final=True)
        if self._mode == "json":
            yield from self._json_reply(self._pending)
            return
        if self._mode == "sniff":
            raise LlmError("the reply was not a chat-completions stream (the body was empty)")
        if self._pending.strip("\r"):
            yield from self._line(self._pending.strip("\r"))
        yield from self._line("")
        if self._events == 0:
            raise LlmError("the reply was not a chat-completions stream (it held no data)")

    def _line(self, line: str) -> list[str]:
        if not line:
            return self._dispatch()
        if line.startswith(":"):
            return []  # a comment: a keep-alive
        name, _, value = line.partition(":")
        if name == "data":
            self._data.append(value.removeprefix(" "))
        elif name == "event":
            self._event = value.strip()
        elif name not in ("id", "retry"):
            raise LlmError(f"the reply was not a chat-completions stream (it held: {self._excerpt(line)!r})")
        return []

    def _dispatch(self) -> list[str]:
        data, event = "\n".join(self._data), self._event
        self._data, self._event = [], ""
        if not data:
            return []
        self._events += 1
        if data.strip() == "[DONE]":
            self.done = True
            return []
        try:
            chunk = json.loads(data)
        except ValueError:
            excerpt = self._excerpt(data)
            raise LlmError(
                f"the reply was not a chat-completions stream (an event was not JSON: {excerpt!r})"
            ) from None
        if event == "error" or (isinstance(chunk, dict) and "error" in chunk):
            reason = self._excerpt(_error_message(data)) or "no reason given"
            raise LlmError(f"the model failed mid-reply: {reason}")
        return self._choice_text(chunk, "delta")

    def _json_reply(self, body: str) -> list[str]:
        try:
            reply = json.loads(body)
        except ValueError:
            raise LlmError(
                f"the reply was neither a chat-completions stream nor JSON (it began: "
                f"{self._excerpt(body[:_EXCERPT_CHARS])!r})"
            ) from None
        if isinstance(reply, dict) and "error" in reply:
            raise LlmError(f"the model failed: {self._excerpt(_error_message(body)) or 'no reason'}")
        self.finished = self.done = True
        return self._choice_text(reply, "message")

    def _choice_text(self, chunk: object, key: str) -> list[str]:
        choices = chunk.get("choices") if isinstance(chunk, dict) else None
        if not isinstance(choices, list):
            kind = "chat-completions stream" if key == "delta" else "chat completion"
            raise LlmError(f"the reply was not a {kind} (no choices)")
        if not choices or not isinstance(choices[0], dict):
            return []  # a usage chunk, say
        choice = choices[0]
        if choice.get("finish_reason"):
            self.finished = True
        part = choice.get(key)
        content = part.get("content") if isinstance(part, dict) else None
        return [content] if isinstance(content, str) and content else []
