"""SendAIAgentDataChannelMessage through the official SDK, and client messages over the audio WebSocket."""

from __future__ import annotations

import json

import pytest
from alibabacloud_ice20201109 import models

from herald.testing.audio_client import MSG_AGENT_STATE, AudioRecorder
from herald.testing.transcript import is_listening

pytestmark = pytest.mark.e2e

MSG_ERROR = 1000
MSG_CUSTOM = 1011
MSG_INTERRUPTED = 1016
MSG_OUTCOME = 1900
LONG = (
    "This is a long announcement about our service. It has several sentences, so that it takes a good "
    "while to say. The third sentence talks about the weather, which is lovely today."
)


def send_message(api, instance_id: str | None, message: str | None):
    return lambda: api.client.send_aiagent_data_channel_message(
        models.SendAIAgentDataChannelMessageRequest(instance_id=instance_id, message=message)
    )


async def test_a_custom_message_reaches_everyone_in_the_call_as_given(server, api, call) -> None:
    url = server.audio_url(call.channel_id, call.token)
    other = server.token(call.channel_id, "second-user")
    async with AudioRecorder(url) as first, AudioRecorder(server.audio_url(call.channel_id, other)) as second:
        for rec in (first, second):
            await rec.wait_for_message(MSG_AGENT_STATE, is_listening, timeout_s=10)
        payload = json.dumps({"kind": "order", "id": 42, "note": "née ✓"}, ensure_ascii=False)
        response = api.client.send_aiagent_data_channel_message(
            models.SendAIAgentDataChannelMessageRequest(instance_id=call.instance_id, message=payload)
        )
        assert response.body.request_id
        for rec in (first, second):
            message = await rec.wait_for_message(MSG_CUSTOM, timeout_s=10)
            assert message.data == {"message": payload}


@pytest.mark.parametrize(
    ("message", "code", "mentions"),
    [
        (None, "MissingParameter", "Message"),
        ("not json {", "InvalidParameter", "JSON"),
        ("x" * 8193, "InvalidParameter", "8192"),
    ],
    ids=["missing", "not-json", "too-long"],
)
def test_bad_messages_are_refused_with_the_envelope(api, call, message, code, mentions) -> None:
    exc = api.error(send_message(api, call.instance_id, message))
    assert (exc.code, exc.status_code) == (code, 400)
    assert mentions in exc.data["Message"]


def test_unknown_and_finished_instances_are_refused(api) -> None:
    exc = api.error(send_message(api, "0" * 32, "{}"))
    assert (exc.code, exc.status_code) == ("InstanceNotFound", 404)
    call = api.generate_call()
    api.stop(call.instance_id)
    exc = api.error(send_message(api, call.instance_id, "{}"))
    assert (exc.code, exc.status_code) == ("IncorrectInstanceStatus", 400)


async def test_a_websocket_client_interrupts_and_queries_with_text_messages(server, api, call) -> None:
    async with AudioRecorder(server.audio_url(call.channel_id, call.token)) as rec:
        await rec.wait_for_message(MSG_AGENT_STATE, is_listening, timeout_s=10)
        request_id = await api.aspeak(call.instance_id, LONG)
        await rec.wait_until(lambda: rec.heard_s() > 0.5, timeout_s=30, what="half a second of speech")
        await rec.send_json({"type": 1101, "data": {}})
        interrupted = await rec.wait_for_message(MSG_INTERRUPTED, timeout_s=10)
        assert interrupted.data == {"reason": 3}
        outcome = await rec.wait_for_message(
            MSG_OUTCOME, lambda m: m.data.get("requestId") == request_id, timeout_s=10
        )
        assert outcome.data["state"] == "interrupted"
        mark = rec.mark()
        await rec.send_json({"type": 1119})
        state = await rec.wait_for_message(MSG_AGENT_STATE, after=mark, timeout_s=10)
        assert state.data == {"state": 1}
        await rec.send_json({"no": "type"})
        error = await rec.wait_for_message(MSG_ERROR, timeout_s=10)
        assert error.data["code"] == "InvalidMessage"
