"""``GET /metrics`` of a real server, driven with the official SDK and a WebSocket listener."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterator

import httpx
import pytest
from alibabacloud_ice20201109 import models
from alibabacloud_tea_openapi.exceptions import ClientException
from prometheus_client.parser import text_string_to_metric_families

from herald.testing.audio_client import MSG_AGENT_STATE, AudioRecorder
from herald.testing.rtc_client import RtcRecorder
from herald.testing.server import HeraldServer

pytestmark = pytest.mark.e2e

UNKNOWN_INSTANCE = "0" * 32
Key = tuple[str, tuple[tuple[str, str], ...]]


@pytest.fixture(scope="module")
def server() -> Iterator[HeraldServer]:
    with HeraldServer(check_exit=False) as running:
        yield running


def scrape(server: HeraldServer) -> dict[Key, float]:
    """Every sample ``/metrics`` exposes, keyed by name and sorted labels, parsed as Prometheus does."""
    with httpx.Client(trust_env=False, timeout=10) as http:
        response = http.get(f"{server.url}/metrics")
    assert response.status_code == 200, response.text
    assert response.headers["content-type"].startswith("text/plain")
    return {
        (sample.name, tuple(sorted(sample.labels.items()))): sample.value
        for family in text_string_to_metric_families(response.text)
        for sample in family.samples
    }


def requests(action: str, code: str) -> Key:
    return ("herald_api_requests_total", (("action", action), ("code", code)))


def request_seconds_count(action: str) -> Key:
    return ("herald_api_request_seconds_count", (("action", action),))


def participants(transport: str) -> Key:
    return ("herald_participants", (("transport", transport),))


INSTANCES: Key = ("herald_instances_active", ())
TICKS: Key = ("herald_output_ticks_total", ())


def change(before: dict[Key, float], after: dict[Key, float], key: Key) -> float:
    return after.get(key, 0.0) - before.get(key, 0.0)


def wait_for(server: HeraldServer, key: Key, value: float, timeout_s: float = 10.0) -> dict[Key, float]:
    """Scrape until ``key`` has ``value`` (what the server does after a disconnect takes a moment)."""
    deadline = time.monotonic() + timeout_s
    while True:
        values = scrape(server)
        if values.get(key) == value or time.monotonic() > deadline:
            assert values.get(key) == value, f"{key} is {values.get(key)}, expected {value}"
            return values
        time.sleep(0.1)


def test_requests_are_counted_by_action_and_code(server: HeraldServer) -> None:
    client = server.sdk_client()
    before = scrape(server)

    call = client.generate_aiagent_call(models.GenerateAIAgentCallRequest(aiagent_id="default")).body
    client.describe_aiagent_instance(models.DescribeAIAgentInstanceRequest(instance_id=call.instance_id))
    with pytest.raises(ClientException) as missing:
        client.describe_aiagent_instance(models.DescribeAIAgentInstanceRequest(instance_id=UNKNOWN_INSTANCE))
    assert missing.value.code == "InstanceNotFound"
    with pytest.raises(ClientException) as unknown:
        server.call("SendAIAgentSong", {"InstanceId": call.instance_id})
    assert unknown.value.code == "InvalidApi.NotFound"
    wrong_key = server.sdk_client(access_key_secret="not-the-secret")
    with pytest.raises(ClientException) as unsigned:
        wrong_key.stop_aiagent_instance(models.StopAIAgentInstanceRequest(instance_id=call.instance_id))
    assert unsigned.value.code == "SignatureDoesNotMatch"

    after = scrape(server)
    assert change(before, after, requests("GenerateAIAgentCall", "OK")) == 1
    assert change(before, after, requests("DescribeAIAgentInstance", "OK")) == 1
    assert change(before, after, requests("DescribeAIAgentInstance", "InstanceNotFound")) == 1
    # A made-up action is counted, under one label whatever its name: the label set stays bounded.
    assert change(before, after, requests("unknown", "InvalidApi.NotFound")) == 1
    # A refused signature is counted under the action it asked for.
    assert change(before, after, requests("StopAIAgentInstance", "SignatureDoesNotMatch")) == 1
    assert change(before, after, requests("StopAIAgentInstance", "OK")) == 0
    assert change(before, after, request_seconds_count("DescribeAIAgentInstance")) == 2
    assert change(before, after, INSTANCES) == 1

    client.stop_aiagent_instance(models.StopAIAgentInstanceRequest(instance_id=call.instance_id))
    stopped = scrape(server)
    assert change(after, stopped, requests("StopAIAgentInstance", "OK")) == 1
    assert change(after, stopped, INSTANCES) == -1


async def test_a_listener_shows_as_a_websocket_participant(server: HeraldServer) -> None:
    client = server.sdk_client()
    call = client.generate_aiagent_call(models.GenerateAIAgentCallRequest(aiagent_id="default")).body
    alone = await asyncio.to_thread(scrape, server)
    assert alone[participants("websocket")] == 0
    assert alone[participants("webrtc")] == 0
    assert alone[INSTANCES] >= 1

    async with AudioRecorder(server.audio_url(call.channel_id, call.token)) as listener:
        await listener.wait_for_message(MSG_AGENT_STATE)
        joined = await asyncio.to_thread(scrape, server)
        assert joined[participants("websocket")] == 1
        assert joined[participants("webrtc")] == 0
        assert joined[("herald_rtc_sessions", ())] == 0

        mark = listener.mark()
        await asyncio.to_thread(
            client.send_aiagent_speech,
            models.SendAIAgentSpeechRequest(instance_id=call.instance_id, text="Counting frames."),
        )
        await listener.wait_until(
            lambda: bool(listener.nonsilent_frames(after=mark)), timeout_s=20, what="the agent's speech"
        )
        spoken = await asyncio.to_thread(scrape, server)
        assert change(joined, spoken, requests("SendAIAgentSpeech", "OK")) == 1
        assert change(joined, spoken, TICKS) > 0  # the pacer ran while the agent spoke
        assert spoken[("herald_speech_queue_depth", ())] == 0

    await asyncio.to_thread(wait_for, server, participants("websocket"), 0)
    client.stop_aiagent_instance(models.StopAIAgentInstanceRequest(instance_id=call.instance_id))


async def test_webrtc_and_websocket_participants_are_told_apart(server: HeraldServer) -> None:
    client = server.sdk_client()
    call = client.generate_aiagent_call(models.GenerateAIAgentCallRequest(aiagent_id="default")).body
    async with (
        RtcRecorder(server.url, call.channel_id, call.token) as browser,
        AudioRecorder(server.audio_url(call.channel_id, call.token)) as listener,
    ):
        await browser.wait_for_message(MSG_AGENT_STATE, timeout_s=15)
        await listener.wait_for_message(MSG_AGENT_STATE)
        both = await asyncio.to_thread(scrape, server)
        assert both[participants("webrtc")] == 1
        assert both[participants("websocket")] == 1
        assert both[("herald_rtc_sessions", ())] == 1

    await asyncio.to_thread(wait_for, server, ("herald_rtc_sessions", ()), 0)
    gone = await asyncio.to_thread(wait_for, server, participants("websocket"), 0)
    assert gone[participants("webrtc")] == 0
    client.stop_aiagent_instance(models.StopAIAgentInstanceRequest(instance_id=call.instance_id))


def test_the_process_is_described_too(server: HeraldServer) -> None:
    values = scrape(server)
    assert values[("process_resident_memory_bytes", ())] > 0
    assert values[("process_cpu_seconds_total", ())] > 0
    assert ("herald_speech_first_audio_seconds_count", ()) in values
    assert ("herald_callback_deliveries_total", (("outcome", "failed"),)) in values
