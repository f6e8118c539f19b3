"""Every AI-agent action through the official SDK, as an integrator calls it."""

from __future__ import annotations

import json
import time
import uuid
from datetime import UTC, datetime

import pytest
from alibabacloud_ice20201109 import models

from herald.testing.audio_client import MSG_AGENT_SUBTITLE, AudioRecorder

pytestmark = pytest.mark.e2e


def parse_time(value: str) -> datetime:
    """ISO 8601 as ICE writes it (``2024-01-01T00:00:00Z``, maybe with fractions or an offset)."""
    parsed = datetime.fromisoformat(value.replace("Z", "+00:00"))
    assert parsed.tzinfo is not None, f"{value!r} has no time zone"
    return parsed


def iso(moment: float) -> str:
    return datetime.fromtimestamp(moment, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def test_generate_call_answers_everything_a_client_needs(api):
    first = api.generate_call()
    second = api.generate_call()
    for call in (first, second):
        assert call.instance_id
        assert call.channel_id
        assert call.user_id
        assert call.agent_user_id
        assert call.token
        assert call.request_id
        assert call.user_id != call.agent_user_id
    assert first.instance_id != second.instance_id
    assert first.channel_id != second.channel_id

    instance = api.describe(first.instance_id)
    assert instance.status == "Created"
    assert instance.runtime_config.channel_id == first.channel_id
    assert instance.runtime_config.agent_user_id == first.agent_user_id
    created = parse_time(instance.gmt_create)
    assert abs((datetime.now(UTC) - created).total_seconds()) < 60
    assert parse_time(instance.gmt_modified) >= created


def test_generate_call_takes_user_id_session_id_and_user_data(api):
    call = api.generate_call(
        user_id="alice-42", session_id="session-e2e-1", user_data=json.dumps({"order": 7})
    )
    assert call.user_id == "alice-42"
    instance = api.describe(call.instance_id)
    assert json.loads(instance.user_data) == {"order": 7}
    assert instance.session_id == "session-e2e-1"


def test_update_is_reflected_by_describe(api, call):
    before = api.describe(call.instance_id)
    api.client.update_aiagent_instance(
        models.UpdateAIAgentInstanceRequest(
            instance_id=call.instance_id,
            agent_config=models.AIAgentConfig(greeting="Hi there", volume=150, max_idle_time=300),
            user_data='{"vip": true}',
        )
    )
    instance = api.describe(call.instance_id)
    assert instance.agent_config.greeting == "Hi there"
    assert instance.agent_config.volume == 150
    assert instance.agent_config.max_idle_time == 300
    assert instance.user_data == '{"vip": true}'
    assert parse_time(instance.gmt_modified) >= parse_time(before.gmt_modified)
    assert instance.status == "Created"


def test_describe_answers_the_full_instance_shape(api, call):
    raw = api.server.call("DescribeAIAgentInstance", {"InstanceId": call.instance_id})
    instance = raw["Instance"]
    for key in (
        "AgentConfig",
        "CallInfo",
        "GmtCreate",
        "GmtModified",
        "RuntimeConfig",
        "Status",
    ):
        assert key in instance, f"Describe has no {key}: {json.dumps(raw)}"
    assert raw["RequestId"]
    assert isinstance(instance["AgentConfig"], dict)
    assert instance["RuntimeConfig"]["ChannelId"] == call.channel_id


def test_list_pages_and_time_window(api):
    # Timestamps have whole seconds: keep the instances of other tests well out of the window.
    time.sleep(2.1)
    start = time.time()
    calls = [api.generate_call() for _ in range(5)]
    end = time.time()
    time.sleep(2.1)
    later = api.generate_call()
    mine = {c.channel_id for c in calls}

    def page(number: int, size: int, start_time: str, end_time: str) -> list:
        return api.client.list_aiagent_instance(
            models.ListAIAgentInstanceRequest(
                aiagent_id="default",
                start_time=start_time,
                end_time=end_time,
                page_number=number,
                page_size=size,
            )
        ).body.instances

    window = (iso(start), iso(end + 1))
    pages = [page(n, 2, *window) for n in (1, 2, 3, 4)]
    assert [len(p) for p in pages] == [2, 2, 1, 0]
    listed = [i.runtime_config.channel_id for p in pages for i in p]
    assert sorted(listed) == sorted(mine)
    assert all(i.status == "Created" for p in pages for i in p)

    everything = page(1, 100, iso(start - 3600), iso(time.time() + 3600))
    channels = {i.runtime_config.channel_id for i in everything}
    assert mine | {later.channel_id} <= channels

    assert page(1, 100, iso(start - 7200), iso(start - 3600)) == []


def test_stop_finishes_and_refuses_further_speech(api, call):
    stopped = api.stop(call.instance_id)
    assert stopped.body.request_id
    instance = api.describe(call.instance_id)
    assert instance.status == "Finished"
    assert instance.call_info.call_end_time
    assert parse_time(instance.call_info.call_end_time) >= parse_time(instance.gmt_create)

    exc = api.error(api.speak, call.instance_id, "Are you still there?")
    assert exc.code == "IncorrectInstanceStatus"
    assert exc.status_code == 400


async def test_joined_call_records_call_info(server, api, call):
    async with AudioRecorder(server.audio_url(call.channel_id, call.token)) as rec:
        await rec.wait_for_frames(10)
        instance = await api.wait_status(call.instance_id, "Executing")
        assert parse_time(instance.call_info.call_start_time)
    api.stop(call.instance_id)
    info = api.describe(call.instance_id).call_info
    assert parse_time(info.call_end_time) >= parse_time(info.call_start_time)
    assert isinstance(info.call_duration, int)
    assert info.call_duration >= 0


async def test_started_instance_joins_with_a_cli_token(server, api):
    channel = f"e2e-{uuid.uuid4().hex[:12]}"
    started = api.client.start_aiagent_instance(
        models.StartAIAgentInstanceRequest(
            aiagent_id="default",
            runtime_config=models.AIAgentRuntimeConfig(channel_id=channel, agent_user_id="agent-e2e"),
            user_data="started",
        )
    )
    instance_id = started.body.instance_id
    assert instance_id
    try:
        instance = api.describe(instance_id)
        assert instance.status == "Created"
        assert instance.runtime_config.channel_id == channel
        assert instance.runtime_config.agent_user_id == "agent-e2e"

        token = server.token(channel, "caller-e2e")
        async with AudioRecorder(server.audio_url(channel, token)) as rec:
            await rec.wait_for_frames(5)
            await api.wait_status(instance_id, "Executing")
            mark = rec.mark()
            await api.aspeak(instance_id, "Welcome to the started instance.")
            subtitle = await rec.wait_for_message(MSG_AGENT_SUBTITLE, after=mark, timeout_s=30)
            await rec.wait_for_speech(0.5, after=subtitle.index, timeout_s=20)
    finally:
        api.stop(instance_id)


def test_v1_hmac_sha1_signing_works(server, api):
    v1 = server.sdk_client(signature_algorithm="v2")
    body = v1.generate_aiagent_call(models.GenerateAIAgentCallRequest(aiagent_id="default")).body
    assert body.instance_id
    described = v1.describe_aiagent_instance(
        models.DescribeAIAgentInstanceRequest(instance_id=body.instance_id)
    )
    assert described.body.instance.status == "Created"
    v1.stop_aiagent_instance(models.StopAIAgentInstanceRequest(instance_id=body.instance_id))
    assert api.describe(body.instance_id).status == "Finished"
