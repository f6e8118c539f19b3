"""What every figure shares: a server to measure, a client for it, /proc readings, the machine's facts."""

from __future__ import annotations

import asyncio
import contextlib
import os
import platform
import subprocess
import sys
import time
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from bench.rpc import RpcClient
from herald.testing.server import HeraldServer

ROOT = Path(__file__).resolve().parent.parent
_PAGE_BYTES = os.sysconf("SC_PAGE_SIZE")
_CLOCK_TICKS = os.sysconf("SC_CLK_TCK")
UNTHROTTLED = "\n[throttling]\nrate = 0\n"


@dataclass(frozen=True)
class Options:
    quick: bool = False
    profile_dir: Path | None = None
    """Where py-spy flame graphs of the server go (``--profile``); ``None``: no profiling."""


@contextlib.contextmanager
def running_server(env: Mapping[str, str] | None = None, config: str | None = None) -> Iterator[HeraldServer]:
    """A fresh ``herald serve`` with its own data directory, killed on the way out whatever happens.

    The per-account request rate limit is off (unless ``config`` sets one): the figures measure the
    server's capacity, which one bench account would otherwise hit first.
    """
    if config is None or "[throttling" not in config:
        config = (config or "") + UNTHROTTLED
    with HeraldServer(env=env, config=config, check_exit=False, stop_timeout_s=15) as server:
        yield server


def rpc_for(server: HeraldServer) -> RpcClient:
    return RpcClient("127.0.0.1", server.port, server.access_key_id, server.access_key_secret)


def descendants(pid: int) -> list[int]:
    """Every process below ``pid`` (the server's decoder workers), from /proc."""
    parents: dict[int, list[int]] = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        with contextlib.suppress(OSError, IndexError, ValueError):
            stat = Path(f"/proc/{entry}/stat").read_text()
            ppid = int(stat.rsplit(")", 1)[1].split()[1])
            parents.setdefault(ppid, []).append(int(entry))
    found: list[int] = []
    todo = [pid]
    while todo:
        children = parents.get(todo.pop(), [])
        found += children
        todo += children
    return found


def rss_bytes(pid: int) -> int:
    """Resident memory of one process (0 if it is gone)."""
    try:
        return int(Path(f"/proc/{pid}/statm").read_text().split()[1]) * _PAGE_BYTES
    except (OSError, IndexError, ValueError):
        return 0


def cpu_s(pid: int) -> float:
    """CPU time (user + system) a process has used so far (0 if it is gone)."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0
    return (int(fields[11]) + int(fields[12])) / _CLOCK_TICKS


async def wait_idle(pid: int, *, busy_share: float = 0.05, timeout_s: float = 10.0) -> float:
    """Wait until a process and its children use under ``busy_share`` of a core for 100 ms; return the wait.

    After a call is stopped, synthesis already running for it finishes in the server's pool, and a used
    decoder worker is replaced by a fresh one: measuring anything on two cores meanwhile measures that too.
    """
    started = time.monotonic()
    while time.monotonic() - started < timeout_s:
        before = _tree_cpu_s(pid)
        await asyncio.sleep(0.1)
        if _tree_cpu_s(pid) - before < busy_share * 0.1:
            break
    return time.monotonic() - started


class LoadWatch:
    """How busy the machine was with work that is not the benchmark's (the lead's tests, say), in cores.

    Everything below this process (servers, listeners, load generators, and, through their parents'
    counters, children that already ended) is the benchmark's; the rest of /proc/stat is other work.
    ``steal`` is time the hypervisor gave to other guests: also lost to the measurement.
    """

    def __init__(self) -> None:
        self._start = (time.monotonic(), *_system_busy_s(), _tree_cpu_s(os.getpid()))

    def result(self) -> dict[str, float]:
        wall, busy, steal, own = time.monotonic(), *_system_busy_s(), _tree_cpu_s(os.getpid())
        elapsed = wall - self._start[0]
        return {
            "other_cores": round(max(0.0, (busy - self._start[1]) - (own - self._start[3])) / elapsed, 3),
            "steal_cores": round((steal - self._start[2]) / elapsed, 3),
        }


def _system_busy_s() -> tuple[float, float]:
    """Busy (user, nice, system, irq, softirq) and stolen CPU time of the whole machine so far."""
    fields = [int(v) for v in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]]
    user, nice, system, _idle, _iowait, irq, softirq, steal = fields[:8]
    return (user + nice + system + irq + softirq) / _CLOCK_TICKS, steal / _CLOCK_TICKS


def _tree_cpu_s(pid: int) -> float:
    """CPU time of a process and all below it, reaped children included."""
    total = 0.0
    for each in [pid, *descendants(pid)]:
        try:
            fields = Path(f"/proc/{each}/stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        total += sum(int(v) for v in fields[11:15]) / _CLOCK_TICKS
    return total


def machine_facts() -> dict[str, Any]:
    """Cores, CPU model, memory, Python, and the commit measured (with whether the tree had changes)."""
    cpu_model = ""
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu_model = line.split(":", 1)[1].strip()
                break
    mem_kb = 0
    with contextlib.suppress(OSError, ValueError):
        mem_kb = int(Path("/proc/meminfo").read_text().split("MemTotal:")[1].split()[0])
    return {
        "cores": os.cpu_count(),
        "cores_usable": len(os.sched_getaffinity(0)),
        "cpu_model": cpu_model,
        "memory_gb": round(mem_kb / 1024 / 1024, 1),
        "kernel": platform.release(),
        "python": sys.version.split()[0],
        "herald_commit": _git("rev-parse", "--short=12", "HEAD"),
        "herald_tree_changed_files": len(_git("status", "--porcelain", "--untracked-files=no").splitlines()),
        "load_average": os.getloadavg(),
    }


def _git(*args: str) -> str:
    try:
        return subprocess.run(
            ["git", *args], cwd=ROOT, capture_output=True, text=True, check=True, timeout=10
        ).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return "unknown"


@contextlib.contextmanager
def profiled(options: Options, pid: int, name: str, duration_s: float) -> Iterator[None]:
    """With ``--profile``, record the server with py-spy during the block (a flame graph per block)."""
    if options.profile_dir is None:
        yield
        return
    options.profile_dir.mkdir(parents=True, exist_ok=True)
    py_spy = Path(sys.executable).with_name("py-spy")
    command = [str(py_spy), "record", "--pid", str(pid), "--duration", str(max(1, round(duration_s)))]
    command += ["--rate", "100", "--nonblocking", "--output", str(options.profile_dir / f"{name}.svg")]
    try:
        recorder = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    except OSError:  # py-spy is not a dependency; without it the figure runs unprofiled
        yield
        return
    try:
        yield
    finally:
        try:
            recorder.wait(timeout=duration_s + 10)
        except subprocess.TimeoutExpired:
            recorder.kill()
            recorder.wait()
