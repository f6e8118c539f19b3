"""A minimal signed ICE client: V3 (``ACS3-HMAC-SHA256``) signing and keep-alive HTTP/1.1 on asyncio streams.

The official SDK costs milliseconds per call and never sends Herald's own parameters (``Policy``); httpx
is much slower than raw streams. Here a request is built and signed as bytes (``signed_request``, per
``docs/ice-wire.md``), so a load generator can sign ahead of time and spend its time on I/O only.

    async with RpcClient("127.0.0.1", port, key_id, secret) as api:
        body, answered_s = await api.call("SendAIAgentSpeech", {"InstanceId": i, "Text": "Hi"})
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import hmac
import json
import secrets
import time
from dataclasses import dataclass
from types import TracebackType
from typing import Any, Final
from urllib.parse import quote

API_VERSION: Final = "2020-11-09"
IDLE_REUSE_S: Final = 3.0
"""Reuse a connection idle at most this long: uvicorn closes keep-alive connections idle for 5 s."""
EMPTY_SHA256: Final = hashlib.sha256(b"").hexdigest()


def signed_request(
    host: str,
    action: str,
    params: dict[str, str],
    key_id: str,
    secret: str,
    *,
    nonce: str | None = None,
    date: str | None = None,
) -> bytes:
    """A complete ``POST /?query`` request with no body, signed with V3, ready to write to a socket."""
    # The query is sent exactly as it is canonicalised: sorted, RFC 3986 (space is %20, '~' kept).
    query = "&".join(f"{name}={quote(value, safe='~')}" for name, value in sorted(params.items()))
    headers = {
        "host": host,
        "x-acs-action": action,
        "x-acs-content-sha256": EMPTY_SHA256,
        "x-acs-date": date or time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "x-acs-signature-nonce": nonce or secrets.token_hex(16),
        "x-acs-version": API_VERSION,
    }
    signature = v3_signature("POST", "/", query, headers, EMPTY_SHA256, secret)
    signed = ";".join(sorted(headers))
    authorization = f"ACS3-HMAC-SHA256 Credential={key_id},SignedHeaders={signed},Signature={signature}"
    lines = [f"POST /?{query} HTTP/1.1", *(f"{k}: {v}" for k, v in headers.items())]
    lines += [f"authorization: {authorization}", "content-length: 0", "", ""]
    return "\r\n".join(lines).encode()


def v3_signature(
    method: str, path: str, canonical_query: str, headers: dict[str, str], payload_sha256: str, secret: str
) -> str:
    """Hex HMAC-SHA256 over the V3 StringToSign; every header given is signed."""
    names = sorted(headers)
    canonical = "\n".join(
        [
            method,
            path,
            canonical_query,
            "".join(f"{name}:{headers[name].strip()}\n" for name in names),
            ";".join(names),
            payload_sha256,
        ]
    )
    digest = hashlib.sha256(canonical.encode()).hexdigest()
    return hmac.new(secret.encode(), f"ACS3-HMAC-SHA256\n{digest}".encode(), hashlib.sha256).hexdigest()


class HttpError(RuntimeError):
    def __init__(self, status: int, body: bytes) -> None:
        super().__init__(f"HTTP {status}: {body[:300]!r}")
        self.status = status
        self.body = body


class Connection:
    """One keep-alive HTTP/1.1 connection; ``exchange`` sends a request and reads its whole answer."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self._reader = reader
        self._writer = writer

    @classmethod
    async def open(cls, host: str, port: int) -> Connection:
        reader, writer = await asyncio.open_connection(host, port)
        return cls(reader, writer)

    async def exchange(self, request: bytes) -> tuple[int, bytes]:
        """Send ``request``; return the status and body. Answers must carry ``content-length``."""
        self._writer.write(request)
        head = await self._reader.readuntil(b"\r\n\r\n")
        status = int(head[9:12])
        length = _content_length(head)
        body = await self._reader.readexactly(length) if length else b""
        return status, body

    async def close(self) -> None:
        self._writer.close()
        with contextlib.suppress(ConnectionError):
            await self._writer.wait_closed()


def _content_length(head: bytes) -> int:
    for line in head.split(b"\r\n"):
        name, _, value = line.partition(b":")
        if name.strip().lower() == b"content-length":
            return int(value)
    raise ValueError(f"an answer without content-length: {head[:200]!r}")


@dataclass(frozen=True, slots=True)
class Call:
    """What ``GenerateAIAgentCall`` answered."""

    instance_id: str
    channel_id: str
    user_id: str
    token: str


class RpcClient:
    """Signed calls over one keep-alive connection (calls are serialised: one in flight at a time)."""

    def __init__(self, host: str, port: int, key_id: str, secret: str) -> None:
        self.host = host
        self.port = port
        self._key_id = key_id
        self._secret = secret
        self._connection: Connection | None = None
        self._last_used_s = 0.0
        self._lock = asyncio.Lock()

    def request(self, action: str, params: dict[str, str]) -> bytes:
        return signed_request(f"{self.host}:{self.port}", action, params, self._key_id, self._secret)

    async def call(self, action: str, params: dict[str, str]) -> tuple[dict[str, Any], float]:
        """The parsed answer and the ``time.monotonic()`` when it fully arrived; ``HttpError`` if not 200."""
        raw = self.request(action, params)
        async with self._lock:
            if self._connection is not None and time.monotonic() - self._last_used_s > IDLE_REUSE_S:
                await self._drop()
            if self._connection is None:
                self._connection = await Connection.open(self.host, self.port)
            try:
                status, body = await self._connection.exchange(raw)
            except (ConnectionError, asyncio.IncompleteReadError):
                await self._drop()
                raise
            answered_s = self._last_used_s = time.monotonic()
        if status != 200:
            raise HttpError(status, body)
        answer: dict[str, Any] = json.loads(body)
        return answer, answered_s

    async def generate_call(self, agent_id: str = "default") -> Call:
        body, _ = await self.call("GenerateAIAgentCall", {"AIAgentId": agent_id})
        return Call(body["InstanceId"], body["ChannelId"], body["UserId"], body["Token"])

    async def speak(self, instance_id: str, text: str, **extra: str) -> float:
        """``SendAIAgentSpeech``; returns when its answer arrived (``time.monotonic()``)."""
        _, answered_s = await self.call(
            "SendAIAgentSpeech", {"InstanceId": instance_id, "Text": text, **extra}
        )
        return answered_s

    async def stop(self, instance_id: str) -> None:
        await self.call("StopAIAgentInstance", {"InstanceId": instance_id})

    async def _drop(self) -> None:
        if self._connection is not None:
            await self._connection.close()
            self._connection = None

    async def close(self) -> None:
        await self._drop()

    async def __aenter__(self) -> RpcClient:
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self.close()
