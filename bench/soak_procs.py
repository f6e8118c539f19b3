"""The server's recogniser workers as /proc shows them: how many, and whether any strayed from the server.

Every process the soak's server starts inherits its environment, which carries a mark of the run
(``MARK_ENV``): a worker of this run that is no longer below the server (orphaned: its parent died or let
it go) is still recognisable, and after the server's exit no process may carry the mark.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Final

from bench.harness import descendants

WORKER_MODULE: Final = "herald.listening.pocketsphinx_worker"
MARK_ENV: Final = "SOAK_RUN_MARK"


def new_mark() -> str:
    return f"{os.getpid()}-{time.monotonic_ns()}"


@dataclass(frozen=True)
class Census:
    """One look at /proc."""

    workers: list[int]
    """Recogniser workers below the server (alive: a zombie has no command line)."""
    zombies: list[int]
    """Processes below the server that ended and were never reaped."""
    strays: list[int]
    """Processes carrying the run's mark that are not the server nor below it."""


def census(server_pid: int, mark: str) -> Census:
    candidates = marked(mark)
    below = descendants(server_pid)
    workers = [pid for pid in below if WORKER_MODULE in _cmdline(pid)]
    zombies = [pid for pid in below if _state(pid) == "Z"]
    # A process reaped between the two scans was marked but is no longer anywhere: not a stray.
    strays = [pid for pid in candidates if pid != server_pid and pid not in below and _state(pid)]
    return Census(workers, zombies, strays)


def marked(mark: str) -> list[int]:
    """Every process (but this one) whose environment carries ``MARK_ENV=mark``."""
    needle = f"{MARK_ENV}={mark}".encode()
    found = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit() or int(entry) == os.getpid():
            continue
        with contextlib.suppress(OSError):
            if needle in Path(f"/proc/{entry}/environ").read_bytes().split(b"\0"):
                found.append(int(entry))
    return found


@dataclass
class WorkerWatch:
    """A census every 2 s during the run: the most workers seen at once, and every stray seen."""

    server_pid: int
    mark: str
    most: int = 0
    samples: int = 0
    strays: set[int] = field(default_factory=set)

    async def run(self, stop: asyncio.Event) -> None:
        while not stop.is_set():
            seen = census(self.server_pid, self.mark)
            self.most = max(self.most, len(seen.workers))
            self.samples += 1
            self.strays.update(seen.strays)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), 2.0)


def describe(pid: int) -> str:
    """``pid`` and its command line, for evidence."""
    return f"{pid} ({_cmdline(pid) or 'gone'})"


def _cmdline(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace").strip()
    except OSError:
        return ""


def _state(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (OSError, IndexError):
        return ""
