"""Rows written in batches by one background task, off the caller's path.

Adding a row is a non-blocking append (it is called on the speech path); a task gathers what arrived
within ``batch_delay_s`` and writes it in one transaction per ``max_batch`` rows, in order. A failed
write keeps its rows for the next attempt; past ``max_pending`` unwritten rows (the database is down or
far too slow) new ones are dropped, loudly. ``flush()`` writes what is pending now (at shutdown, and for
readers that must see their own writes).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable
from typing import Generic, TypeVar

from herald.observability.outages import OutageLog

_log = logging.getLogger(__name__)

T = TypeVar("T")


class BatchWriter(Generic[T]):
    def __init__(
        self,
        write: Callable[[list[T]], Awaitable[None]],
        *,
        what: str,
        after_write: Callable[[list[T]], None] = lambda batch: None,
        batch_delay_s: float = 0.05,
        max_batch: int = 500,
        max_pending: int = 50_000,
    ) -> None:
        self._write = write
        self._what = what
        self._after_write = after_write
        self._batch_delay_s = batch_delay_s
        self._max_batch = max_batch
        self._max_pending = max_pending
        self._pending: list[T] = []
        self._wake = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self._flushing = asyncio.Lock()
        self.dropped = 0
        self._outage = OutageLog(_log, f"writing {what} rows")

    def add(self, row: T) -> bool:
        """Queue ``row``; ``False`` if it was dropped (too much is waiting). Never blocks."""
        if len(self._pending) >= self._max_pending:
            self.dropped += 1
            if self.dropped % 1000 == 1:
                behind = len(self._pending)
                _log.error("the %s writer is %d rows behind; dropped %d", self._what, behind, self.dropped)
            return False
        self._pending.append(row)
        if self._task is None or self._task.done():
            self._task = asyncio.create_task(self._write_forever(), name=f"{self._what}-writer")
        self._wake.set()
        return True

    async def flush(self) -> None:
        """Write every pending row now (then hand each batch to ``after_write``)."""
        async with self._flushing:
            while self._pending:
                batch, self._pending = self._pending[: self._max_batch], self._pending[self._max_batch :]
                try:
                    await self._write(batch)
                except Exception:  # the database is unwell: keep the rows for the next attempt
                    self._pending[:0] = batch
                    raise
                self._after_write(batch)

    async def close(self) -> None:
        """Stop the task and write what is left (a failure is logged: nothing more can be done)."""
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None
        try:
            await self.flush()
        except Exception:
            _log.exception("could not write %d %s row(s) at shutdown", len(self._pending), self._what)

    async def _write_forever(self) -> None:
        while True:
            await self._wake.wait()
            self._wake.clear()
            await asyncio.sleep(self._batch_delay_s)  # gather a batch
            try:
                await self.flush()
            except Exception as exc:
                self._outage.failed(exc, f"{len(self._pending)} row(s) kept, retrying every second")
                await asyncio.sleep(1.0)
                self._wake.set()
            else:
                self._outage.succeeded()
