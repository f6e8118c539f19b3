"""A three-node cluster through the official SDK: any node answers any action as one node does.

Each test sends its actions to nodes chosen at random or, where it matters, to nodes that do not host the
instance (the owner is read from Redis), and checks the answers and errors are those of a single node.
New instances go to the least-loaded node. A listener joined through a node other than the owner (over the
WebSocket or WebRTC) hears speech requested through a third node.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import json
import time
import uuid
from collections import Counter
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from typing import Any

import pytest
from alibabacloud_ice20201109 import models
from alibabacloud_tea_openapi.exceptions import ClientException

from herald.testing.audio_client import MSG_AGENT_STATE, MSG_AGENT_SUBTITLE, AudioRecorder
from herald.testing.cluster import Cluster, eventually
from herald.testing.rtc_client import RtcRecorder
from herald.testing.server import HeraldServer
from herald.testing.transcript import is_listening, shows, spoken_words, words

pytestmark = pytest.mark.e2e

UNKNOWN = "0" * 32
MSG_CUSTOM = 1011
MSG_INTERRUPTED = 1016
MSG_OUTCOME = 1900
BY_CLIENT = 3
SHORT = "Hello from the cluster, this is a short sentence."
LONG = (
    "This is a long announcement about our service. It has several sentences, so that it takes a good "
    "while to say. The third sentence talks about the weather, which is lovely today."
)


def iso(moment: float) -> str:
    return datetime.fromtimestamp(moment, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def not_hosting(cluster: Cluster, instance_id: str) -> list[HeraldServer]:
    """The nodes that do not host the instance: what they answer, they answer by routing."""
    owner = cluster.owner_node(instance_id)
    return [node for node in cluster.nodes if node is not owner]


@pytest.fixture
def call(cluster, sdk) -> Iterator[Any]:
    """A fresh call made through a random node, stopped (through another) after the test."""
    made = sdk.generate_call(cluster.random_node())
    yield made
    with contextlib.suppress(ClientException):  # the test stopped it already
        sdk.stop(cluster.random_node(), made.instance_id)


@pytest.fixture(scope="module")
def live(cluster, sdk) -> Iterator[str]:
    """An instance that stays Created for the module (errors about its parameters need one)."""
    made = sdk.generate_call(cluster.random_node())
    yield made.instance_id
    sdk.stop(cluster.random_node(), made.instance_id)


@pytest.fixture(scope="module")
def stopped(cluster, sdk) -> str:
    """An instance that is Finished."""
    made = sdk.generate_call(cluster.random_node())
    sdk.stop(cluster.random_node(), made.instance_id)
    return str(made.instance_id)


# -- health and placement ------------------------------------------------------------------------------


def test_every_node_reports_its_health(cluster) -> None:
    for node in cluster.nodes:
        health = cluster.health(node)
        assert health["status"] == "ok", health
        assert health["node"] == cluster.node_id(node), health
        assert health["draining"] is False, health
        assert isinstance(health["liveInstances"], int), health


def least_loaded_counts(counts: list[int], added: int) -> list[int]:
    """What ``added`` instances, each put on a least-loaded node, make of ``counts`` (sorted)."""
    final = sorted(counts)
    for _ in range(added):
        final[0] += 1
        final.sort()
    return final


def test_new_instances_go_to_the_least_loaded_node(cluster, sdk) -> None:
    def loads() -> dict[str, int]:
        return {cluster.node_id(node): cluster.health(node)["liveInstances"] for node in cluster.nodes}

    # Instances of other tests may still be going: wait until the counts hold still for a heartbeat.
    before: dict[str, int] = {}

    def settled() -> bool:
        nonlocal before
        previous, before = before, loads()
        return before == previous

    eventually(settled, timeout_s=15, interval_s=1.2, what="settled instance counts")
    calls = [sdk.generate_call(cluster.random_node()) for _ in range(6)]
    try:
        placed = Counter(cluster.owner_of(call.instance_id) for call in calls)
        after = loads()
        print(f"6 calls placed {dict(placed)} on nodes holding {before}")
        assert set(placed) <= set(after), placed
        grown = {node_id: after[node_id] - before[node_id] for node_id in after}
        assert {node_id: n for node_id, n in grown.items() if n} == dict(placed), (grown, placed)
        assert sorted(after.values()) == least_loaded_counts(list(before.values()), 6), (before, after)
    finally:
        for call in calls:
            sdk.stop(cluster.random_node(), call.instance_id)


# -- every action, from every node -----------------------------------------------------------------------


def test_every_action_answers_the_same_from_every_node(cluster, sdk) -> None:
    session_id = f"cluster-{uuid.uuid4()}"
    started = time.time()
    call = sdk.generate_call(cluster.random_node(), session_id=session_id, user_data='{"order": 7}')
    owner = cluster.owner_of(call.instance_id)
    assert owner in {cluster.node_id(node) for node in cluster.nodes}, owner
    there, elsewhere = not_hosting(cluster, call.instance_id)
    try:
        described = [sdk.describe(node, call.instance_id).to_map() for node in cluster.nodes]
        assert all(each == described[0] for each in described), described
        assert described[0]["Status"] == "Created"
        assert described[0]["RuntimeConfig"]["ChannelId"] == call.channel_id
        assert described[0]["SessionId"] == session_id
        assert json.loads(described[0]["UserData"]) == {"order": 7}

        there.sdk_client().update_aiagent_instance(
            models.UpdateAIAgentInstanceRequest(
                instance_id=call.instance_id,
                agent_config=models.AIAgentConfig(greeting="Hi there", volume=150),
                user_data='{"vip": true}',
            )
        )
        for node in cluster.nodes:
            instance = sdk.describe(node, call.instance_id)
            assert (instance.agent_config.greeting, instance.agent_config.volume) == ("Hi there", 150)
            assert instance.user_data == '{"vip": true}'

        listed = []
        for node in cluster.nodes:
            page = (
                node.sdk_client()
                .list_aiagent_instance(
                    models.ListAIAgentInstanceRequest(
                        aiagent_id="default",
                        start_time=iso(started - 3600),
                        end_time=iso(time.time() + 3600),
                        page_size=100,
                    )
                )
                .body.instances
            )
            listed.append({i.runtime_config.channel_id: i.status for i in page})
        assert all(each == listed[0] for each in listed), listed
        assert listed[0].get(call.channel_id) == "Created", listed[0]

        request_id = sdk.speak(elsewhere, call.instance_id, SHORT)
        eventually(
            lambda: [sdk.extend(d)["RequestId"] for d in sdk.dialogues(there, session_id)] == [request_id],
            timeout_s=30,
            what="the speech's dialogue record",
        )
        dialogues = [[d.to_map() for d in sdk.dialogues(node, session_id)] for node in cluster.nodes]
        assert all(each == dialogues[0] for each in dialogues), dialogues
        record = sdk.dialogues(there, session_id)[0]
        assert sdk.extend(record)["Outcome"] == "finished", record.to_map()
        assert words(record.text) == words(SHORT), record.to_map()

        sent = there.sdk_client().send_aiagent_data_channel_message(
            models.SendAIAgentDataChannelMessageRequest(instance_id=call.instance_id, message='{"a": 1}')
        )
        assert sent.body.request_id

        assert sdk.stop(elsewhere, call.instance_id).body.request_id
        for node in cluster.nodes:
            instance = sdk.describe(node, call.instance_id)
            assert instance.status == "Finished", instance.to_map()
            assert instance.call_info.call_end_time
    finally:
        with contextlib.suppress(ClientException):
            sdk.stop(cluster.random_node(), call.instance_id)


def _describe(node: HeraldServer, instance_id: str) -> Any:
    return node.sdk_client().describe_aiagent_instance(
        models.DescribeAIAgentInstanceRequest(instance_id=instance_id)
    )


def _speak(node: HeraldServer, instance_id: str, text: str = "Hello", **fields: Any) -> Any:
    return node.sdk_client().send_aiagent_speech(
        models.SendAIAgentSpeechRequest(instance_id=instance_id, text=text, **fields)
    )


def _message(node: HeraldServer, instance_id: str, message: str) -> Any:
    return node.sdk_client().send_aiagent_data_channel_message(
        models.SendAIAgentDataChannelMessageRequest(instance_id=instance_id, message=message)
    )


def _update(node: HeraldServer, instance_id: str, **params: str) -> Any:
    return node.call("UpdateAIAgentInstance", {"InstanceId": instance_id, **params})


def _stop(node: HeraldServer, instance_id: str) -> Any:
    return node.sdk_client().stop_aiagent_instance(models.StopAIAgentInstanceRequest(instance_id=instance_id))


Request = Callable[[HeraldServer, str, str], Any]
"""Sends one request to a node, given the live and the stopped instance."""

# Each case: the request, and the code, status and a word of the message a single node answers it with.
BAD_REQUESTS: dict[str, tuple[Request, str, int, str | None]] = {
    "describe-unknown": (lambda n, live, stopped: _describe(n, UNKNOWN), "InstanceNotFound", 404, None),
    "speech-unknown": (lambda n, live, stopped: _speak(n, UNKNOWN), "InstanceNotFound", 404, None),
    "update-unknown": (
        lambda n, live, stopped: _update(n, UNKNOWN, UserData="x"),
        "InstanceNotFound",
        404,
        None,
    ),
    "stop-unknown": (lambda n, live, stopped: _stop(n, UNKNOWN), "InstanceNotFound", 404, None),
    "message-unknown": (lambda n, live, stopped: _message(n, UNKNOWN, "{}"), "InstanceNotFound", 404, None),
    "speech-stopped": (lambda n, live, stopped: _speak(n, stopped), "IncorrectInstanceStatus", 400, None),
    "message-stopped": (
        lambda n, live, stopped: _message(n, stopped, "{}"),
        "IncorrectInstanceStatus",
        400,
        None,
    ),
    "speech-too-long": (
        lambda n, live, stopped: _speak(n, live, "a" * 1025),
        "InvalidParameter",
        400,
        "Text",
    ),
    "speech-empty": (lambda n, live, stopped: _speak(n, live, ""), "InvalidParameter", 400, "Text"),
    "speech-type": (lambda n, live, stopped: _speak(n, live, type="Video"), "InvalidParameter", 400, "Type"),
    "update-bad-config": (
        lambda n, live, stopped: _update(n, live, AgentConfig="{not json"),
        "InvalidParameter",
        400,
        "AgentConfig",
    ),
    "message-not-json": (
        lambda n, live, stopped: _message(n, live, "not json {"),
        "InvalidParameter",
        400,
        "JSON",
    ),
    "describe-no-id": (
        lambda n, live, stopped: n.sdk_client().describe_aiagent_instance(
            models.DescribeAIAgentInstanceRequest()
        ),
        "MissingParameter",
        400,
        "InstanceId",
    ),
}


@pytest.mark.parametrize("case", list(BAD_REQUESTS))
def test_errors_are_those_of_one_node_whichever_node_answers(cluster, sdk, live, stopped, case) -> None:
    request, code, status, mentions = BAD_REQUESTS[case]
    answers = {}
    for node in cluster.nodes:
        exc = sdk.error(request, node, live, stopped)
        answers[cluster.node_id(node)] = (exc.code, exc.status_code)
        if mentions:
            assert mentions.lower() in exc.data["Message"].lower(), exc.data
    assert set(answers.values()) == {(code, status)}, answers


def test_a_channel_has_one_live_instance_whichever_node_is_asked(cluster, sdk) -> None:
    channel = f"cluster-{uuid.uuid4().hex[:12]}"

    def start(node: HeraldServer) -> str:
        response = node.sdk_client().start_aiagent_instance(
            models.StartAIAgentInstanceRequest(
                aiagent_id="default",
                runtime_config=models.AIAgentRuntimeConfig(channel_id=channel, agent_user_id="agent-1"),
            )
        )
        return str(response.body.instance_id)

    first = start(cluster.random_node())
    elsewhere = not_hosting(cluster, first)
    try:
        for node in [*elsewhere, cluster.owner_node(first)]:
            exc = sdk.error(start, node)
            assert (exc.code, exc.status_code) == ("InvalidParameter", 400), exc.data
            assert "RuntimeConfig.ChannelId" in exc.data["Message"], exc.data
        sdk.stop(elsewhere[0], first)
        second = start(elsewhere[1])
        assert second != first
        sdk.stop(cluster.random_node(), second)
    finally:
        with contextlib.suppress(ClientException):
            sdk.stop(cluster.random_node(), first)


def test_starts_in_one_channel_on_every_node_at_once_make_one_instance(cluster, sdk) -> None:
    channel = f"cluster-race-{uuid.uuid4().hex[:12]}"
    request = models.StartAIAgentInstanceRequest(
        aiagent_id="default",
        runtime_config=models.AIAgentRuntimeConfig(channel_id=channel, agent_user_id="agent-1"),
    )
    clients = [node.sdk_client() for node in cluster.nodes for _ in range(2)]
    with concurrent.futures.ThreadPoolExecutor(len(clients)) as pool:
        futures = [pool.submit(client.start_aiagent_instance, request) for client in clients]
        concurrent.futures.wait(futures)
    started = [f.result().body.instance_id for f in futures if f.exception() is None]
    refused = [f.exception() for f in futures if f.exception() is not None]
    try:
        assert len(started) == 1, (started, refused)
        for exc in refused:
            assert isinstance(exc, ClientException), exc
            assert (exc.code, exc.status_code) == ("InvalidParameter", 400), exc.data
    finally:
        for instance_id in started:
            sdk.stop(cluster.random_node(), instance_id)


# -- listeners joined through a node that does not host the instance ------------------------------------


async def test_a_websocket_listener_on_another_node_hears_speech_sent_through_a_third(cluster, sdk, call):
    listener_node, sender = not_hosting(cluster, call.instance_id)
    async with AudioRecorder(listener_node.audio_url(call.channel_id, call.token)) as rec:
        await rec.wait_for_message(MSG_AGENT_STATE, is_listening, timeout_s=15)
        # Audio comes through the proxy in real time: about 100 frames in 2 s, away from start-up.
        start = rec.mark()
        await asyncio.sleep(2.5)
        frames = rec.frames(after=start)
        t0 = frames[0].received_s + 0.25
        in_window = [f for f in frames if t0 <= f.received_s < t0 + 2.0]
        assert 80 <= len(in_window) <= 120, f"{len(in_window)} frames in 2 s, expected about 100"
        instance = await sdk.adescribe(sender, call.instance_id)
        assert instance.status == "Executing", "a user joined through a proxy is in the call"

        mark = rec.mark()
        sent_s = time.monotonic()
        request_id = await sdk.aspeak(sender, call.instance_id, SHORT)
        subtitle = await rec.wait_for_message(MSG_AGENT_SUBTITLE, shows(SHORT), after=mark, timeout_s=30)
        print(f"first subtitle through the proxy: {1000 * (subtitle.received_s - sent_s):.0f} ms")
        await rec.wait_for_speech(0.8, after=subtitle.index, timeout_s=20)
        outcome = await rec.wait_for_message(
            MSG_OUTCOME, lambda m: m.data.get("requestId") == request_id, after=mark, timeout_s=30
        )
        assert outcome.data["state"] == "finished", outcome.data
        assert spoken_words(rec.messages(MSG_AGENT_SUBTITLE, after=mark)) == words(SHORT)
        assert rec.rms_per_frame(after=mark).max() > 1000

        payload = json.dumps({"kind": "order", "id": 42})
        await asyncio.to_thread(_message, sender, call.instance_id, payload)
        custom = await rec.wait_for_message(MSG_CUSTOM, after=mark, timeout_s=10)
        assert custom.data == {"message": payload}

        # The listener's own messages travel to the owner: an interrupt from it cuts the speech.
        mark = rec.mark()
        long_id = await sdk.aspeak(sender, call.instance_id, LONG)
        await rec.wait_for_speech(0.5, after=mark, timeout_s=30)
        await rec.send_json({"type": 1101, "data": {}})
        interrupted = await rec.wait_for_message(MSG_INTERRUPTED, after=mark, timeout_s=10)
        assert interrupted.data == {"reason": BY_CLIENT}
        outcome = await rec.wait_for_message(
            MSG_OUTCOME, lambda m: m.data.get("requestId") == long_id, after=mark, timeout_s=10
        )
        assert outcome.data["state"] == "interrupted", outcome.data
    assert rec.errors == []


async def test_a_webrtc_participant_joins_through_another_node(cluster, sdk, call):
    joined_at, sender = not_hosting(cluster, call.instance_id)
    async with RtcRecorder(joined_at.url, call.channel_id, call.token) as rec:
        await rec.wait_for_message(MSG_AGENT_STATE, is_listening, timeout_s=15)
        instance = await sdk.adescribe(sender, call.instance_id)
        assert instance.status == "Executing"
        mark = rec.mark()
        request_id = await sdk.aspeak(sender, call.instance_id, SHORT)
        subtitle = await rec.wait_for_message(MSG_AGENT_SUBTITLE, shows(SHORT), after=mark, timeout_s=30)
        await rec.wait_for_speech(0.8, after=subtitle.index, timeout_s=20)
        outcome = await rec.wait_for_message(
            MSG_OUTCOME, lambda m: m.data.get("requestId") == request_id, after=mark, timeout_s=30
        )
        assert outcome.data["state"] == "finished", outcome.data
        assert rec.rms_per_frame(after=mark).max() > 1000
        session = await rec.describe_session()
        assert session.get("ConnectionState") == "connected", session
    assert rec.errors == []
