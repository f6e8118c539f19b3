"""A virtual clock: time moves only when a test calls ``advance``."""

from __future__ import annotations

import asyncio
import heapq
import itertools
from datetime import UTC, datetime, timedelta


class VirtualClock:
    def __init__(self, start: datetime | None = None) -> None:
        self._now_ns = 0
        self._wall_start = start or datetime(2026, 1, 1, tzinfo=UTC)
        self._sleepers: list[tuple[int, int, asyncio.Future[None]]] = []
        self._order = itertools.count()

    def monotonic_ns(self) -> int:
        return self._now_ns

    def now(self) -> datetime:
        return self._wall_start + timedelta(microseconds=self._now_ns // 1000)

    async def sleep_until_ns(self, deadline_ns: int) -> None:
        if deadline_ns <= self._now_ns:
            return
        future: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        heapq.heappush(self._sleepers, (deadline_ns, next(self._order), future))
        await future

    async def advance(self, delta_ns: int) -> None:
        """Move time forward, waking every sleeper whose deadline passes, in deadline order."""
        target = self._now_ns + delta_ns
        while self._sleepers and self._sleepers[0][0] <= target:
            deadline, _, future = heapq.heappop(self._sleepers)
            self._now_ns = max(self._now_ns, deadline)
            if not future.done():
                future.set_result(None)
            # Let the woken task run before waking the next one.
            for _ in range(3):
                await asyncio.sleep(0)
        self._now_ns = target

    def advance_wall(self, delta: timedelta) -> None:
        """Move only the wall clock (e.g. to test signature time windows)."""
        self._wall_start += delta
