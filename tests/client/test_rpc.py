"""The CLI's signed API client: requests the server's own signature check accepts, errors read plainly."""

from __future__ import annotations

import json
from urllib.parse import parse_qsl, urlsplit

import httpx
import pytest

from herald.api.signing import SignedRequest, identify, verify
from herald.client.errors import ClientError, Refused
from herald.client.rpc import RpcClient
from herald.errors import SignatureDoesNotMatch

KEY_ID, SECRET = "LTAI-test", "s3cret"


def as_received(request: httpx.Request) -> SignedRequest:
    """The request as the server's signature check sees it."""
    raw_query = urlsplit(str(request.url)).query
    return SignedRequest(
        method=request.method,
        path=request.url.path,
        query=parse_qsl(raw_query, keep_blank_values=True),
        form=[],
        headers=[(name.decode().lower(), value.decode()) for name, value in request.headers.raw],
        body=request.content,
    )


def recording(answer: httpx.Response) -> tuple[list[httpx.Request], httpx.MockTransport]:
    sent: list[httpx.Request] = []

    def handler(request: httpx.Request) -> httpx.Response:
        sent.append(request)
        return answer

    return sent, httpx.MockTransport(handler)


async def test_requests_are_signed_as_the_server_checks_them():
    sent, transport = recording(httpx.Response(200, json={"RequestId": "R-1"}))
    text = "Hello, wörld: 100% ~ß & more + spaces"
    async with RpcClient("http://127.0.0.1:8080", KEY_ID, SECRET, transport=transport) as rpc:
        request_id = await rpc.speak("inst-1", text, EnableInterrupt="false")
    assert request_id == "R-1"

    received = as_received(sent[0])
    assert dict(received.query) == {"InstanceId": "inst-1", "Text": text, "EnableInterrupt": "false"}
    identity = identify(received)
    assert identity.access_key_id == KEY_ID
    verify(received, identity, SECRET)  # raises if the server would refuse it
    with pytest.raises(SignatureDoesNotMatch):
        verify(received, identity, "another secret")
    assert sent[0].headers["x-acs-action"] == "SendAIAgentSpeech"


async def test_generate_call_reads_the_answer():
    answer = {"RequestId": "R", "InstanceId": "i", "ChannelId": "c", "UserId": "u", "Token": "t"}
    sent, transport = recording(httpx.Response(200, json=answer))
    async with RpcClient("http://h:1", KEY_ID, SECRET, transport=transport) as rpc:
        call = await rpc.generate_call("support")
    assert (call.instance_id, call.channel_id, call.user_id, call.token) == ("i", "c", "u", "t")
    assert dict(as_received(sent[0]).query) == {"AIAgentId": "support"}


async def test_an_error_answer_is_refused_with_its_code_and_message():
    envelope = {"RequestId": "R", "HostId": "h", "Code": "InstanceNotFound", "Message": "No such instance."}
    _, transport = recording(httpx.Response(404, json=envelope))
    async with RpcClient("http://h:1", KEY_ID, SECRET, transport=transport) as rpc:
        with pytest.raises(Refused) as refused:
            await rpc.speak("nope", "Hi")
    assert (refused.value.status_code, refused.value.code) == (404, "InstanceNotFound")
    assert refused.value.message == "No such instance."


async def test_an_answer_that_is_not_json_is_a_clear_error():
    _, transport = recording(httpx.Response(200, content=b"<html>"))
    async with RpcClient("http://h:1", KEY_ID, SECRET, transport=transport) as rpc:
        with pytest.raises(ClientError, match="not a JSON object"):
            await rpc.call("DescribeAIAgentInstance", {"InstanceId": "i"})


async def test_an_answer_lacking_fields_is_a_clear_error():
    _, transport = recording(httpx.Response(200, content=json.dumps({"RequestId": "R"}).encode()))
    async with RpcClient("http://h:1", KEY_ID, SECRET, transport=transport) as rpc:
        with pytest.raises(ClientError, match="lacks 'InstanceId'"):
            await rpc.generate_call("default")
