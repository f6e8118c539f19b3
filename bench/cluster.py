"""Figure 7, cluster: what routing a request to the node that hosts the instance adds to its latency.

Two nodes in cluster mode (a ``redis-server`` and a PostgreSQL database of their own, as
``herald.testing.cluster`` makes them), one instance on node A busy saying a long text.
``SendAIAgentSpeech`` with ``Policy=drop-if-busy`` (authenticated, accepted, nothing synthesised), one
request at a time, alternately to A itself (local) and to B, which forwards it to A (routed), each over its
own keep-alive connection. The added latency is routed minus local at each percentile.
"""

from __future__ import annotations

import asyncio
import time

from bench.harness import UNTHROTTLED, Options, rpc_for
from bench.rpc import RpcClient
from bench.stats import Figure, Row, Summary
from bench.texts import long_text
from herald.testing.cluster import Cluster

ROUNDS = 300
QUICK_ROUNDS = 50
WARMUP_ROUNDS = 20


async def run(options: Options) -> Figure:
    rounds = QUICK_ROUNDS if options.quick else ROUNDS
    figure = Figure(
        "cluster",
        "Cluster: SendAIAgentSpeech sent to the instance's node vs routed through another node",
        f"2 nodes (PostgreSQL, Redis); {rounds} requests each way, sequential and alternating, after "
        f"{WARMUP_ROUNDS} of warm-up; Policy=drop-if-busy on an instance busy with a long text.",
    )
    # Starting nodes and the services blocks: keep it off the event loop.
    cluster = await asyncio.to_thread(Cluster(2, config=UNTHROTTLED).start)
    try:
        async with rpc_for(cluster.node(0)) as rpc:
            call = await rpc.generate_call()
        owner = cluster.owner_node(call.instance_id)
        other = next(node for node in cluster.nodes if node is not owner)
        async with rpc_for(owner) as local, rpc_for(other) as routed:
            await local.speak(call.instance_id, long_text(300))
            await asyncio.sleep(1.0)  # its first piece is synthesised; it now plays for about a minute
            params = {
                "InstanceId": call.instance_id,
                "Text": "Are you still there?",
                "Policy": "drop-if-busy",
            }
            local_ms: list[float] = []
            routed_ms: list[float] = []
            for round_number in range(WARMUP_ROUNDS + rounds):
                keep = round_number >= WARMUP_ROUNDS
                for client, samples in ((local, local_ms), (routed, routed_ms)):
                    elapsed_ms = await _timed(client, params)
                    if keep:
                        samples.append(elapsed_ms)
            await local.stop(call.instance_id)
    finally:
        await asyncio.to_thread(cluster.close)

    figure.add(Row("local: sent to the instance's node", "ms", local_ms))
    figure.add(Row("routed: sent to the other node", "ms", routed_ms))
    local_summary, routed_summary = Summary.of(local_ms), Summary.of(routed_ms)
    for stat in ("median", "p90", "p99"):
        added_ms = getattr(routed_summary, stat) - getattr(local_summary, stat)
        figure.add(Row(f"added by routing ({stat})", "ms", value=round(added_ms, 2)))
    figure.details = {"rounds": rounds, "nodes": 2, "owner": cluster.node_id(owner)}
    return figure


async def _timed(client: RpcClient, params: dict[str, str]) -> float:
    """One request's latency: from signing it to its answer's last byte."""
    started_s = time.monotonic()
    _, answered_s = await client.call("SendAIAgentSpeech", params)
    return (answered_s - started_s) * 1000
