"""A small thread pool whose queue is ordered by priority, then by arrival.

Synthesis jobs are not equal: the first clause of a new utterance is what a listener is waiting for, while
look-ahead synthesis of later clauses can wait a little. With a plain FIFO pool, an interrupting speech's
first clause would queue behind work of other utterances (or of the very one it cut); here it goes first.
A job whose caller has given up (its future was cancelled) before it started is skipped.
"""

from __future__ import annotations

import contextlib
import heapq
import itertools
import os
import threading
from collections.abc import Callable
from concurrent.futures import Future
from typing import Any, TypeVar

T = TypeVar("T")

URGENT = 0
NORMAL = 1


class PriorityPool:
    def __init__(self, workers: int, *, name: str = "worker", niceness: int = 0) -> None:
        """``niceness`` > 0 runs the workers at a lower CPU priority than the rest of the process (Linux)."""
        if workers < 1:
            raise ValueError("a pool needs at least one worker")
        self._niceness = niceness
        self._jobs: list[tuple[int, int, Future[Any], Callable[[], Any]]] = []
        self._order = itertools.count()
        self._ready = threading.Condition()
        self._closed = False
        self._threads = [
            threading.Thread(target=self._work, name=f"{name}-{i}", daemon=True) for i in range(workers)
        ]
        for thread in self._threads:
            thread.start()

    def submit(self, fn: Callable[[], T], *, priority: int = NORMAL) -> Future[T]:
        future: Future[T] = Future()
        with self._ready:
            if self._closed:
                raise RuntimeError("the pool is shut down")
            heapq.heappush(self._jobs, (priority, next(self._order), future, fn))
            self._ready.notify()
        return future

    @property
    def queued(self) -> int:
        with self._ready:
            return len(self._jobs)

    def shutdown(self) -> None:
        """Stop taking jobs, cancel the queued ones; running ones finish on their own (daemon threads)."""
        with self._ready:
            self._closed = True
            for _, _, future, _ in self._jobs:
                future.cancel()
            self._jobs.clear()
            self._ready.notify_all()

    def _work(self) -> None:
        if self._niceness:
            with contextlib.suppress(OSError, AttributeError):  # not everywhere: then at normal priority
                os.setpriority(os.PRIO_PROCESS, threading.get_native_id(), self._niceness)
        while True:
            with self._ready:
                while not self._jobs and not self._closed:
                    self._ready.wait()
                if not self._jobs:
                    return
                _, _, future, fn = heapq.heappop(self._jobs)
            if not future.set_running_or_notify_cancel():
                continue
            try:
                result = fn()
            except BaseException as exc:  # delivered to the caller, like concurrent.futures does
                future.set_exception(exc)
            else:
                future.set_result(result)
