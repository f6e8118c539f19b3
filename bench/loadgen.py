"""The API load generator, run as a process of its own: ``python -m bench.loadgen '<config JSON>'``.

N keep-alive connections each send the next request as soon as the previous one is answered (a closed
loop), for a fixed time after a short warm-up. Requests are signed before the clock starts, so during
the measurement this process only writes bytes and reads answers, and leaves the cores to the server
as far as it can. It prints one JSON line: 200s per second, their latency percentiles, errors by status
and code. ``run_loadgen`` starts it from the benchmark and reads that line.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import resource
import sys
import time
from collections import Counter
from dataclasses import asdict, dataclass, field
from typing import Any

from bench.harness import ROOT, cpu_s
from bench.listeners import run_fast
from bench.rpc import Connection, signed_request
from bench.stats import Summary


@dataclass(frozen=True)
class LoadConfig:
    port: int
    key_id: str
    secret: str
    action: str
    params: dict[str, str] = field(default_factory=dict)
    connections: int = 8
    duration_s: float = 10.0
    warmup_s: float = 1.0
    max_rate_per_s: int = 5000
    """Requests signed in advance: this many per second of the run (more are signed on the fly)."""


class _Run:
    def __init__(self, config: LoadConfig) -> None:
        self.config = config
        host = f"127.0.0.1:{config.port}"
        count = int(config.max_rate_per_s * (config.duration_s + config.warmup_s))
        self._host = host
        self._signed = [self._sign() for _ in range(count)]
        self.latencies_s: list[float] = []
        self.errors: Counter[str] = Counter()
        self.measuring = False
        self.stopping = False

    def _sign(self) -> bytes:
        config = self.config
        return signed_request(self._host, config.action, config.params, config.key_id, config.secret)

    def next_request(self) -> bytes:
        return self._signed.pop() if self._signed else self._sign()

    async def connection(self) -> None:
        conn = await Connection.open("127.0.0.1", self.config.port)
        try:
            while not self.stopping:
                request = self.next_request()
                start = time.perf_counter()
                status, body = await conn.exchange(request)
                elapsed = time.perf_counter() - start
                if not self.measuring:
                    continue
                if status == 200:
                    self.latencies_s.append(elapsed)
                else:
                    self.errors[_describe(status, body)] += 1
        except (ConnectionError, asyncio.IncompleteReadError) as exc:
            self.errors[f"connection: {type(exc).__name__}"] += 1
        finally:
            await conn.close()


def _describe(status: int, body: bytes) -> str:
    with contextlib.suppress(ValueError, AttributeError):
        return f"{status} {json.loads(body).get('Code')}"
    return str(status)


async def _main(config: LoadConfig) -> dict[str, Any]:
    run = _Run(config)
    tasks = [asyncio.create_task(run.connection()) for _ in range(config.connections)]
    await asyncio.sleep(config.warmup_s)
    print(json.dumps({"event": "measuring"}), flush=True)  # the parent samples the server's CPU now
    cpu_before = _cpu_s()
    run.measuring = True
    started = time.perf_counter()
    await asyncio.sleep(config.duration_s)
    run.measuring = False
    elapsed = time.perf_counter() - started
    print(json.dumps({"event": "done"}), flush=True)
    cpu_used = _cpu_s() - cpu_before
    run.stopping = True
    await asyncio.gather(*tasks, return_exceptions=True)
    latencies_ms = [round(s * 1000, 3) for s in run.latencies_s]
    return {
        "action": config.action,
        "connections": config.connections,
        "duration_s": round(elapsed, 3),
        "ok": len(latencies_ms),
        "rate_per_s": round(len(latencies_ms) / elapsed, 1),
        "latency_ms": asdict(Summary.of(latencies_ms)) if latencies_ms else None,
        "latencies_ms": latencies_ms,
        "errors": dict(run.errors),
        "loadgen_cpu_share": round(cpu_used / elapsed, 3),
    }


def _cpu_s() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


async def run_loadgen(config: LoadConfig, watch_pid: int | None = None) -> dict[str, Any]:
    """Run the load generator process with ``config``; its result (killed if this is cancelled).

    With ``watch_pid``, the result also has ``watched_cpu_s``: that process's CPU time during the
    measurement (the warm-up and the signing in advance excluded).
    """
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "bench.loadgen",
        json.dumps(asdict(config)),
        stdout=asyncio.subprocess.PIPE,
        cwd=ROOT,
    )
    assert process.stdout is not None
    try:
        async with asyncio.timeout(config.duration_s + config.warmup_s + 60):
            lines = [await process.stdout.readline()]
            cpu_before = cpu_s(watch_pid) if watch_pid else 0.0
            lines.append(await process.stdout.readline())
            watched_cpu_s = cpu_s(watch_pid) - cpu_before if watch_pid else 0.0
            lines.append(await process.stdout.read())
            await process.wait()
    except BaseException:
        process.kill()
        await process.wait()
        raise
    if process.returncode != 0 or not lines[-1].strip():
        raise RuntimeError(f"the load generator exited with {process.returncode}: {lines!r}")
    result: dict[str, Any] = json.loads(lines[-1].splitlines()[-1])
    return result | {"watched_cpu_s": round(watched_cpu_s, 3)}


def _entry() -> None:
    config = LoadConfig(**json.loads(sys.argv[1]))
    result: dict[str, Any] = {}

    async def main() -> None:
        result.update(await _main(config))

    run_fast(main())
    # The event loop may have left stdout non-blocking: a large result would then be cut at the pipe's
    # capacity (seen at ~450 KB). Write it whole.
    os.set_blocking(sys.stdout.fileno(), True)
    print(json.dumps(result), flush=True)


if __name__ == "__main__":
    _entry()
