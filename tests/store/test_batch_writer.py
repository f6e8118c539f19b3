"""The batch writer behind the dialogue log and the event outbox: order, batching, no loss on a failed
write, a bound on what waits."""

from __future__ import annotations

import asyncio

from herald.store.batch_writer import BatchWriter


async def test_rows_are_written_in_order_in_batches_and_handed_on() -> None:
    written: list[list[int]] = []
    handed: list[list[int]] = []

    async def write(batch: list[int]) -> None:
        written.append(list(batch))

    writer = BatchWriter(write, what="test", after_write=handed.append, batch_delay_s=0, max_batch=3)
    for n in range(7):
        assert writer.add(n)
    await writer.flush()
    assert written == [[0, 1, 2], [3, 4, 5], [6]]
    assert handed == written
    await writer.close()


async def test_a_failed_write_loses_nothing_and_the_rows_go_out_on_the_next_attempt() -> None:
    written: list[int] = []
    attempts = 0

    async def write(batch: list[int]) -> None:
        nonlocal attempts
        attempts += 1
        if attempts == 1:
            raise OSError("database is locked")
        written.extend(batch)

    writer = BatchWriter(write, what="test", batch_delay_s=0)
    writer.add(1)
    writer.add(2)
    for _ in range(100):  # the background task fails once, waits a second, then retries
        if written:
            break
        await asyncio.sleep(0.05)
    await writer.close()
    assert written == [1, 2]


async def test_past_the_bound_new_rows_are_dropped_and_counted() -> None:
    gate = asyncio.Event()

    async def write(batch: list[int]) -> None:
        await gate.wait()

    writer = BatchWriter(write, what="test", batch_delay_s=0, max_pending=2)
    assert writer.add(1)
    assert writer.add(2)
    assert not writer.add(3)
    assert writer.dropped == 1
    gate.set()
    await writer.close()
