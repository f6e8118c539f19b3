"""A Redis crash and restart (it comes back empty): requests that need Redis fail fast meanwhile, audio
goes on, and everything works again soon after, instances made before the outage included.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import time

import pytest
from alibabacloud_tea_openapi.exceptions import AlibabaCloudException

from herald.testing.audio_client import MSG_AGENT_STATE, MSG_AGENT_SUBTITLE, AudioRecorder
from herald.testing.cluster import eventually
from herald.testing.server import HeraldServer
from herald.testing.transcript import is_listening, shows

pytestmark = pytest.mark.e2e

MSG_OUTCOME = 1900
FAIL_FAST_BOUND_S = 10.0
RECOVERY_BOUND_S = 20.0
LONG = (
    "This long announcement keeps playing while the shared store is down. "
    "It talks about the weather, the trains and the coffee in the station for quite a while. "
    "The listener connected to the node that hosts this call hears every word of it. "
    "Nothing that is already playing needs the shared store at all."
)
BACK = "We are back, and this was sent through another node."


async def test_a_redis_restart_is_survived(clusters, sdk) -> None:
    cluster = clusters(3)
    call = await asyncio.to_thread(sdk.generate_call, cluster.random_node())
    owner = cluster.owner_node(call.instance_id)
    routed = [node for node in cluster.nodes if node is not owner]
    made: list[str] = []
    async with AudioRecorder(owner.audio_url(call.channel_id, call.token)) as rec:
        await rec.wait_for_message(MSG_AGENT_STATE, is_listening, timeout_s=15)
        await sdk.aspeak(owner, call.instance_id, LONG)
        await rec.wait_for_message(MSG_AGENT_SUBTITLE, shows(LONG), timeout_s=30)
        await rec.wait_for_speech(0.5, timeout_s=20)

        cluster.redis.kill()
        mark = rec.mark()
        sent_s = time.monotonic()
        exc = await asyncio.to_thread(sdk.error, sdk.speak, routed[0], call.instance_id, "Are you there?")
        refused_s = time.monotonic() - sent_s
        print(f"routed speech during the outage: {exc.code} ({exc.status_code}) in {refused_s:.2f} s")
        assert (exc.code, exc.status_code) == ("ServiceUnavailable", 503), exc.data
        assert refused_s < FAIL_FAST_BOUND_S

        # The owner's listener hears the speech on through the outage, in real time.
        await asyncio.sleep(max(0.0, 2.6 - (time.monotonic() - sent_s)))
        frames = rec.frames(after=mark)
        t0 = frames[0].received_s + 0.25
        in_window = [f for f in frames if t0 <= f.received_s < t0 + 2.0]
        print(f"during the outage: {len(in_window)} frames in 2 s, {rec.heard_s(after=mark):.1f} s of speech")
        assert 80 <= len(in_window) <= 120, f"{len(in_window)} frames in 2 s, expected about 100"
        assert rec.heard_s(after=mark) > 1.0, rec.describe(after=mark)

        cluster.redis.start()
        up_s = time.monotonic()

        def works_from(node: HeraldServer) -> bool:
            try:
                sdk.speak(node, call.instance_id, "Still here?", enable_interrupt=False)
            except AlibabaCloudException:
                return False
            return True

        for node in cluster.nodes:
            await asyncio.to_thread(
                eventually,
                functools.partial(works_from, node),
                timeout_s=RECOVERY_BOUND_S,
                what=f"a speech accepted by {cluster.node_id(node)}",
            )
        print(f"speech accepted from every node {time.monotonic() - up_s:.1f} s after Redis came back")

        def generate_on(node: HeraldServer) -> bool:
            try:
                made.append(sdk.generate_call(node).instance_id)
            except AlibabaCloudException:
                return False
            return True

        for node in cluster.nodes:
            await asyncio.to_thread(
                eventually,
                functools.partial(generate_on, node),
                timeout_s=RECOVERY_BOUND_S,
                what=f"a new call from {cluster.node_id(node)}",
            )
        print(f"new calls from every node {time.monotonic() - up_s:.1f} s after Redis came back")
        assert {cluster.owner_of(instance_id) for instance_id in made} <= {
            cluster.node_id(node) for node in cluster.nodes
        }

        # The call made before the outage is heard again, through a node that routes to its owner.
        mark = rec.mark()
        request_id = await sdk.aspeak(routed[1], call.instance_id, BACK)
        await rec.wait_for_message(MSG_AGENT_SUBTITLE, shows(BACK), after=mark, timeout_s=30)
        outcome = await rec.wait_for_message(
            MSG_OUTCOME, lambda m: m.data.get("requestId") == request_id, after=mark, timeout_s=30
        )
        assert outcome.data["state"] == "finished", outcome.data
        assert rec.heard_s(after=mark) > 0.8
        instance = await sdk.adescribe(routed[0], call.instance_id)
        assert instance.status == "Executing", instance.to_map()
    for instance_id in [call.instance_id, *made]:
        with contextlib.suppress(AlibabaCloudException):
            await asyncio.to_thread(sdk.stop, cluster.random_node(), instance_id)
