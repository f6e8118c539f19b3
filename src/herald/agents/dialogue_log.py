"""The conversation log: each utterance the agent was asked to say, what was heard of it, how it ended.

Lines are written in batches by one background task, off the speech path: recording an outcome is a
non-blocking append, and a burst of outcomes (hundreds of dropped speeches a second) costs one
transaction per batch, not one each. ``flush()`` writes what is pending (on shutdown, and for readers
that must see their own writes).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging

from herald.agents.requests import SpeechKind, SpeechRequest
from herald.clock import Clock
from herald.speech.handle import Outcome
from herald.store.dialogues import DialogueStore, Order
from herald.store.records import DialogueRecord

_log = logging.getLogger(__name__)

MAX_BATCH = 500
MAX_PENDING = 50_000
"""Past this many unwritten lines (the database is down or far too slow) new ones are dropped and logged."""


class DialogueLog:
    def __init__(self, dialogues: DialogueStore, clock: Clock, *, batch_delay_s: float = 0.05) -> None:
        self._dialogues = dialogues
        self._clock = clock
        self._batch_delay_s = batch_delay_s
        self._pending: list[DialogueRecord] = []
        self._wake = asyncio.Event()
        self._writer: asyncio.Task[None] | None = None
        self._flushing = asyncio.Lock()
        self.dropped = 0

    def record(
        self, owner: str, session_id: str, instance_id: str, request: SpeechRequest, outcome: Outcome
    ) -> None:
        """Queue one dialogue line: ``Text`` is what was heard, ``Extend`` how it ended. Never blocks."""
        if len(self._pending) >= MAX_PENDING:
            self.dropped += 1
            if self.dropped % 1000 == 1:
                _log.error("dialogue log is %d lines behind; dropped %d", len(self._pending), self.dropped)
            return
        audio = request.kind is SpeechKind.AUDIO_URL
        self._pending.append(
            DialogueRecord(
                dialogue_id=request.utterance_id,
                session_id=session_id,
                instance_id=instance_id,
                owner=owner,
                round_id=request.utterance_id,
                producer="agent",
                # Audio has no captions: what was heard of it is the URL, if anything played.
                text=(request.content if outcome.played_ms else "") if audio else outcome.heard_text,
                time_ms=int(self._clock.now().timestamp() * 1000),
                source="call",
                type=request.dialogue_type.value,
                extend={
                    "RequestId": request.utterance_id,
                    "Kind": request.kind.value,
                    "Outcome": outcome.state.value,
                    "PlayedMs": outcome.played_ms,
                    "Reason": outcome.reason,
                    "Content": request.content,
                },
            )
        )
        self._ensure_writer()
        self._wake.set()

    async def flush(self) -> None:
        """Write every pending line now."""
        async with self._flushing:
            while self._pending:
                batch, self._pending = self._pending[:MAX_BATCH], self._pending[MAX_BATCH:]
                try:
                    await self._dialogues.add_all(batch)
                except Exception:  # the database is unwell: keep the lines for the next attempt
                    self._pending[:0] = batch
                    raise

    async def close(self) -> None:
        if self._writer is not None:
            self._writer.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._writer
            self._writer = None
        with contextlib.suppress(Exception):
            await self.flush()

    async def list(
        self,
        owner: str,
        session_id: str,
        *,
        start_ms: int,
        end_ms: int,
        order: Order,
        page_number: int,
        page_size: int,
        round_limit: int | None,
    ) -> list[DialogueRecord]:
        await self.flush()  # a caller sees every outcome that has happened
        return await self._dialogues.list(
            session_id=session_id,
            owner=owner,
            start_ms=start_ms,
            end_ms=end_ms,
            order=order,
            offset=(page_number - 1) * page_size,
            limit=page_size,
            round_limit=round_limit,
        )

    def _ensure_writer(self) -> None:
        if self._writer is None or self._writer.done():
            self._writer = asyncio.create_task(self._write_forever(), name="dialogue-log")

    async def _write_forever(self) -> None:
        while True:
            await self._wake.wait()
            self._wake.clear()
            await asyncio.sleep(self._batch_delay_s)  # gather a batch
            try:
                await self.flush()
            except Exception:
                _log.exception("could not write %d dialogue line(s); will retry", len(self._pending))
                await asyncio.sleep(1.0)
                self._wake.set()
