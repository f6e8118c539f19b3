"""The clock every runtime component is given, so tests can run on virtual time.

Monotonic time (``monotonic_ns``, ``sleep_until_ns``) paces audio and measures durations; wall time (``now``)
only stamps records. Runtime code never calls ``time.time()`` or ``time.monotonic()`` itself.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from typing import Protocol


class Clock(Protocol):
    def monotonic_ns(self) -> int: ...

    def now(self) -> datetime:
        """Wall-clock time, timezone-aware UTC."""
        ...

    async def sleep_until_ns(self, deadline_ns: int) -> None:
        """Return once ``monotonic_ns()`` has reached ``deadline_ns`` (at once if it already has)."""
        ...


class SystemClock:
    """The real clock: ``time.monotonic_ns`` and the event loop's timers."""

    def monotonic_ns(self) -> int:
        return time.monotonic_ns()

    def now(self) -> datetime:
        return datetime.now(UTC)

    async def sleep_until_ns(self, deadline_ns: int) -> None:
        delay_ns = deadline_ns - time.monotonic_ns()
        if delay_ns > 0:
            await asyncio.sleep(delay_ns / 1e9)


async def every(clock: Clock, period_s: float) -> AsyncIterator[None]:
    """Yield once per ``period_s`` of ``clock``'s monotonic time, on a fixed grid (a slow step does not
    push the next ones back; a missed one is skipped, not caught up in a burst)."""
    period_ns = int(period_s * 1e9)
    deadline = clock.monotonic_ns()
    while True:
        deadline += period_ns
        await clock.sleep_until_ns(max(deadline, clock.monotonic_ns()))
        yield
