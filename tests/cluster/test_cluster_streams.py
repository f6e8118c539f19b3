"""What crosses nodes besides commands: an instance's event stream followed on a node that does not run it,
and ``ClientToken`` retries racing on two nodes. Also: cluster mode refuses a configuration it cannot run."""

from __future__ import annotations

import concurrent.futures
import json
import uuid

import httpx
import pytest

from herald.testing.cluster import Cluster
from herald.testing.server import HeraldServer, ServerError


def test_an_event_stream_on_another_node_gets_the_instances_events_as_they_happen(
    cluster: Cluster, sdk
) -> None:
    call = sdk.generate_call(cluster.node(0))
    owner = cluster.owner_node(call.instance_id)
    elsewhere = cluster.random_node(exclude=[owner])
    path = f"/v1/instances/{call.instance_id}/events"
    events: list[dict[str, object]] = []
    with (
        # Silence for 10 s fails the test: the stream's own look at the outbox comes only every 15 s.
        httpx.Client(trust_env=False, timeout=httpx.Timeout(30.0, read=10.0)) as http,
        http.stream("GET", elsewhere.url + path, headers=elsewhere.signed_get(path)) as stream,
    ):
        assert stream.status_code == 200
        # After the stream is open: the owner writes these events, the other node must relay them.
        sdk.stop(cluster.random_node(exclude=[elsewhere]), call.instance_id)
        for line in stream.iter_lines():
            if line.startswith("data: "):
                events.append(json.loads(line.removeprefix("data: ")))
                if events[-1]["event"] == "agent_stop":
                    break
    assert [e["event"] for e in events] == ["agent_start", "agent_stop"]
    assert all(e["instanceId"] == call.instance_id for e in events)


def test_a_client_token_retried_on_two_nodes_at_once_creates_one_instance(cluster: Cluster) -> None:
    token = uuid.uuid4().hex
    nodes = [cluster.node(0), cluster.node(1)] * 2
    with concurrent.futures.ThreadPoolExecutor(len(nodes)) as pool:
        answers = list(
            pool.map(
                lambda n: n.call("GenerateAIAgentCall", {"AIAgentId": "default", "ClientToken": token}), nodes
            )
        )
    assert len({a["InstanceId"] for a in answers}) == 1
    assert len({a["RequestId"] for a in answers}) == 1  # every retry got the first answer


@pytest.mark.parametrize(
    ("env", "message"),
    [
        ({"HERALD_REDIS_URL": "redis://127.0.0.1:6379/0"}, "HERALD_DATABASE_URL must name a PostgreSQL"),
        (
            {
                "HERALD_REDIS_URL": "redis://127.0.0.1:6379/0",
                "HERALD_DATABASE_URL": "postgresql://x@127.0.0.1/x",
            },
            "needs HERALD_MASTER_KEY",
        ),
        (
            {
                "HERALD_REDIS_URL": "redis://127.0.0.1:6379/0",
                "HERALD_DATABASE_URL": "postgresql://x@127.0.0.1/x",
                "HERALD_MASTER_KEY": "A" * 43 + "=",
                "HERALD_NODE_ID": "node one",
            },
            "HERALD_NODE_ID must be",
        ),
    ],
)
def test_cluster_mode_refuses_what_it_cannot_run_and_says_why(env: dict[str, str], message: str) -> None:
    server = HeraldServer(env=env, startup_timeout_s=30)
    try:
        with pytest.raises(ServerError, match="exited with") as failed:
            server.start()
        assert message in str(failed.value)
    finally:
        server.close()
