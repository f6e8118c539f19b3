"""What every joined call records: audio chunks and messages in arrival order, and how it ended.

``CallSession`` is the part ``RtcCall`` and ``WsCall`` share. The transport feeds it
(``_add_audio``, ``_add_message``, ``_end``); callers read ``items``, ``audio()``, ``messages()`` and
``pcm()``, wait with ``wait_until``, and may watch as it happens through the ``on_audio``,
``on_message`` and ``on_end`` callbacks (called on the event loop, in arrival order).
"""

from __future__ import annotations

import abc
import asyncio
import time
from collections.abc import Callable
from types import TracebackType
from typing import Any, Self

import numpy as np

from herald.client import messages
from herald.client.audio import AudioChunk, Pcm
from herald.client.errors import CallFailed
from herald.client.messages import Message

Item = AudioChunk | Message


class CallSession(abc.ABC):
    """A call joined over one transport; use as an async context manager (``join`` / ``leave``)."""

    sample_rate_hz: int

    def __init__(
        self,
        *,
        clock: Callable[[], float] = time.monotonic,
        keep_audio: bool = True,
        on_audio: Callable[[AudioChunk], None] | None = None,
        on_message: Callable[[Message], None] | None = None,
        on_end: Callable[[str], None] | None = None,
    ) -> None:
        self.items: list[Item] = []
        """Everything received, in arrival order (audio only with ``keep_audio``)."""
        self.joined_s: float | None = None
        """When the call was joined (the session's clock), once it is."""
        self.end_reason = ""
        """Why the call ended (empty while it goes on)."""
        self.audio_s = 0.0
        """Seconds of audio received (kept or not)."""
        self._clock = clock
        self._keep_audio = keep_audio
        self._on_audio = on_audio
        self._on_message = on_message
        self._on_end = on_end
        self._changed = asyncio.Event()
        """Set (and replaced by a fresh one) whenever something is received or the call ends."""

    # -- the transport's side -------------------------------------------------------------------------

    @abc.abstractmethod
    async def join(self) -> Self:
        """Join the call; raises ``Refused``, ``Unreachable`` or ``CallFailed`` if it cannot."""

    @abc.abstractmethod
    async def leave(self) -> None:
        """Leave the call and release everything (safe to call twice, and after the call ended)."""

    @abc.abstractmethod
    async def send_text(self, text: str) -> None:
        """Send ``text`` as one message as it is (``send`` builds the envelope; this is for tests)."""

    def now(self) -> float:
        return self._clock()

    def _add_audio(self, pcm: Pcm) -> None:
        chunk = AudioChunk(self._clock(), pcm, self.sample_rate_hz)
        self.audio_s += chunk.duration_s
        if self._keep_audio:
            self.items.append(chunk)
        if self._on_audio is not None:
            self._on_audio(chunk)
        self._notify()

    def _add_message(self, raw: str | bytes) -> None:
        message = messages.parse(raw, self._clock())
        self.items.append(message)
        if self._on_message is not None:
            self._on_message(message)
        self._notify()

    def _end(self, reason: str) -> None:
        """Record that the call ended (the first reason given wins)."""
        if self.end_reason:
            return
        self.end_reason = reason
        if self._on_end is not None:
            self._on_end(reason)
        self._notify()

    def _notify(self) -> None:
        # Everything runs on the event loop: waiters check their predicate, then wait on the current
        # event; setting it and starting a new one wakes each of them exactly once.
        changed, self._changed = self._changed, asyncio.Event()
        changed.set()

    # -- the caller's side ----------------------------------------------------------------------------

    @property
    def ended(self) -> bool:
        return bool(self.end_reason)

    async def send(self, msg_type: int, data: dict[str, Any] | None = None) -> None:
        """Send a client -> agent message (``1100`` stop, ``1101`` interrupt, ``1103`` voice, ``1119``)."""
        if self.ended:
            raise CallFailed(f"the call has ended ({self.end_reason})")
        await self.send_text(messages.encode(msg_type, data))

    def audio(self) -> list[AudioChunk]:
        return [item for item in self.items if isinstance(item, AudioChunk)]

    def messages(self, msg_type: int | None = None) -> list[Message]:
        return [
            item
            for item in self.items
            if isinstance(item, Message) and (msg_type is None or item.type == msg_type)
        ]

    def pcm(self) -> Pcm:
        """All audio kept, concatenated."""
        chunks = [chunk.pcm for chunk in self.audio()]
        return np.concatenate(chunks) if chunks else np.zeros(0, dtype=np.int16)

    async def wait_until(self, predicate: Callable[[], bool], *, timeout_s: float, what: str) -> None:
        """Wait until ``predicate()`` holds; ``TimeoutError`` naming ``what`` if it does not in time."""
        try:
            async with asyncio.timeout(timeout_s):
                while not predicate():
                    await self._changed.wait()
        except TimeoutError:
            raise TimeoutError(f"no {what} within {timeout_s} s") from None

    async def __aenter__(self) -> Self:
        try:
            return await self.join()
        except BaseException:
            await self.leave()
            raise

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self.leave()
