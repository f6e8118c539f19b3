"""ListAIAgentDialogues through the official SDK: what was said in a session, as it was heard."""

from __future__ import annotations

import asyncio
import json
import re
import secrets
import time
import uuid
from collections.abc import Iterator
from typing import Any

import pytest
from alibabacloud_ice20201109 import models

from herald.testing.audio_client import MSG_AGENT_STATE, MSG_AGENT_SUBTITLE, STATE_LISTENING, AudioRecorder
from herald.testing.server import HeraldServer, KeyPair

pytestmark = pytest.mark.e2e

MSG_SPEECH_OUTCOME = 1900
GREETING = "Welcome, this call is being recorded."
OTHER_KEY = KeyPair("HERALDOTHER" + secrets.token_hex(6).upper(), secrets.token_urlsafe(30))

CONFIG = f"""
[[access_keys]]
id = "{OTHER_KEY.access_key_id}"
secret = "{OTHER_KEY.access_key_secret}"
account = "other"

[agents.greeter.AgentConfig]
Greeting = "{GREETING}"
"""


@pytest.fixture(scope="module")
def server() -> Iterator[HeraldServer]:
    with HeraldServer(check_exit=False, config=CONFIG) as running:
        yield running


def words(text: str) -> list[str]:
    return re.findall(r"[\w']+", text.lower())


def now_ms() -> int:
    return int(time.time() * 1000)


def list_dialogues(api, session_id: str, *, client: Any = None, **fields: Any) -> list[Any]:
    request = models.ListAIAgentDialoguesRequest(
        session_id=session_id, start_time=fields.pop("start_time", 0), end_time=now_ms() + 60_000, **fields
    )
    body = (client or api.client).list_aiagent_dialogues(request).body
    assert body.request_id
    return list(body.dialogues or [])


def dialogues_when(api, session_id: str, count: int, *, timeout_s: float = 10.0) -> list[Any]:
    """The session's dialogues (oldest first) once there are ``count`` of them: they are written as
    utterances end, so a moment after the outcome message."""
    deadline = time.monotonic() + timeout_s
    while True:
        found = list_dialogues(api, session_id, order="ASC", page_size=100)
        if len(found) >= count or time.monotonic() > deadline:
            assert len(found) == count, [d.to_map() for d in found]
            return found
        time.sleep(0.2)


async def wait_dialogues(api, session_id: str, count: int, *, timeout_s: float = 10.0) -> list[Any]:
    return await asyncio.to_thread(dialogues_when, api, session_id, count, timeout_s=timeout_s)


async def say(server: HeraldServer, instance_id: str, text: str, **extra: str) -> str:
    params = {"InstanceId": instance_id, "Text": text, **extra}
    body = await asyncio.to_thread(server.call, "SendAIAgentSpeech", params)
    request_id: str = body["RequestId"]
    return request_id


def extend(dialogue: Any) -> dict[str, Any]:
    parsed = json.loads(dialogue.extend)
    assert isinstance(parsed, dict), dialogue.extend
    return parsed


async def test_pushed_speeches_are_listed_as_heard(server, api):
    session_id = f"session-{uuid.uuid4()}"
    whole = "This first message is said in full."
    long = (
        "This second message is long, and it is cut off after a while by another one. "
        "Its later sentences are never heard by anybody at all, because the urgent message replaces them."
    )
    urgent = "Urgent message."
    call = api.generate_call(session_id=session_id)
    started_ms = now_ms()
    try:
        async with AudioRecorder(server.audio_url(call.channel_id, call.token)) as rec:
            await rec.wait_for_message(MSG_AGENT_STATE, lambda m: m.data.get("state") == STATE_LISTENING)
            whole_id = await say(server, call.instance_id, whole)
            await rec.wait_for_message(
                MSG_SPEECH_OUTCOME, lambda m: m.data["requestId"] == whole_id, timeout_s=30
            )
            mark = rec.mark()
            long_id = await say(server, call.instance_id, long)
            await rec.wait_for_message(MSG_AGENT_SUBTITLE, after=mark, timeout_s=30)
            await rec.wait_for_speech(1.5, after=mark, timeout_s=20)
            urgent_id = await say(server, call.instance_id, urgent)
            await rec.wait_for_message(
                MSG_SPEECH_OUTCOME, lambda m: m.data["requestId"] == urgent_id, timeout_s=30
            )
            outcomes = {m.data["requestId"]: m.data for m in rec.messages(MSG_SPEECH_OUTCOME)}

        dialogues = await wait_dialogues(api, session_id, 3)
        by_id = {extend(d)["RequestId"]: d for d in dialogues}
        assert set(by_id) == {whole_id, long_id, urgent_id}
        for request_id, dialogue in by_id.items():
            assert dialogue.type == "speech", dialogue.to_map()
            assert dialogue.producer == "agent", dialogue.to_map()
            assert dialogue.dialogue_id, dialogue.to_map()
            assert dialogue.round_id, dialogue.to_map()
            assert started_ms - 1000 <= dialogue.time <= now_ms() + 1000, dialogue.to_map()
            assert extend(dialogue)["Outcome"] == outcomes[request_id]["state"], dialogue.to_map()
            assert dialogue.text == outcomes[request_id]["heardText"], dialogue.to_map()

        assert extend(by_id[whole_id])["Outcome"] == "finished"
        assert words(by_id[whole_id].text) == words(whole)
        assert extend(by_id[long_id])["Outcome"] == "interrupted"
        heard = words(by_id[long_id].text)
        assert heard, "the cut speech was heard in part"
        assert heard == words(long)[: len(heard)], by_id[long_id].text
        assert len(heard) < len(words(long)), by_id[long_id].text
        assert words(by_id[urgent_id].text) == words(urgent)
        assert [extend(d)["RequestId"] for d in dialogues] == [whole_id, long_id, urgent_id], "ASC is by time"
    finally:
        await asyncio.to_thread(api.stop, call.instance_id)


