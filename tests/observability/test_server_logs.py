"""A real server's logs after a whole flow: every line one JSON object with its context, and no secrets.

The server runs at ``--log-level debug``, the most talkative setting an operator can choose.
"""

from __future__ import annotations

import asyncio
import json
import re
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

import pytest
from alibabacloud_ice20201109 import models
from alibabacloud_tea_openapi.exceptions import ClientException

from herald.testing.audio_client import MSG_AGENT_STATE, AudioRecorder, refused_upgrade
from herald.testing.server import HeraldServer

pytestmark = pytest.mark.e2e

MSG_SPEECH_OUTCOME = 1900
FIELDS = {"time", "level", "logger", "message", "request_id", "instance_id"}
WRONG_SECRET = "wrong-secret-0123456789abcdefXYZ"
# `python -m herald serve ...` with --log-level debug appended to whatever HeraldServer passes.
DEBUG_SERVE = [
    sys.executable,
    "-c",
    "import sys; from herald.cli import main; sys.exit(main([*sys.argv[1:], '--log-level', 'debug']))",
]


@dataclass
class Flow:
    server: HeraldServer
    log: str
    instance_id: str
    token: str
    speech_request_id: str
    refused_request_id: str


@pytest.fixture(scope="module")
def flow() -> Iterator[Flow]:
    """Call, listen, speak, then a request signed with a wrong secret and a join with a forged token."""
    server = HeraldServer(command=DEBUG_SERVE)
    try:
        server.start()
        client = server.sdk_client()
        call = client.generate_aiagent_call(models.GenerateAIAgentCallRequest(aiagent_id="default")).body
        speech_request_id = asyncio.run(listen_to_a_speech(server, call))

        with pytest.raises(ClientException) as refused:
            server.sdk_client(access_key_secret=WRONG_SECRET).describe_aiagent_instance(
                models.DescribeAIAgentInstanceRequest(instance_id=call.instance_id)
            )
        assert refused.value.code == "SignatureDoesNotMatch"

        header, payload, signature = call.token.split(".")
        forged = f"{header}.{payload}.{signature[::-1]}"
        refusal = asyncio.run(refused_upgrade(server.audio_url(call.channel_id, forged)))
        assert refusal.status_code in (401, 403), refusal

        client.stop_aiagent_instance(models.StopAIAgentInstanceRequest(instance_id=call.instance_id))
        server.stop()
        yield Flow(
            server,
            server.logs(),
            call.instance_id,
            call.token,
            speech_request_id,
            refused.value.data["RequestId"],
        )
    finally:
        server.close()


async def listen_to_a_speech(server: HeraldServer, call: Any) -> str:
    """Join with the call's token, push a speech and hear it to its end; its RequestId."""
    client = server.sdk_client()
    async with AudioRecorder(server.audio_url(call.channel_id, call.token)) as listener:
        await listener.wait_for_message(MSG_AGENT_STATE)
        request_id: str = (
            await asyncio.to_thread(
                client.send_aiagent_speech,
                models.SendAIAgentSpeechRequest(instance_id=call.instance_id, text="Nothing secret here."),
            )
        ).body.request_id
        await listener.wait_for_message(
            MSG_SPEECH_OUTCOME, lambda m: m.data.get("requestId") == request_id, timeout_s=30
        )
        assert listener.nonsilent_frames()
    return request_id


def server_lines(log: str) -> list[str]:
    """What the server logged once it was running: the lines after its start-up banner (stdout)."""
    lines = log.splitlines()
    banner = next(i for i, line in enumerate(lines) if line.startswith("Console: "))
    return [line for line in lines[banner + 1 :] if line.strip()]


def records(flow: Flow) -> list[dict[str, Any]]:
    return [json.loads(line) for line in server_lines(flow.log)]


def test_every_line_is_one_json_object_with_the_fields(flow: Flow) -> None:
    lines = server_lines(flow.log)
    assert len(lines) > 5
    for line in lines:
        try:
            record = json.loads(line)
        except ValueError:
            pytest.fail(f"not a JSON line: {line!r}")
        assert isinstance(record, dict), line
        assert record.keys() >= FIELDS, line
        assert record["level"] in {"DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL"}, line
        assert record["request_id"] is None or isinstance(record["request_id"], str)
        assert record["instance_id"] is None or isinstance(record["instance_id"], str)
        assert record["time"].endswith("Z"), line
        assert datetime.fromisoformat(record["time"]).utcoffset() == timedelta(0), line


def test_uvicorn_speaks_json_too(flow: Flow) -> None:
    messages = [r["message"] for r in records(flow) if r["logger"].startswith("uvicorn")]
    assert any("Application startup complete" in m for m in messages), messages
    assert any("Finished server process" in m for m in messages), messages


def test_the_speech_requests_lines_carry_its_request_and_instance(flow: Flow) -> None:
    mine = [r for r in records(flow) if r["request_id"] == flow.speech_request_id]
    assert any(r["logger"] == "herald.api.rpc" and "SendAIAgentSpeech" in r["message"] for r in mine), mine
    assert all(r["instance_id"] == flow.instance_id for r in mine), mine


def test_a_refused_request_is_logged_with_the_request_id_its_caller_got(flow: Flow) -> None:
    [refusal] = [r for r in records(flow) if r["request_id"] == flow.refused_request_id]
    assert refusal["level"] == "INFO"
    assert "SignatureDoesNotMatch" in refusal["message"]
    assert refusal["instance_id"] == flow.instance_id


def test_the_listener_is_logged_with_its_instance(flow: Flow) -> None:
    joined = [r for r in records(flow) if r["logger"] == "herald.api.audio_ws" and "joined" in r["message"]]
    assert [r["instance_id"] for r in joined] == [flow.instance_id]


def test_no_secret_token_or_audio_is_logged(flow: Flow) -> None:
    log = flow.log  # all of it, the start-up banner included
    assert flow.server.access_key_secret not in log
    assert WRONG_SECRET not in log
    _, payload, signature = flow.token.split(".")
    assert flow.token not in log
    assert payload not in log  # not even in the forged token of the refused join
    assert signature not in log
    assert signature[::-1] not in log
    # Audio: no dump of frames (uvicorn's debug output shows them as hex), no base64 payload.
    assert "BINARY" not in log
    assert not re.search(r"(?:[0-9a-f]{2} ){16}", log)
    assert not re.search(r"[A-Za-z0-9+/]{100,}", log)
    assert "\\x00\\x00" not in log
