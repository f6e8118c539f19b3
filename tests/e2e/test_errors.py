"""Bad input gets the ICE error envelope with the documented code and status, never a 5xx."""

from __future__ import annotations

import time

import httpx
import pytest
from alibabacloud_ice20201109 import models

from herald.testing.server import HeraldServer

pytestmark = pytest.mark.e2e

UNKNOWN_INSTANCE = "00000000000000000000000000000000"
ENVELOPE_KEYS = {"RequestId", "HostId", "Code", "Message", "Recommend"}


@pytest.fixture(scope="module")
def live(api):
    """One call that stays Created for the whole module (speech errors need a real instance)."""
    generated = api.generate_call()
    yield generated
    api.stop(generated.instance_id)


@pytest.fixture
def http():
    with httpx.Client(trust_env=False, timeout=10) as client:
        yield client


def speech(api, **fields):
    return lambda: api.client.send_aiagent_speech(models.SendAIAgentSpeechRequest(**fields))


def envelope(response: httpx.Response) -> dict:
    assert response.status_code < 500, response.text
    body = response.json()
    assert body.keys() >= ENVELOPE_KEYS, body
    return body


@pytest.mark.parametrize(
    ("fields", "code", "status", "mentions"),
    [
        ({"text": "Hello"}, "MissingParameter", 400, "InstanceId"),
        ({"instance_id": "LIVE"}, "MissingParameter", 400, "Text"),
        ({"instance_id": "LIVE", "text": "a" * 1025}, "InvalidParameter", 400, "Text"),
        ({"instance_id": "LIVE", "text": ""}, "InvalidParameter", 400, "Text"),
        ({"instance_id": "LIVE", "text": "Hello", "type": "Video"}, "InvalidParameter", 400, "Type"),
        (
            {"instance_id": "LIVE", "text": "ftp://example.com/a.wav", "type": "AudioUrl"},
            "InvalidParameter",
            400,
            "Text",
        ),
        (
            {"instance_id": "LIVE", "text": "http://10.1.2.3/a.wav", "type": "AudioUrl"},
            "InvalidParameter",
            400,
            "private",
        ),
        ({"instance_id": UNKNOWN_INSTANCE, "text": "Hello"}, "InstanceNotFound", 404, None),
    ],
    ids=[
        "no-instance",
        "no-text",
        "text-too-long",
        "text-empty",
        "type-video",
        "audiourl-scheme",
        "audiourl-private-address",
        "unknown-instance",
    ],
)
def test_bad_speech_requests(api, live, fields, code, status, mentions):
    fields = {k: (live.instance_id if v == "LIVE" else v) for k, v in fields.items()}
    exc = api.error(speech(api, **fields))
    assert (exc.code, exc.status_code) == (code, status), exc.data
    if mentions:
        assert mentions.lower() in exc.data["Message"].lower(), exc.data


def test_text_of_exactly_1024_characters_is_accepted(api):
    call = api.generate_call()
    try:
        assert api.speak(call.instance_id, ("Long text. " * 100)[:1024], enable_interrupt=False)
    finally:
        api.stop(call.instance_id)


@pytest.mark.parametrize("action", ["describe", "update", "stop"])
def test_unknown_instance(api, action):
    request = {
        "describe": lambda: api.describe(UNKNOWN_INSTANCE),
        "update": lambda: api.client.update_aiagent_instance(
            models.UpdateAIAgentInstanceRequest(instance_id=UNKNOWN_INSTANCE, user_data="x")
        ),
        "stop": lambda: api.stop(UNKNOWN_INSTANCE),
    }[action]
    exc = api.error(request)
    assert (exc.code, exc.status_code) == ("InstanceNotFound", 404)


def test_missing_instance_id_on_describe(api):
    exc = api.error(api.client.describe_aiagent_instance, models.DescribeAIAgentInstanceRequest())
    assert (exc.code, exc.status_code) == ("MissingParameter", 400)
    assert "InstanceId" in exc.data["Message"]


def test_unknown_agent(api):
    exc = api.error(api.generate_call, aiagent_id="no-such-agent")
    assert (exc.code, exc.status_code) == ("AgentNotFound", 404)
    exc = api.error(
        api.client.start_aiagent_instance,
        models.StartAIAgentInstanceRequest(
            aiagent_id="no-such-agent",
            runtime_config=models.AIAgentRuntimeConfig(channel_id="c-unknown-agent", agent_user_id="a"),
        ),
    )
    assert (exc.code, exc.status_code) == ("AgentNotFound", 404)


def test_wrong_secret(server, api):
    client = server.sdk_client(access_key_secret="not-the-secret")
    exc = api.error(client.generate_aiagent_call, models.GenerateAIAgentCallRequest(aiagent_id="default"))
    assert (exc.code, exc.status_code) == ("SignatureDoesNotMatch", 400)