async def test_the_greeting_is_listed_as_a_greeting(server, api):
    call = api.generate_call("greeter")  # no SessionId: the instance is its own session
    try:
        async with AudioRecorder(server.audio_url(call.channel_id, call.token)) as rec:
            await rec.wait_for_message(MSG_SPEECH_OUTCOME, timeout_s=30)
        (greeting,) = await wait_dialogues(api, call.instance_id, 1)
        assert greeting.type == "greeting", greeting.to_map()
        assert greeting.producer == "agent", greeting.to_map()
        assert words(greeting.text) == words(GREETING), greeting.to_map()
        assert extend(greeting)["Outcome"] == "finished", greeting.to_map()
    finally:
        await asyncio.to_thread(api.stop, call.instance_id)


@pytest.fixture(scope="module")
def counted(server, api) -> tuple[str, str, list[str]]:
    """A session of four short speeches, said in order with nobody listening: (session, instance, texts)."""
    session_id = f"session-{uuid.uuid4()}"
    texts = ["Number one.", "Number two.", "Number three.", "Number four."]
    call = api.generate_call(session_id=session_id)
    for text in texts:
        api.speak(call.instance_id, text, enable_interrupt=False)
    dialogues_when(api, session_id, len(texts), timeout_s=30)
    api.stop(call.instance_id)
    return session_id, call.instance_id, texts


def test_dialogues_page_and_order(api, counted):
    session_id, _, texts = counted
    ascending = list_dialogues(api, session_id, order="ASC")
    assert [d.text for d in ascending] == texts
    times = [d.time for d in ascending]
    assert times == sorted(times)

    descending = list_dialogues(api, session_id, order="DESC")
    assert [d.text for d in descending] == texts[::-1]
    assert [d.text for d in list_dialogues(api, session_id)] == texts[::-1], "DESC is the default"

    first = list_dialogues(api, session_id, order="ASC", page_size=3, page_number=1)
    second = list_dialogues(api, session_id, order="ASC", page_size=3, page_number=2)
    third = list_dialogues(api, session_id, order="ASC", page_size=3, page_number=3)
    assert [d.text for d in first] == texts[:3]
    assert [d.text for d in second] == texts[3:]
    assert third == []

    later = list_dialogues(api, session_id, order="ASC", start_time=ascending[2].time)
    assert [d.text for d in later] == [d.text for d in ascending if d.time >= ascending[2].time]
    assert list_dialogues(api, f"session-{uuid.uuid4()}") == [], "an unknown session has nothing"


def test_another_account_sees_nothing(server, api, counted):
    session_id, instance_id, _ = counted
    other = server.sdk_client(
        access_key_id=OTHER_KEY.access_key_id, access_key_secret=OTHER_KEY.access_key_secret
    )
    assert list_dialogues(api, session_id, client=other) == []
    assert list_dialogues(api, instance_id, client=other) == []
    exc = api.error(
        other.describe_aiagent_instance, models.DescribeAIAgentInstanceRequest(instance_id=instance_id)
    )
    assert exc.code == "InstanceNotFound", exc.data
    assert len(list_dialogues(api, session_id)) == 4, "the owner still sees them"
