"""The pacer: one tick per 20 ms of monotonic time, catching up after short stalls, giving up long ones."""

from __future__ import annotations

import asyncio

from herald.media.frames import FRAME_NS
from herald.media.ticker import Ticker
from herald.testing.clock import VirtualClock


class Counter:
    def __init__(self) -> None:
        self.ticks = 0

    def tick(self) -> None:
        self.ticks += 1


class Broken:
    def tick(self) -> None:
        raise RuntimeError("boom")


async def start(ticker: Ticker) -> asyncio.Task[None]:
    task = asyncio.create_task(ticker.run())
    await asyncio.sleep(0)
    return task


async def test_one_tick_per_frame_of_virtual_time() -> None:
    clock = VirtualClock()
    ticker = Ticker(clock)
    a, b = Counter(), Counter()
    ticker.add(a)
    ticker.add(b)
    task = await start(ticker)
    for _ in range(50):
        await clock.advance(FRAME_NS)
    assert a.ticks == b.ticks == 50
    ticker.remove(b)
    await clock.advance(FRAME_NS * 10)
    assert (a.ticks, b.ticks) == (60, 50)
    task.cancel()


async def test_a_short_stall_is_caught_up_and_a_long_one_is_given_up() -> None:
    clock = VirtualClock()
    ticker = Ticker(clock, max_catchup_frames=5)
    out = Counter()
    ticker.add(out)
    task = await start(ticker)
    await clock.advance(FRAME_NS)
    assert out.ticks == 1
    # A 60 ms stall of the loop: the time passes without the ticker getting to run.
    clock._now_ns += 3 * FRAME_NS
    await clock.advance(FRAME_NS)
    assert out.ticks == 5  # caught up: no audio time lost
    assert ticker.late_ticks == 2
    clock._now_ns += 100 * FRAME_NS
    await clock.advance(FRAME_NS)
    assert ticker.skipped_frames > 0
    assert out.ticks <= 5 + 1 + 5 + 1
    task.cancel()


async def test_a_broken_output_is_removed_and_the_others_keep_ticking() -> None:
    clock = VirtualClock()
    ticker = Ticker(clock)
    good = Counter()
    ticker.add(Broken())
    ticker.add(good)
    task = await start(ticker)
    for _ in range(3):
        await clock.advance(FRAME_NS)
    assert good.ticks == 3
    task.cancel()