def test_wrong_secret_with_v1_signing(server, api):
    client = server.sdk_client(access_key_secret="not-the-secret", signature_algorithm="v2")
    exc = api.error(client.generate_aiagent_call, models.GenerateAIAgentCallRequest(aiagent_id="default"))
    assert exc.code == "SignatureDoesNotMatch"


def test_unknown_access_key_id(server, api):
    client = server.sdk_client(access_key_id="NoSuchKeyId")
    exc = api.error(client.generate_aiagent_call, models.GenerateAIAgentCallRequest(aiagent_id="default"))
    assert (exc.code, exc.status_code) == ("InvalidAccessKeyId.NotFound", 404)


def test_replayed_request(server: HeraldServer, live, http):
    request = server.signed_request("DescribeAIAgentInstance", {"InstanceId": live.instance_id})
    first = http.send(request)
    assert first.status_code == 200, first.text
    assert first.json()["Instance"]["Status"]
    replay = http.send(request)
    body = envelope(replay)
    assert (body["Code"], replay.status_code) == ("SignatureNonceUsed", 400)


def test_stale_date(server: HeraldServer, live, http):
    stale = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(time.time() - 3600))
    response = http.send(
        server.signed_request("DescribeAIAgentInstance", {"InstanceId": live.instance_id}, date=stale)
    )
    body = envelope(response)
    assert (body["Code"], response.status_code) == ("InvalidTimeStamp.Expired", 400)


def test_unknown_action(server, api):
    exc = api.error(server.call, "NoSuchAction", {})
    assert (exc.code, exc.status_code) == ("InvalidApi.NotFound", 404)


def test_malformed_agent_config(server, api, live):
    exc = api.error(
        server.call, "UpdateAIAgentInstance", {"InstanceId": live.instance_id, "AgentConfig": "{not json"}
    )
    assert (exc.code, exc.status_code) == ("InvalidParameter", 400)
    assert "AgentConfig" in exc.data["Message"]
    exc = api.error(server.call, "GenerateAIAgentCall", {"AIAgentId": "default", "AgentConfig": "[1, 2"})
    assert exc.code == "InvalidParameter"
    assert "AgentConfig" in exc.data["Message"]


@pytest.mark.parametrize("page_size", ["abc", "1000", "-1"])
def test_bad_page_size(server, api, page_size):
    exc = api.error(server.call, "ListAIAgentInstance", {"AIAgentId": "default", "PageSize": page_size})
    assert exc.code.startswith("InvalidParameter"), exc.data
    assert exc.status_code == 400


@pytest.mark.parametrize(
    "headers",
    [
        {},
        {"Authorization": "garbage"},
        {"Authorization": "ACS3-HMAC-SHA256 Credential=x", "x-acs-action": "GenerateAIAgentCall"},
    ],
    ids=["unsigned", "garbage-authorization", "incomplete-authorization"],
)
def test_unsigned_or_malformed_auth(server, http, headers):
    response = http.post(f"{server.url}/", params={"AIAgentId": "default"}, headers=headers)
    assert 400 <= response.status_code < 500, response.text
    envelope(response)


def test_server_keeps_serving_after_bad_input(server, api, http):
    assert http.get(f"{server.url}/health").status_code == 200
    call = api.generate_call()
    assert api.describe(call.instance_id).status == "Created"
    api.stop(call.instance_id)
    assert server.running


def test_an_oversized_body_is_refused_before_it_is_read_whole(server: HeraldServer, http):
    body = b"Text=" + b"a" * (2 << 20)
    response = http.post(
        f"{server.url}/", content=body, headers={"content-type": "application/x-www-form-urlencoded"}
    )
    assert response.status_code == 413
    assert envelope(response)["Code"] == "RequestTooLarge"
    assert http.get(f"{server.url}/health").status_code == 200


@pytest.mark.parametrize("method", ["PUT", "DELETE", "PATCH", "OPTIONS"])
def test_a_method_the_api_does_not_take_gets_the_envelope(server: HeraldServer, method: str) -> None:
    response = httpx.request(
        method, f"{server.url}/", params={"Action": "DescribeAIAgentInstance"}, timeout=10
    )
    assert response.status_code == 405
    assert response.json().keys() >= {"RequestId", "HostId", "Code", "Message", "Recommend"}
    assert response.json()["Code"] == "UnsupportedHTTPMethod"
    assert method in response.json()["Message"]
    assert set(response.headers["allow"].replace(" ", "").split(",")) >= {"GET", "POST"}


def test_a_path_that_does_not_exist_gets_the_envelope(server: HeraldServer) -> None:
    response = httpx.post(f"{server.url}/v2/nothing", timeout=10)
    assert response.status_code == 404
    assert response.json()["Code"] == "NotFound"
    assert "/v2/nothing" in response.json()["Message"]
