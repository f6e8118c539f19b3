"""The synthesis pool: urgent work first, withdrawn work skipped, failures delivered to the caller."""

from __future__ import annotations

import asyncio
import threading

import pytest

from herald.speech.workers import NORMAL, URGENT, PriorityPool


def test_urgent_jobs_overtake_queued_normal_ones() -> None:
    pool = PriorityPool(1)
    gate = threading.Event()
    order: list[str] = []
    blocker = pool.submit(gate.wait)  # occupies the only worker
    normal = [pool.submit(lambda n=n: order.append(f"normal-{n}"), priority=NORMAL) for n in range(3)]
    urgent = pool.submit(lambda: order.append("urgent"), priority=URGENT)
    gate.set()
    for f in [blocker, *normal, urgent]:
        f.result(timeout=5)
    assert order == ["urgent", "normal-0", "normal-1", "normal-2"]
    pool.shutdown()


def test_a_cancelled_job_never_runs() -> None:
    pool = PriorityPool(1)
    gate = threading.Event()
    ran: list[str] = []
    pool.submit(gate.wait)
    withdrawn = pool.submit(lambda: ran.append("withdrawn"))
    kept = pool.submit(lambda: ran.append("kept"))
    assert withdrawn.cancel()
    gate.set()
    kept.result(timeout=5)
    assert ran == ["kept"]
    pool.shutdown()


def test_an_exception_reaches_the_caller_and_the_worker_survives() -> None:
    pool = PriorityPool(1)

    def boom() -> None:
        raise ValueError("bad voice")

    with pytest.raises(ValueError, match="bad voice"):
        pool.submit(boom).result(timeout=5)
    assert pool.submit(lambda: 42).result(timeout=5) == 42
    pool.shutdown()


async def test_cancelling_the_awaiting_task_withdraws_a_queued_job() -> None:
    pool = PriorityPool(1)
    gate = threading.Event()
    ran: list[str] = []
    pool.submit(gate.wait)
    task = asyncio.ensure_future(asyncio.wrap_future(pool.submit(lambda: ran.append("late"))))
    await asyncio.sleep(0)
    task.cancel()
    await asyncio.sleep(0)
    gate.set()
    await asyncio.wrap_future(pool.submit(lambda: ran.append("after")))
    assert ran == ["after"]
    pool.shutdown()


def test_shutdown_cancels_what_is_queued_and_refuses_more() -> None:
    pool = PriorityPool(1)
    gate = threading.Event()
    pool.submit(gate.wait)
    queued = pool.submit(lambda: None)
    pool.shutdown()
    assert queued.cancelled()
    gate.set()
    with pytest.raises(RuntimeError):
        pool.submit(lambda: None)


def test_volume_above_100_is_louder_and_never_wraps_around() -> None:
    import numpy as np

    from herald.speech.tts import apply_volume

    t = np.arange(4800) / 48_000
    speech = (np.sin(2 * np.pi * 300 * t) * 30_000).astype(np.int16)  # near full scale, as engines make it
    loud = apply_volume(speech, 400)
    assert np.sqrt(np.mean(loud.astype(float) ** 2)) > np.sqrt(np.mean(speech.astype(float) ** 2))
    assert np.all(np.sign(loud[np.abs(speech) > 1000]) == np.sign(speech[np.abs(speech) > 1000]))
    assert np.abs(apply_volume(speech, 50)).max() == 15_000
    assert np.array_equal(apply_volume(speech, 100), speech)
    assert not apply_volume(speech, 0).any()


def test_workers_run_below_the_event_loops_cpu_priority() -> None:
    """On a busy machine synthesis must yield the CPU to the thread that paces audio."""
    import os
    import threading

    pool = PriorityPool(1, niceness=10)
    worker_nice = pool.submit(lambda: os.getpriority(os.PRIO_PROCESS, threading.get_native_id())).result(5)
    assert worker_nice == os.getpriority(os.PRIO_PROCESS, 0) + 10 or worker_nice == 19
    pool.shutdown()
