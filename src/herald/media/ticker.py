"""The one place that paces audio: every 20 ms of monotonic time, each registered output is ticked once.

One task drives every instance, so a thousand quiet instances cost one timer, not a thousand. When the loop
falls behind (a stall, a busy machine) it catches up by ticking several times at once, up to
``max_catchup_frames``; beyond that it gives up the lost time rather than bursting audio, and counts it.
"""

from __future__ import annotations

import logging
from typing import Protocol

from herald.clock import Clock
from herald.media.frames import FRAME_NS

_log = logging.getLogger(__name__)


class Tickable(Protocol):
    def tick(self) -> None:
        """Produce and deliver one frame. Called on the event loop; must not block."""
        ...


class Ticker:
    def __init__(self, clock: Clock, *, frame_ns: int = FRAME_NS, max_catchup_frames: int = 5) -> None:
        self._clock = clock
        self._frame_ns = frame_ns
        self._max_catchup = max_catchup_frames
        self._outputs: dict[int, Tickable] = {}
        self.ticks = 0
        self.late_ticks = 0
        """Ticks that ran more than one frame after their deadline (caught up)."""
        self.skipped_frames = 0
        """Frames of time given up after a stall longer than the catch-up allowance."""

    def add(self, output: Tickable) -> None:
        self._outputs[id(output)] = output

    def remove(self, output: Tickable) -> None:
        self._outputs.pop(id(output), None)

    def tick_all(self) -> None:
        self.ticks += 1
        for output in list(self._outputs.values()):
            try:
                output.tick()
            except Exception:  # one broken output must not silence the others
                _log.exception("output tick failed; removing it")
                self.remove(output)

    async def run(self) -> None:
        """Tick forever (until cancelled)."""
        deadline_ns = self._clock.monotonic_ns()
        while True:
            deadline_ns += self._frame_ns
            await self._clock.sleep_until_ns(deadline_ns)
            behind = (self._clock.monotonic_ns() - deadline_ns) // self._frame_ns
            if behind > self._max_catchup:
                self.skipped_frames += behind - self._max_catchup
                deadline_ns += (behind - self._max_catchup) * self._frame_ns
                behind = self._max_catchup
            if behind > 0:
                self.late_ticks += behind
            for _ in range(behind + 1):
                self.tick_all()
            deadline_ns += behind * self._frame_ns
