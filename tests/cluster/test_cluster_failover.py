"""Losing a node: killed, its instances end (system hang-up) on the survivors' watch; stopped with SIGTERM,
it finishes what it is saying first. Each test has a cluster of its own, since it breaks it.
"""

from __future__ import annotations

import asyncio
import contextlib
import signal
import time
import uuid
from collections import Counter
from typing import Any

import httpx
import pytest
from alibabacloud_tea_openapi.exceptions import AlibabaCloudException

from herald.testing.audio_client import MSG_AGENT_STATE, MSG_AGENT_SUBTITLE, AudioRecorder
from herald.testing.cluster import Cluster, eventually
from herald.testing.receiver import CallbackReceiver
from herald.testing.server import HeraldServer
from herald.testing.transcript import is_listening, shows, spoken_words, words

pytestmark = pytest.mark.e2e

RECEIVER_HOST = "127.0.0.3"
CALLBACKS = """
[callbacks]
first_retry_s = 0.2
max_retry_s = 1.0
timeout_s = 2.0
"""
MSG_OUTCOME = 1900
DEAD_NODE_BOUND_S = 20.0
"""Generous: the contract is 10 s (a 4 s lease and its detection) on a machine that is not busy."""
LONG = (
    "This is a long announcement that will not be heard to its end, because the node saying it dies. "
    "It goes on about the weather, the trains and the coffee in the station for quite a while. "
    "Nobody should hear this third sentence at all, and the fourth one even less."
)
QUEUED = "This one waits its turn and never gets it."
DRAINED = (
    "The node is asked to stop while saying this. It says it to the end anyway, every word of it, "
    "before it leaves."
)


def survivors(cluster: Cluster, dead: HeraldServer) -> list[HeraldServer]:
    return [node for node in cluster.nodes if node is not dead]


async def test_the_instance_of_a_killed_node_ends_and_the_others_keep_serving(clusters, sdk) -> None:
    with CallbackReceiver(RECEIVER_HOST) as receiver:
        cluster = clusters(3, config=CALLBACKS, env={"HERALD_FETCH_ALLOW": RECEIVER_HOST})
        session_id = f"killed-{uuid.uuid4()}"
        call = await asyncio.to_thread(
            sdk.generate_raw,
            cluster.random_node(),
            SessionId=session_id,
            AgentConfig={"CallbackConfig": {"Url": receiver.url}},
        )
        instance_id = call["InstanceId"]
        owner = cluster.owner_node(instance_id)
        alive = survivors(cluster, owner)

        async with AudioRecorder(owner.audio_url(call["ChannelId"], call["Token"])) as rec:
            await rec.wait_for_message(MSG_AGENT_STATE, is_listening, timeout_s=15)
            playing = await sdk.aspeak(alive[0], instance_id, LONG)
            await rec.wait_for_message(MSG_AGENT_SUBTITLE, shows(LONG), timeout_s=30)
            await rec.wait_for_speech(0.5, timeout_s=20)
            queued = await sdk.aspeak(alive[1], instance_id, QUEUED, enable_interrupt=False)
            await asyncio.to_thread(owner.stop, sig=signal.SIGKILL, check=False)
            killed_s = time.monotonic()

        refusals: list[str] = []  # the survivors may refuse while the owner's lease runs; noted, not failed

        async def finished() -> Any:
            while True:
                try:
                    instance = await sdk.adescribe(alive[0], instance_id)
                except AlibabaCloudException as exc:
                    refusals.append(f"{exc.code} ({exc.status_code})")
                    instance = None
                done = instance is not None and instance.status == "Finished"
                if done or time.monotonic() - killed_s > DEAD_NODE_BOUND_S:
                    return instance
                await asyncio.sleep(0.2)

        instance = await finished()
        took_s = time.monotonic() - killed_s
        print(f"Finished {took_s:.1f} s after the SIGKILL of {cluster.node_id(owner)}; refusals: {refusals}")
        assert instance is not None, (refusals, cluster.logs())
        assert instance.status == "Finished", (instance.to_map(), cluster.logs())
        assert instance.call_info.hangup_role == 2, instance.to_map()

        def events() -> list[dict[str, Any]]:
            return [e for e in receiver.events() if e.get("instanceId") == instance_id]

        await receiver.wait(
            lambda: "agent_stop" in {e["event"] for e in events()}, DEAD_NODE_BOUND_S, "agent_stop"
        )
        names = Counter(e["event"] for e in events())
        assert names["error"] >= 1, receiver.describe()
        assert names["agent_stop"] == 1, receiver.describe()
        stopped = next(e for e in events() if e["event"] == "agent_stop")
        assert stopped["data"]["hangupRole"] == 2, stopped

        def outcomes() -> dict[str, str]:
            records = sdk.dialogues(alive[1], session_id)
            return {sdk.extend(d)["RequestId"]: sdk.extend(d)["Outcome"] for d in records}

        found: dict[str, str] = {}

        def queued_recorded() -> bool:
            found.update(outcomes())
            return queued in found

        with contextlib.suppress(TimeoutError):  # the assertion below tells what was found
            await asyncio.to_thread(
                eventually, queued_recorded, timeout_s=10, what="the queued speech's record"
            )
        print(f"outcomes after the kill: playing {found.get(playing)}, queued {found.get(queued)}")
        assert found.get(queued) == "failed", found

        # The survivors keep serving: new calls land on them, and they speak.
        new = await asyncio.to_thread(sdk.generate_call, alive[0])
        host = cluster.owner_node(new.instance_id)
        assert host in alive, cluster.owner_of(new.instance_id)
        listener_node = next(node for node in alive if node is not host)
        async with AudioRecorder(listener_node.audio_url(new.channel_id, new.token)) as rec:
            await rec.wait_for_message(MSG_AGENT_STATE, is_listening, timeout_s=15)
            mark = rec.mark()
            request_id = await sdk.aspeak(alive[1], new.instance_id, QUEUED)
            await rec.wait_for_message(MSG_AGENT_SUBTITLE, shows(QUEUED), after=mark, timeout_s=30)
            outcome = await rec.wait_for_message(
                MSG_OUTCOME, lambda m: m.data.get("requestId") == request_id, after=mark, timeout_s=30
            )
            assert outcome.data["state"] == "finished", outcome.data
            assert rec.heard_s(after=mark) > 0.8
        for node in alive:
            assert cluster.health(node)["status"] == "ok"
        sdk.stop(alive[0], new.instance_id)


