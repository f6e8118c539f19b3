"""Following an instance live: ``GET /v1/instances/{InstanceId}/events`` as Server-Sent Events.

An operator's tool follows an agent through a speech and an interrupt, drops the connection, and
resumes with ``Last-Event-ID``: it gets every event once, in order, and the stream ends with the agent.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

import httpx
import pytest

from herald.testing.audio_client import MSG_AGENT_STATE, AudioRecorder
from herald.testing.transcript import is_listening

pytestmark = pytest.mark.e2e

LONG = (
    "This is a long announcement about our service. It has several sentences, so that it takes a good "
    "while to say. The third sentence talks about the weather, which is lovely today."
)


@dataclass(frozen=True)
class Sse:
    id: int
    event: str
    data: dict[str, Any]


async def follow(response: httpx.Response) -> AsyncIterator[Sse]:
    """Parse a text/event-stream body into events (comments and keep-alives skipped)."""
    fields: dict[str, str] = {}
    async for line in response.aiter_lines():
        if line.startswith(":"):
            continue
        if not line:
            if "data" in fields:
                yield Sse(int(fields["id"]), fields["event"], json.loads(fields["data"]))
            fields = {}
            continue
        name, _, value = line.partition(":")
        fields[name] = value.removeprefix(" ")


def signed_get(server, path: str) -> dict[str, str]:
    return server.signed_get(path)


async def test_an_operator_follows_a_speech_and_an_interrupt_and_resumes_after_a_disconnect(
    server, api, call
) -> None:
    path = f"/v1/instances/{call.instance_id}/events"
    seen: list[Sse] = []
    async with httpx.AsyncClient(base_url=server.url, timeout=30) as http:
        async with (
            AudioRecorder(server.audio_url(call.channel_id, call.token)) as rec,
            http.stream("GET", path, headers=signed_get(server, path)) as response,
        ):
            assert response.status_code == 200
            assert response.headers["content-type"].startswith("text/event-stream")
            await rec.wait_for_message(MSG_AGENT_STATE, is_listening, timeout_s=10)
            events = follow(response)
            first = await api.aspeak(call.instance_id, LONG)
            while not any(e.event == "tts_data_received" for e in seen):
                seen.append(await asyncio.wait_for(anext(events), 30))
            await rec.wait_until(lambda: rec.heard_s() > 0.5, timeout_s=30, what="half a second of speech")
            second = await api.aspeak(call.instance_id, "Sorry to cut in.")
            while not any(e.event == "audio_record" for e in seen):
                seen.append(await asyncio.wait_for(anext(events), 30))
        # Disconnected. Things go on happening meanwhile...
        await asyncio.sleep(3)  # the second speech finishes
        api.stop(call.instance_id)
        # ...and the tool resumes from the last event it saw.
        headers = {**signed_get(server, path), "Last-Event-ID": str(seen[-1].id)}
        async with http.stream("GET", path, headers=headers) as response:
            assert response.status_code == 200
            rest = [e async for e in follow(response)]  # ends by itself after agent_stop
    everything = seen + rest
    ids = [e.id for e in everything]
    assert ids == sorted(set(ids)), "each event once, in order"
    names = [e.event for e in everything]
    assert names[:2] == ["agent_start", "session_start"]
    assert names[-1] == "agent_stop"
    records = {e.data["data"]["requestId"]: e.data["data"] for e in everything if e.event == "audio_record"}
    assert records[first]["outcome"] == "interrupted"
    assert LONG.startswith(records[first]["heardText"])
    assert records[second]["outcome"] == "finished"
    assert records[second]["heardText"] == "Sorry to cut in."
    assert all(e.data["instanceId"] == call.instance_id and e.data["event"] == e.event for e in everything)


async def test_the_call_token_may_follow_its_own_instance_and_no_other(server, api, call) -> None:
    other = api.generate_call()
    try:
        async with httpx.AsyncClient(base_url=server.url, timeout=10) as http:
            bearer = {"Authorization": f"Bearer {call.token}"}
            api.stop(call.instance_id)
            response = await http.get(f"/v1/instances/{call.instance_id}/events", headers=bearer)
            assert response.status_code == 200
            assert "event: agent_stop" in response.text  # a finished instance: its whole story, then the end
            refused = await http.get(f"/v1/instances/{other.instance_id}/events", headers=bearer)
            assert (refused.status_code, refused.json()["Code"]) == (401, "InvalidToken")
    finally:
        api.stop(other.instance_id)


@pytest.mark.parametrize(
    ("headers", "status", "code"),
    [
        ({}, 400, "IncompleteSignature"),
        ({"Authorization": "Bearer not-a-token"}, 401, "InvalidToken"),
        ({"Last-Event-ID": "yesterday"}, 400, "InvalidParameter"),
    ],
    ids=["unsigned", "bad-token", "bad-last-event-id"],
)
async def test_refusals_carry_the_envelope(server, call, headers, status, code) -> None:
    path = f"/v1/instances/{call.instance_id}/events"
    if "Last-Event-ID" in headers:
        headers = {**signed_get(server, path), **headers}
    async with httpx.AsyncClient(base_url=server.url, timeout=10) as http:
        response = await http.get(path, headers=headers)
    assert (response.status_code, response.json()["Code"]) == (status, code)


async def test_an_unknown_instance_is_not_found(server) -> None:
    path = "/v1/instances/00000000000000000000000000000000/events"
    async with httpx.AsyncClient(base_url=server.url, timeout=10) as http:
        response = await http.get(path, headers=signed_get(server, path))
    assert (response.status_code, response.json()["Code"]) == (404, "InstanceNotFound")
