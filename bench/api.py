"""Figure 4, API: signed requests per second and their latency, from a load generator in another process.

``SendAIAgentSpeech`` with ``Policy=drop-if-busy`` on an instance busy saying a long text: every request
is authenticated, parsed, checked and accepted, and its utterance ends as ``dropped`` (logged, with a
dialogue line written) without any synthesis. The busy instance keeps synthesising its own text at most
3 s ahead of playout (Piper at a real-time factor of ~0.1, so ~10 % of a core). Then the same for
``DescribeAIAgentInstance``, a read. Only 200s count; errors are reported apart. The load generator
shares the two cores with the server; its own CPU share is in the JSON.
"""

from __future__ import annotations

import asyncio
from typing import Any

from bench.harness import Options, profiled, rpc_for, running_server
from bench.loadgen import LoadConfig, run_loadgen
from bench.stats import Figure, Goal, Row
from bench.texts import long_text

CONNECTIONS = 8
GOAL_RATE_PER_S = 1500.0
GOAL_P99_MS = 10.0


async def run(options: Options) -> Figure:
    duration_s = 3.0 if options.quick else 10.0
    figure = Figure(
        "api",
        f"API: signed requests/s and latency, {CONNECTIONS} keep-alive connections from another process",
        f"closed loop for {duration_s:.0f} s after 1 s of warm-up, V3-signed in advance; speech: "
        "Policy=drop-if-busy on an instance busy with a long text (no synthesis per request).",
    )
    with running_server() as server:
        async with rpc_for(server) as rpc:
            call = await rpc.generate_call()
            await rpc.speak(call.instance_id, long_text(300))
            await asyncio.sleep(1.0)  # its first piece is synthesised; it now plays for about a minute
            loads = {
                "SendAIAgentSpeech": {
                    "InstanceId": call.instance_id,
                    "Text": "Are you still there?",
                    "Policy": "drop-if-busy",
                },
                "DescribeAIAgentInstance": {"InstanceId": call.instance_id},
            }
            for action, params in loads.items():
                config = LoadConfig(
                    server.port,
                    server.access_key_id,
                    server.access_key_secret,
                    action,
                    params,
                    connections=CONNECTIONS,
                    duration_s=duration_s,
                )
                with profiled(options, server.pid, f"api-{action}", duration_s + 3):
                    result = await run_loadgen(config, watch_pid=server.pid)
                _rows(figure, action, result)
    return figure


def _rows(figure: Figure, action: str, result: dict[str, Any]) -> None:
    ok = result["ok"]
    errors = sum(result["errors"].values())
    figure.add(
        Row(
            f"{action}: requests/s (200s)",
            "req/s",
            value=result["rate_per_s"],
            goal=Goal("value", ">=", GOAL_RATE_PER_S),
        )
    )
    figure.add(
        Row(f"{action}: latency", "ms", result["latencies_ms"], goal=Goal("p99", "<=", GOAL_P99_MS))
        if ok
        else Row(f"{action}: latency", "ms")
    )
    figure.add(Row(f"{action}: errors", "req", value=float(errors), note=", ".join(result["errors"]) or ""))
    per_request_us = result["watched_cpu_s"] / max(1, ok) * 1e6
    figure.add(Row(f"{action}: server CPU per request", "µs", value=round(per_request_us, 1)))
    figure.add(
        Row(f"{action}: server CPU share", "cores", value=result["watched_cpu_s"] / result["duration_s"])
    )
    del result["latencies_ms"]  # the summary is in the row; the JSON keeps the rest of the result
    figure.details[action] = result