def _is_draining(cluster: Cluster, node: HeraldServer) -> bool:
    """What the node's health says, or, when it no longer answers, its record in Redis."""
    with contextlib.suppress(httpx.HTTPError):
        return bool(cluster.health(node)["draining"])
    draining = cluster.node_record(cluster.node_id(node)).get("draining", "")
    return draining.lower() in ("1", "true", "yes")


async def test_sigterm_lets_a_node_finish_its_speech_and_sends_new_calls_elsewhere(clusters, sdk) -> None:
    cluster = clusters(2)
    session_id = f"drained-{uuid.uuid4()}"
    calls = [
        await asyncio.to_thread(sdk.generate_call, cluster.random_node(), session_id=f"{session_id}-{i}")
        for i in range(4)
    ]
    speaking = calls[0]
    draining = cluster.owner_node(speaking.instance_id)
    other = next(node for node in cluster.nodes if node is not draining)
    # The draining node is made the least loaded: only a node that knows it drains would pass it over.
    for call in calls[1:]:
        if cluster.owner_node(call.instance_id) is draining:
            await asyncio.to_thread(sdk.stop, other, call.instance_id)

    async with AudioRecorder(draining.audio_url(speaking.channel_id, speaking.token)) as rec:
        await rec.wait_for_message(MSG_AGENT_STATE, is_listening, timeout_s=15)
        request_id = await sdk.aspeak(other, speaking.instance_id, DRAINED)
        await rec.wait_for_message(MSG_AGENT_SUBTITLE, shows(DRAINED), timeout_s=30)
        await rec.wait_for_speech(0.3, timeout_s=20)

        signalled_s = time.monotonic()
        stopping = asyncio.create_task(asyncio.to_thread(draining.stop, sig=signal.SIGTERM, check=False))
        with contextlib.suppress(TimeoutError):  # then the placement below tells
            await asyncio.to_thread(
                eventually, lambda: _is_draining(cluster, draining), timeout_s=3, what="the drain"
            )

        during = [await asyncio.to_thread(sdk.generate_call, other) for _ in range(2)]
        generated_s = time.monotonic()
        spoken = rec.messages(MSG_OUTCOME)
        assert not spoken, "the calls were not made during the drain: use a longer text"
        assert not stopping.done(), "the node exited before the end of its speech"
        owners = [cluster.owner_of(call.instance_id) for call in during]
        assert set(owners) == {cluster.node_id(other)}, owners

        outcome = await rec.wait_for_message(
            MSG_OUTCOME, lambda m: m.data.get("requestId") == request_id, timeout_s=30
        )
        assert outcome.data["state"] == "finished", outcome.data
        assert spoken_words(rec.messages(MSG_AGENT_SUBTITLE)) == words(DRAINED)
        heard_s = rec.heard_s()
        code = await stopping
        exited_s = time.monotonic()
    print(
        f"SIGTERM to exit {exited_s - signalled_s:.1f} s, {heard_s:.1f} s of speech heard; "
        f"new calls placed {generated_s - signalled_s:.2f} s into the drain"
    )
    assert code == 0, cluster.logs()
    assert heard_s > 2.0

    instance = await sdk.adescribe(other, speaking.instance_id)
    assert instance.status == "Finished", "finished on the way out, without waiting for a lease"
    assert instance.call_info.hangup_role == 2, instance.to_map()
    records = await asyncio.to_thread(sdk.dialogues, other, f"{session_id}-0")
    assert [(sdk.extend(d)["RequestId"], sdk.extend(d)["Outcome"]) for d in records] == [
        (request_id, "finished")
    ]
    for call in [*calls[1:], *during]:
        with contextlib.suppress(AlibabaCloudException):  # some were stopped before the drain
            await asyncio.to_thread(sdk.stop, other, call.instance_id)
