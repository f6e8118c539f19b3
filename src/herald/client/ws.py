"""Join a call over the audio WebSocket: ``GET /v1/calls/{ChannelId}/audio`` (``docs/webrtc.md``).

Binary messages are 20 ms of 16-bit little-endian mono PCM at the rate asked for, text messages the
data-channel envelope; the client sends its messages as text. The token goes in the ``Authorization``
header, which keeps it out of URLs and logs.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Callable
from typing import Final, Self
from urllib.parse import quote, urlsplit, urlunsplit

import numpy as np
from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed, InvalidHandshake, InvalidStatus

from herald.client.audio import AudioChunk
from herald.client.errors import CallFailed, Refused, unreachable
from herald.client.messages import Message
from herald.client.session import CallSession

SAMPLE_RATES_HZ: Final = (8_000, 16_000, 24_000, 48_000)


def audio_socket_url(endpoint: str, channel_id: str, sample_rate_hz: int) -> str:
    """``ws(s)://host/v1/calls/{ChannelId}/audio?sample_rate=N`` for an ``http(s)://`` endpoint."""
    parts = urlsplit(endpoint.rstrip("/"))
    scheme = {"http": "ws", "https": "wss"}.get(parts.scheme, parts.scheme)
    path = f"{parts.path}/v1/calls/{quote(channel_id, safe='')}/audio"
    return urlunsplit((scheme, parts.netloc, path, f"sample_rate={sample_rate_hz}", ""))


class WsCall(CallSession):
    """A WebSocket listener of a channel: hears the agent at ``sample_rate_hz``, gets and sends messages."""

    def __init__(
        self,
        endpoint: str,
        channel_id: str,
        token: str,
        *,
        sample_rate_hz: int = 48_000,
        connect_timeout_s: float = 10.0,
        clock: Callable[[], float] = time.monotonic,
        keep_audio: bool = True,
        on_audio: Callable[[AudioChunk], None] | None = None,
        on_message: Callable[[Message], None] | None = None,
        on_end: Callable[[str], None] | None = None,
    ) -> None:
        super().__init__(
            clock=clock, keep_audio=keep_audio, on_audio=on_audio, on_message=on_message, on_end=on_end
        )
        if sample_rate_hz not in SAMPLE_RATES_HZ:
            raise ValueError(f"sample_rate_hz must be one of {SAMPLE_RATES_HZ}, not {sample_rate_hz}")
        self.sample_rate_hz = sample_rate_hz
        self.endpoint = endpoint.rstrip("/")
        self.channel_id = channel_id
        self.url = audio_socket_url(endpoint, channel_id, sample_rate_hz)
        self.close_code: int | None = None
        self._token = token
        self._connect_timeout_s = connect_timeout_s
        self._ws: ClientConnection | None = None
        self._reader: asyncio.Task[None] | None = None
        self._leaving = False

    async def join(self) -> Self:
        """Open the WebSocket; raises ``Refused`` (``InvalidToken``, ``ChannelNotFound``, ...),
        ``Unreachable`` or ``CallFailed``."""
        try:
            self._ws = await connect(
                self.url,
                additional_headers={"Authorization": f"Bearer {self._token}"},
                proxy=None,
                compression=None,  # audio does not compress
                open_timeout=self._connect_timeout_s,
                max_size=None,
            )
        except InvalidStatus as exc:
            raise Refused.from_response(exc.response.status_code, bytes(exc.response.body)) from None
        except InvalidHandshake as exc:
            raise CallFailed(f"the WebSocket handshake with {self.endpoint} failed: {exc}") from None
        except (TimeoutError, OSError) as exc:
            raise unreachable(self.endpoint, exc, self._connect_timeout_s) from None
        self.joined_s = self.now()
        self._reader = asyncio.get_running_loop().create_task(self._read(self._ws))
        return self

    async def leave(self) -> None:
        """Close the WebSocket (safe to call twice, and after the server closed it)."""
        if self._leaving:
            return
        self._leaving = True
        if self._ws is not None:
            await self._ws.close()
        if self._reader is not None:
            with contextlib.suppress(asyncio.CancelledError):
                await self._reader
        self._end("left")

    async def send_text(self, text: str) -> None:
        if self._ws is None:
            raise CallFailed("not joined")
        try:
            await self._ws.send(text)
        except ConnectionClosed:
            raise CallFailed("the WebSocket is closed") from None

    async def _read(self, ws: ClientConnection) -> None:
        try:
            async for message in ws:
                if isinstance(message, bytes):
                    # An odd trailing byte cannot be a sample: drop it rather than fail the call.
                    usable = len(message) - len(message) % 2
                    self._add_audio(np.frombuffer(message[:usable], dtype="<i2").astype(np.int16))
                else:
                    self._add_message(message)
        except ConnectionClosed:
            pass
        finally:
            self.close_code = ws.close_code
            if not self._leaving:
                self._end(f"the server closed the connection (code {ws.close_code})")
