"""Event callbacks: each event of an instance POSTed to ``AgentConfig.CallbackConfig.Url``, at least once.

A real server (a subprocess) posts to a real local receiver (``herald.testing.receiver``) on 127.0.0.3,
which the server is told to trust (``HERALD_FETCH_ALLOW``) as an operator allowlists an intranet receiver.
Retries are made quick in the server's ``[callbacks]`` table. The receiver's de-duplication is by
``eventId``, as a customer's would be: the contract is at least once.

A whole call (join and greeting, a finished speech, an interrupted one, a failing one, stop) is played
once by a module fixture and each test asserts on its part of what the receiver got. Where a test needs
the delivery state of an event (``none``, ``delivered``, ``failed``), it reads the server's outbox table,
as an operator would.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import json
import signal
import sqlite3
import time
import uuid
from collections import Counter
from collections.abc import Awaitable, Callable, Iterator
from dataclasses import dataclass
from datetime import datetime
from typing import Any, TypeVar

import numpy as np
import pytest
from alibabacloud_tea_openapi.exceptions import ClientException

from herald.testing.audio_client import MSG_AGENT_STATE, MSG_AGENT_SUBTITLE, AudioRecorder, DataMessage
from herald.testing.media_server import MediaServer
from herald.testing.receiver import Attempt, CallbackReceiver
from herald.testing.server import HeraldServer
from herald.testing.transcript import shows, words

pytestmark = pytest.mark.e2e

RECEIVER_HOST = "127.0.0.3"
MEDIA_HOST = "127.0.0.2"
FORBIDDEN_HOST = "127.0.0.4"
"""Loopback like the receiver's address, but not allowlisted: Herald must never post there."""
ALLOW = f"{MEDIA_HOST},{RECEIVER_HOST}"

FIRST_RETRY_S = 0.2
MAX_ATTEMPTS = 4
TIMEOUT_S = 1.0
CALLBACKS = f"""
[callbacks]
first_retry_s = {FIRST_RETRY_S}
max_retry_s = 1.0
max_attempts = {MAX_ATTEMPTS}
timeout_s = {TIMEOUT_S}
"""
TOKEN = "cb-secret-7f3a"
USER_DATA = '{"customer": "c-42", "note": "naïve ✓"}'
ENVELOPE = {
    "eventId",
    "aiAgentId",
    "instanceId",
    "event",
    "code",
    "message",
    "timestamp",
    "data",
    "userData",
    "extendData",
}
MSG_SPEECH_OUTCOME = 1900
WAIT_S = 20.0

SHORT = "Hello there, this is a short one."
LONG = (
    "This is a long speech that will not be allowed to finish, because another one cuts it. "
    "It goes on about the weather, the trains and the coffee in the station for quite a while. "
    "Nobody should hear this third sentence at all."
)
URGENT = "Sorry to interrupt."
GREETING = "Welcome."
MEDIUM = "The callbacks hang, and yet this speech goes on. Every frame of it arrives on time."

T = TypeVar("T")


# -- fixtures ------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def media() -> Iterator[MediaServer]:
    with MediaServer(MEDIA_HOST) as running:
        yield running


@pytest.fixture(scope="module")
def agent_receiver() -> Iterator[CallbackReceiver]:
    """The receiver named in the config file, for the agent ``hooked``."""
    with CallbackReceiver(RECEIVER_HOST) as running:
        yield running


@pytest.fixture(scope="module")
def server(agent_receiver: CallbackReceiver) -> Iterator[HeraldServer]:
    config = f"""{CALLBACKS}
[agents.hooked.AgentConfig.CallbackConfig]
Url = "{agent_receiver.url}"
Token = "agent-token"
Events = ["agent_start", "agent_stop"]
"""
    with HeraldServer(check_exit=False, env={"HERALD_FETCH_ALLOW": ALLOW}, config=config) as running:
        yield running


@pytest.fixture
def receiver() -> Iterator[CallbackReceiver]:
    with CallbackReceiver(RECEIVER_HOST) as running:
        yield running


# -- helpers -------------------------------------------------------------------------------------------


def run_in_own_loop(make: Callable[[], Awaitable[T]]) -> T:
    """Run a coroutine to its end in a loop of its own (module fixtures are synchronous)."""

    async def main() -> T:
        return await make()

    with concurrent.futures.ThreadPoolExecutor(1) as pool:
        return pool.submit(asyncio.run, main()).result()


def callback(url: str, *, token: str | None = TOKEN, events: list[str] | None = None) -> dict[str, Any]:
    config: dict[str, Any] = {"Url": url}
    if token is not None:
        config["Token"] = token
    if events is not None:
        config["Events"] = events
    return config


def generate(
    server: HeraldServer,
    callback_config: dict[str, Any] | None = None,
    *,
    agent_id: str = "default",
    user_data: str | None = USER_DATA,
    **agent_config: Any,
) -> dict[str, Any]:
    """GenerateAIAgentCall (through the SDK's generic call: its models know no ``CallbackConfig``)."""
    params = {"AIAgentId": agent_id}
    if callback_config is not None:
        agent_config["CallbackConfig"] = callback_config
    if agent_config:
        params["AgentConfig"] = json.dumps(agent_config)
    if user_data is not None:
        params["UserData"] = user_data
    body: dict[str, Any] = server.call("GenerateAIAgentCall", params)
    return body


def stop(server: HeraldServer, instance_id: str) -> None:
    server.call("StopAIAgentInstance", {"InstanceId": instance_id})


async def say(server: HeraldServer, instance_id: str, text: str, **extra: str) -> str:
    body = await asyncio.to_thread(
        server.call, "SendAIAgentSpeech", {"InstanceId": instance_id, "Text": text, **extra}
    )
    request_id: str = body["RequestId"]
    return request_id


async def outcome_of(rec: AudioRecorder, request_id: str, timeout_s: float = 40.0) -> DataMessage:
    return await rec.wait_for_message(
        MSG_SPEECH_OUTCOME, lambda m: m.data.get("requestId") == request_id, timeout_s=timeout_s
    )


def of_instance(receiver: CallbackReceiver, instance_id: str) -> list[dict[str, Any]]:
    """The events the receiver accepted for ``instance_id``, one per eventId."""
    return [e for e in receiver.events() if e.get("instanceId") == instance_id]


def names(events: list[dict[str, Any]]) -> Counter[str]:
    return Counter(e["event"] for e in events)


def has_stop(receiver: CallbackReceiver, instance_id: str) -> Callable[[], bool]:
    return lambda: "agent_stop" in names(of_instance(receiver, instance_id))


def parse_time(stamp: str) -> datetime:
    return datetime.fromisoformat(stamp.replace("Z", "+00:00"))


def outbox(server: HeraldServer, instance_id: str) -> list[dict[str, Any]]:
    """The instance's rows of the server's outbox (what an operator finds in the database)."""
    uri = f"file:{server.data_dir / 'herald.db'}?mode=ro"
    with contextlib.closing(sqlite3.connect(uri, uri=True, timeout=10)) as db:
        db.row_factory = sqlite3.Row
        rows = db.execute(
            "SELECT event_id, name, delivery, attempts, last_error, callback_url FROM events "
            "WHERE instance_id = ? ORDER BY seq",
            (instance_id,),
        ).fetchall()
    return [dict(row) for row in rows]


def settled(server: HeraldServer, instance_id: str, count: int) -> bool:
    """Whether the instance's ``count`` events all reached a final delivery state."""
    rows = outbox(server, instance_id)
    return len(rows) == count and all(r["delivery"] in ("delivered", "failed") for r in rows)


def wait_until(predicate: Callable[[], bool], timeout_s: float, what: str) -> None:
    deadline = time.monotonic() + timeout_s
    while not predicate():
        assert time.monotonic() < deadline, f"no {what} within {timeout_s} s"
        time.sleep(0.05)


# -- one whole call ------------------------------------------------------------------------------------


@dataclass
class Lifecycle:
    """What one call did, as its listener saw it, and what the receiver got for it."""

    call: dict[str, Any]
    greeting_id: str
    finished_id: str
    cut_id: str
    urgent_id: str
    failed_id: str
    outcomes: dict[str, dict[str, Any]]
    """The ``1900`` outcome of each request."""
    described: dict[str, Any]
    """``DescribeAIAgentInstance`` after the stop."""
    events: list[dict[str, Any]]
    requests: list[Attempt]
    transcript: str

    def only(self, name: str, **data: Any) -> dict[str, Any]:
        found = [
            e
            for e in self.events
            if e["event"] == name and all(e["data"].get(k) == v for k, v in data.items())
        ]
        assert len(found) == 1, f"{len(found)} {name} events with {data}: {self.summary}"
        return found[0]

    @property
    def summary(self) -> str:
        return json.dumps([(e["event"], e["data"]) for e in self.events], ensure_ascii=False)


@pytest.fixture(scope="module")
def lifecycle(server: HeraldServer, media: MediaServer) -> Iterator[Lifecycle]:
    missing_url = media.url("/no-such-file.wav")  # the media server answers 404
    with CallbackReceiver(RECEIVER_HOST) as receiver:
        call = generate(server, callback(receiver.url), Greeting=GREETING)
        instance_id = call["InstanceId"]

        async def everything() -> Lifecycle:
            async with AudioRecorder(server.audio_url(call["ChannelId"], call["Token"])) as rec:
                greeting = await rec.wait_for_message(MSG_SPEECH_OUTCOME, timeout_s=30)
                finished_id = await say(server, instance_id, SHORT)
                await outcome_of(rec, finished_id)

                mark = rec.mark()
                cut_id = await say(server, instance_id, LONG)
                first = await rec.wait_for_message(MSG_AGENT_SUBTITLE, shows(LONG), after=mark, timeout_s=30)
                await rec.wait_for_speech(1.0, after=first.index, timeout_s=20)
                urgent_id = await say(server, instance_id, URGENT)
                await outcome_of(rec, urgent_id)

                failed_id = await say(server, instance_id, missing_url, Type="AudioUrl")
                await outcome_of(rec, failed_id)
                await asyncio.to_thread(stop, server, instance_id)
                await receiver.wait(has_stop(receiver, instance_id), WAIT_S, "agent_stop")
                greeting_id = greeting.data["requestId"]
                ids = (greeting_id, finished_id, cut_id, urgent_id, failed_id)
                outcomes = {
                    m.data["requestId"]: m.data
                    for m in rec.messages(MSG_SPEECH_OUTCOME)
                    if m.data.get("requestId") in ids
                }
                transcript = rec.describe()
            described = await asyncio.to_thread(
                server.call, "DescribeAIAgentInstance", {"InstanceId": instance_id}
            )
            await asyncio.sleep(0.5)  # anything sent twice would come in now
            return Lifecycle(
                call=call,
                greeting_id=greeting_id,
                finished_id=finished_id,
                cut_id=cut_id,
                urgent_id=urgent_id,
                failed_id=failed_id,
                outcomes=outcomes,
                described=described["Instance"],
                events=of_instance(receiver, instance_id),
                requests=receiver.requests(),
                transcript=transcript,
            )

        try:
            yield run_in_own_loop(everything)
        finally:
            with contextlib.suppress(Exception):
                stop(server, instance_id)


def test_every_event_arrives_once_in_the_callback_envelope(lifecycle: Lifecycle) -> None:
    assert names(lifecycle.events) == {
        "agent_start": 1,
        "session_start": 1,
        "tts_data_received": 4,  # the greeting, the finished speech, the cut one and the one that cut it
        "audio_record": 4,
        "error": 1,  # the audio URL that answered 404
        "agent_stop": 1,
    }, lifecycle.summary
    for event in lifecycle.events:
        assert set(event) == ENVELOPE, event
        assert event["aiAgentId"] == "default", event
        assert event["instanceId"] == lifecycle.call["InstanceId"], event
        assert event["userData"] == USER_DATA, event
        assert event["extendData"] == {}, event
        assert isinstance(event["data"], dict), event
        assert (event["code"], event["message"]) == (0, "") or event["event"] == "error", event
        assert parse_time(event["timestamp"]).utcoffset() is not None, event
    stamps = {e["event"]: parse_time(e["timestamp"]) for e in lifecycle.events}
    assert stamps["agent_start"] <= stamps["session_start"] <= stamps["error"] <= stamps["agent_stop"]


def test_every_attempt_carries_the_token_and_a_unique_event_id(lifecycle: Lifecycle) -> None:
    mine = [r for r in lifecycle.requests if r.payload.get("instanceId") == lifecycle.call["InstanceId"]]
    assert len(mine) == len(lifecycle.events), "an event was posted more than once to a healthy receiver"
    for attempt in mine:
        assert attempt.path == "/callbacks"
        assert attempt.headers["authorization"] == TOKEN, attempt.headers
        assert attempt.headers["x-herald-event-id"] == attempt.event_id, attempt.headers
        assert attempt.headers["content-type"].startswith("application/json"), attempt.headers
        assert attempt.status == 200
    event_ids = [e["eventId"] for e in lifecycle.events]
    assert all(event_ids), event_ids
    assert len(set(event_ids)) == len(event_ids), event_ids


def test_agent_start_and_session_start(lifecycle: Lifecycle) -> None:
    call = lifecycle.call
    start = lifecycle.only("agent_start")
    assert start["data"]["channelId"] == call["ChannelId"], start
    assert start["data"]["agentUserId"] == call["AIAgentUserId"], start
    assert start["data"]["sessionId"] == lifecycle.described["SessionId"], start
    session = lifecycle.only("session_start")
    assert session["data"] == {"channelId": call["ChannelId"], "userId": call["UserId"]}, session


def test_tts_data_received_for_each_speech_that_was_heard(lifecycle: Lifecycle) -> None:
    heard = (lifecycle.greeting_id, lifecycle.finished_id, lifecycle.cut_id, lifecycle.urgent_id)
    for request_id in heard:
        event = lifecycle.only("tts_data_received", requestId=request_id)
        first_audio_ms = event["data"]["firstAudioMs"]
        assert isinstance(first_audio_ms, int), event
        assert 0 <= first_audio_ms < 10_000, event
    assert not [
        e
        for e in lifecycle.events
        if e["data"].get("requestId") == lifecycle.failed_id and e["event"] == "tts_data_received"
    ], "first audio of a speech that never played"


def test_audio_record_of_a_finished_speech(lifecycle: Lifecycle) -> None:
    event = lifecycle.only("audio_record", requestId=lifecycle.finished_id)
    data = event["data"]
    outcome = lifecycle.outcomes[lifecycle.finished_id]
    assert data["role"] == "agent"
    assert data["outcome"] == "finished", data
    assert data["text"] == SHORT
    assert words(data["heardText"]) == words(SHORT), data
    assert data["playedMs"] == outcome["playedMs"] > 500, (data, outcome)
    assert data["reason"] == ""
    # docs/events.md says kind is "text"; the code sends "Text" (SpeechKind's value): compared loosely.
    assert data["kind"].lower() == "text", data
    assert data["dialogueType"] == "speech", data


def test_audio_record_of_the_greeting(lifecycle: Lifecycle) -> None:
    data = lifecycle.only("audio_record", requestId=lifecycle.greeting_id)["data"]
    assert lifecycle.outcomes[lifecycle.greeting_id]["state"] == "finished"
    assert (data["role"], data["outcome"], data["dialogueType"]) == ("agent", "finished", "greeting"), data
    assert data["text"] == GREETING
    assert words(data["heardText"]) == words(GREETING), data


def test_audio_record_of_an_interrupted_speech(lifecycle: Lifecycle) -> None:
    data = lifecycle.only("audio_record", requestId=lifecycle.cut_id)["data"]
    outcome = lifecycle.outcomes[lifecycle.cut_id]
    assert data["outcome"] == "interrupted", (data, lifecycle.transcript)
    assert data["role"] == "agent"
    assert data["text"] == LONG
    assert data["playedMs"] > 0, data
    assert data["playedMs"] == outcome["playedMs"], (data, outcome)
    heard = words(data["heardText"])
    assert heard, f"nothing counted as heard: {data}"
    assert heard == words(LONG)[: len(heard)], f"{data['heardText']!r} is not a prefix of the text"
    assert len(heard) < len(words(LONG)), data
    assert data["heardText"] == outcome["heardText"], (data, outcome)
    urgent = lifecycle.only("audio_record", requestId=lifecycle.urgent_id)["data"]
    assert urgent["outcome"] == "finished", urgent


def test_error_for_a_speech_that_failed(lifecycle: Lifecycle) -> None:
    event = lifecycle.only("error")
    outcome = lifecycle.outcomes[lifecycle.failed_id]
    assert outcome["state"] == "failed", outcome
    assert event["code"] == 1, event
    assert event["message"] == outcome["reason"], (event, outcome)
    assert "404" in event["message"], event
    assert event["data"]["requestId"] == lifecycle.failed_id, event
    assert not [
        e
        for e in lifecycle.events
        if e["event"] == "audio_record" and e["data"]["requestId"] == lifecycle.failed_id
    ], "an audio record of nothing played"


def test_agent_stop_with_the_hangup_role(lifecycle: Lifecycle) -> None:
    data = lifecycle.only("agent_stop")["data"]
    call_info = lifecycle.described["CallInfo"]
    assert data["hangupRole"] == call_info["HangupRole"], (data, call_info)
    assert data["reason"], data
    assert isinstance(data["callDurationS"], int), data
    assert abs(data["callDurationS"] - call_info["CallDuration"]) <= 1, (data, call_info)
    assert data["callDurationS"] >= 3, data  # three speeches were heard


# -- which events, and where ---------------------------------------------------------------------------


async def test_only_the_named_events_are_posted(server: HeraldServer, media: MediaServer, receiver) -> None:
    """StartAIAgentInstance with ``Events``: a speech (tts_data_received, audio_record) and a failing one
    (error) happen, but only the three named events are posted."""
    channel_id = f"cb-{uuid.uuid4().hex[:12]}"
    config = {"CallbackConfig": callback(receiver.url, events=["agent_start", "audio_record", "agent_stop"])}
    started = await asyncio.to_thread(
        server.call,
        "StartAIAgentInstance",
        {
            "AIAgentId": "default",
            "RuntimeConfig": json.dumps({"ChannelId": channel_id}),
            "AgentConfig": json.dumps(config),
        },
    )
    instance_id = started["InstanceId"]
    await say(server, instance_id, SHORT)
    await receiver.wait(
        lambda: "audio_record" in names(of_instance(receiver, instance_id)), WAIT_S, "audio_record"
    )
    await say(server, instance_id, media.url("/missing.wav"), Type="AudioUrl")
    await asyncio.to_thread(
        wait_until, lambda: "error" in {r["name"] for r in outbox(server, instance_id)}, WAIT_S, "error"
    )
    await asyncio.to_thread(stop, server, instance_id)
    await receiver.wait(has_stop(receiver, instance_id), WAIT_S, "agent_stop")
    await asyncio.sleep(0.5)  # anything else would have been written before agent_stop, and sent by now

    events = of_instance(receiver, instance_id)
    assert names(events) == {"agent_start": 1, "audio_record": 1, "agent_stop": 1}, receiver.describe()
    assert {e["userData"] for e in events} == {""}, "no UserData was given"
    rows = outbox(server, instance_id)
    assert {r["name"] for r in rows} >= {"tts_data_received", "error"}, rows  # they did happen
    assert {r["delivery"] for r in rows if r["name"] in ("tts_data_received", "error")} == {"none"}, rows


async def test_a_callback_set_by_update_applies_from_then_on(server: HeraldServer, receiver) -> None:
    call = await asyncio.to_thread(generate, server, None, user_data="before")
    instance_id = call["InstanceId"]
    await asyncio.to_thread(
        server.call,
        "UpdateAIAgentInstance",
        {
            "InstanceId": instance_id,
            "AgentConfig": json.dumps({"CallbackConfig": callback(receiver.url, token="updated-token")}),
            "UserData": "after",
        },
    )
    request_id = await say(server, instance_id, SHORT)
    await receiver.wait(
        lambda: "audio_record" in names(of_instance(receiver, instance_id)), WAIT_S, "audio_record"
    )
    await asyncio.to_thread(stop, server, instance_id)
    await receiver.wait(has_stop(receiver, instance_id), WAIT_S, "agent_stop")

    events = of_instance(receiver, instance_id)
    assert names(events) == {"tts_data_received": 1, "audio_record": 1, "agent_stop": 1}, receiver.describe()
    assert {e["userData"] for e in events} == {"after"}
    assert [e["data"]["requestId"] for e in events if e["event"] == "audio_record"] == [request_id]
    assert {r.headers["authorization"] for r in receiver.requests()} == {"updated-token"}


def test_a_per_agent_callback_from_the_config_file(server: HeraldServer, agent_receiver) -> None:
    call = generate(server, agent_id="hooked")
    instance_id = call["InstanceId"]
    agent_receiver.wait_for(
        lambda: "agent_start" in names(of_instance(agent_receiver, instance_id)), WAIT_S, "agent_start"
    )
    stop(server, instance_id)
    agent_receiver.wait_for(has_stop(agent_receiver, instance_id), WAIT_S, "agent_stop")

    events = of_instance(agent_receiver, instance_id)
    assert names(events) == {"agent_start": 1, "agent_stop": 1}, agent_receiver.describe()
    assert {e["aiAgentId"] for e in events} == {"hooked"}
    assert {e["userData"] for e in events} == {USER_DATA}
    mine = [r for r in agent_receiver.requests() if r.payload.get("instanceId") == instance_id]
    assert {r.headers["authorization"] for r in mine} == {"agent-token"}


def test_an_instance_callback_replaces_the_agents(server: HeraldServer, agent_receiver, receiver) -> None:
    call = generate(server, callback(receiver.url, token=None, events=["agent_start"]), agent_id="hooked")
    instance_id = call["InstanceId"]
    stop(server, instance_id)
    receiver.wait_for(lambda: bool(of_instance(receiver, instance_id)), WAIT_S, "agent_start")
    time.sleep(0.5)  # an agent_stop would come now

    assert names(of_instance(receiver, instance_id)) == {"agent_start": 1}, receiver.describe()
    assert of_instance(agent_receiver, instance_id) == [], "the agent's receiver got the instance's events"


def test_an_instance_callback_url_does_not_get_the_agents_token(server: HeraldServer, receiver) -> None:
    call = generate(server, callback(receiver.url, token=None), agent_id="hooked")
    stop(server, call["InstanceId"])
    receiver.wait_for(has_stop(receiver, call["InstanceId"]), WAIT_S, "agent_stop")
    tokens = {r.headers.get("authorization") for r in receiver.requests()}
    assert "agent-token" not in tokens, "the config file's callback token went to a URL the caller chose"


# -- delivery: retries, restarts, slow receivers -------------------------------------------------------


def test_a_failing_receiver_gets_each_event_once_after_retries(server: HeraldServer, receiver) -> None:
    receiver.fail_first(2)
    call = generate(server, callback(receiver.url))
    instance_id = call["InstanceId"]
    receiver.wait_for(
        lambda: "agent_start" in names(of_instance(receiver, instance_id)), WAIT_S, "agent_start"
    )
    stop(server, instance_id)
    receiver.wait_for(has_stop(receiver, instance_id), WAIT_S, "agent_stop")
    time.sleep(FIRST_RETRY_S * 4)  # a fourth attempt, if one were made, would come by now

    events = of_instance(receiver, instance_id)
    assert names(events) == {"agent_start": 1, "agent_stop": 1}, receiver.describe()
    for event in events:
        attempts = receiver.attempts(event["eventId"])
        assert [a.status for a in attempts] == [500, 500, 200], receiver.describe()
        assert {a.headers["x-herald-event-id"] for a in attempts} == {event["eventId"]}
        assert len({a.body for a in attempts}) == 1, "the retries did not send the same body"
        first_gap_s = attempts[1].received_s - attempts[0].received_s
        second_gap_s = attempts[2].received_s - attempts[1].received_s
        assert first_gap_s >= FIRST_RETRY_S * 0.9, receiver.describe()
        assert second_gap_s >= FIRST_RETRY_S * 2 * 0.9, receiver.describe()
        assert second_gap_s > first_gap_s, receiver.describe()


def test_a_restart_between_event_and_delivery_loses_nothing() -> None:
    with (
        CallbackReceiver(RECEIVER_HOST) as receiver,
        HeraldServer(
            env={"HERALD_FETCH_ALLOW": ALLOW},
            config=(
                "[callbacks]\nfirst_retry_s = 0.2\nmax_retry_s = 0.5\nmax_attempts = 1000\n"
                "timeout_s = 60\n"  # a lease outlasting WAIT_S: only a handed-back lease is retried in time
            ),
        ) as server,
    ):
        receiver.refuse()
        call = generate(server, callback(receiver.url))
        instance_id = call["InstanceId"]

        async def speak() -> str:
            async with AudioRecorder(server.audio_url(call["ChannelId"], call["Token"])) as rec:
                await rec.wait_for_message(MSG_AGENT_STATE, timeout_s=10)
                request_id = await say(server, instance_id, SHORT)
                await outcome_of(rec, request_id)
            return request_id

        request_id = asyncio.run(speak())
        time.sleep(0.5)  # the events were written and their first attempts refused
        server.stop()  # SIGTERM: the instance ends (agent_stop, hangupRole 2) with nothing delivered
        assert receiver.requests() == []
        receiver.listen()
        server.start()
        expected = {
            "agent_start": 1,
            "session_start": 1,
            "tts_data_received": 1,
            "audio_record": 1,
            "agent_stop": 1,
        }
        # An attempt cut by the SIGTERM hands its lease back: every event comes soon after the restart.
        receiver.wait_for(
            lambda: set(names(of_instance(receiver, instance_id))) == set(expected), WAIT_S, "every event"
        )
        time.sleep(0.5)  # a duplicate, if one were sent, would come by now

        events = of_instance(receiver, instance_id)
        assert names(events) == expected, receiver.describe()
        record = next(e for e in events if e["event"] == "audio_record")
        assert record["data"]["requestId"] == request_id
        assert record["data"]["outcome"] == "finished"
        stopped = next(e for e in events if e["event"] == "agent_stop")
        assert stopped["data"]["hangupRole"] == 2, stopped  # the system: the server shut down
        assert all(a.headers["authorization"] == TOKEN for a in receiver.requests())


def test_attempts_in_flight_at_shutdown_are_retried_at_once_after_the_restart() -> None:
    with (
        CallbackReceiver(RECEIVER_HOST) as receiver,
        HeraldServer(
            env={"HERALD_FETCH_ALLOW": ALLOW},
            # A lease outlasting WAIT_S: only a lease handed back at shutdown is retried in time.
            config="[callbacks]\ntimeout_s = 60\n",
        ) as server,
    ):
        receiver.hang(30.0)  # agent_start's attempt is still waiting for an answer at the SIGTERM
        call = generate(server, callback(receiver.url))
        instance_id = call["InstanceId"]
        receiver.wait_for(lambda: bool(receiver.requests()), WAIT_S, "agent_start's first attempt")
        server.stop()
        assert of_instance(receiver, instance_id) == [], receiver.describe()
        receiver.hang(0)
        server.start()
        receiver.wait_for(
            lambda: set(names(of_instance(receiver, instance_id))) == {"agent_start", "agent_stop"},
            WAIT_S,
            "agent_start and agent_stop",
        )
        assert names(of_instance(receiver, instance_id)) == {"agent_start": 1, "agent_stop": 1}


async def test_a_hanging_receiver_does_not_delay_the_audio(server: HeraldServer, receiver) -> None:
    receiver.hang(TIMEOUT_S * 5)  # every attempt times out on Herald's side
    call = await asyncio.to_thread(generate, server, callback(receiver.url))
    instance_id = call["InstanceId"]
    try:
        async with AudioRecorder(server.audio_url(call["ChannelId"], call["Token"])) as rec:
            await rec.wait_for_message(MSG_AGENT_STATE, timeout_s=10)
            mark = rec.mark()
            request_id = await say(server, instance_id, MEDIUM)
            outcome = await outcome_of(rec, request_id)
            frames = rec.frames(after=mark, before=outcome.index)
            transcript = rec.describe(after=mark)
        assert outcome.data["state"] == "finished", transcript
        assert words(outcome.data["heardText"]) == words(MEDIUM), outcome.data
        arrivals = np.array([f.received_s for f in frames])
        longest_gap_s = float(np.max(np.diff(arrivals)))
        assert longest_gap_s <= 0.1, f"a gap of {longest_gap_s * 1000:.0f} ms between frames"
        spoken_s = arrivals[-1] - arrivals[0]
        assert len(frames) >= spoken_s / 0.020 - 5, f"{len(frames)} frames in {spoken_s:.2f} s"
        # The receiver was hanging while the speech played: the callbacks were in flight meanwhile.
        during = [r for r in receiver.requests() if arrivals[0] <= r.received_s <= arrivals[-1]]
        assert during, receiver.describe()
        assert all(r.status is None for r in receiver.requests()), "the receiver answered"
    finally:
        await asyncio.to_thread(stop, server, instance_id)


def test_a_hanging_receiver_does_not_delay_another_instances_callbacks(
    server: HeraldServer, receiver
) -> None:
    with CallbackReceiver(RECEIVER_HOST) as hanging:
        hanging.hang(TIMEOUT_S * 5)
        stuck = generate(server, callback(hanging.url))
        try:
            hanging.wait_for(lambda: len(hanging.requests()) >= 1, WAIT_S, "a hanging attempt")
            asked = time.monotonic()
            call = generate(server, callback(receiver.url))
            receiver.wait_for(lambda: bool(of_instance(receiver, call["InstanceId"])), WAIT_S, "agent_start")
            latency_s = time.monotonic() - asked
            stop(server, call["InstanceId"])
        finally:
            stop(server, stuck["InstanceId"])
    # A healthy receiver gets an event in a few tens of milliseconds; the hanging one's timeout is 1 s.
    assert latency_s < TIMEOUT_S / 2, f"agent_start took {latency_s:.2f} s to reach a healthy receiver"


async def test_a_speech_cut_by_stop_still_has_its_audio_record(server: HeraldServer, receiver) -> None:
    call = await asyncio.to_thread(generate, server, callback(receiver.url))
    instance_id = call["InstanceId"]
    async with AudioRecorder(server.audio_url(call["ChannelId"], call["Token"])) as rec:
        await rec.wait_for_message(MSG_AGENT_STATE, timeout_s=10)
        mark = rec.mark()
        request_id = await say(server, instance_id, LONG)
        await rec.wait_for_speech(1.0, after=mark, timeout_s=20)
        await asyncio.to_thread(stop, server, instance_id)
        outcome = await outcome_of(rec, request_id)
    assert outcome.data["state"] == "interrupted", outcome.data  # what the listener was told
    await receiver.wait(has_stop(receiver, instance_id), WAIT_S, "agent_stop")

    def recorded() -> bool:
        return any(e["event"] == "audio_record" for e in of_instance(receiver, instance_id))

    await receiver.wait(recorded, 3.0, "audio_record of the speech cut by the stop")
    data = next(e for e in of_instance(receiver, instance_id) if e["event"] == "audio_record")["data"]
    assert (data["requestId"], data["outcome"]) == (request_id, "interrupted"), data
    assert data["playedMs"] == outcome.data["playedMs"], (data, outcome.data)


@dataclass
class Crash:
    """An instance whose server was killed (SIGKILL) while its receiver refused, then started again."""

    instance_id: str
    described: dict[str, Any]
    events: list[dict[str, Any]]
    transcript: str


@pytest.fixture(scope="module")
def crash() -> Iterator[Crash]:
    with (
        CallbackReceiver(RECEIVER_HOST) as receiver,
        HeraldServer(
            check_exit=False,
            env={"HERALD_FETCH_ALLOW": ALLOW},
            config=(
                "[callbacks]\nfirst_retry_s = 0.2\nmax_retry_s = 0.5\nmax_attempts = 1000\n"
                "timeout_s = 60\n"  # a lease outlasting WAIT_S: only a handed-back lease is retried in time
            ),
        ) as server,
    ):
        receiver.refuse()
        instance_id = generate(server, callback(receiver.url))["InstanceId"]
        time.sleep(0.5)  # agent_start is in the outbox, its first attempts refused
        server.stop(sig=signal.SIGKILL, check=False)  # nothing runs at shutdown
        receiver.listen()
        server.start()
        receiver.wait_for(lambda: bool(of_instance(receiver, instance_id)), WAIT_S, "agent_start")
        time.sleep(1.0)  # an agent_stop written at the restart would be sent with it
        described = server.call("DescribeAIAgentInstance", {"InstanceId": instance_id})["Instance"]
        yield Crash(instance_id, described, of_instance(receiver, instance_id), receiver.describe())


def test_events_written_before_a_crash_are_delivered_after_it(crash: Crash) -> None:
    assert [e["event"] for e in crash.events if e["event"] != "agent_stop"] == ["agent_start"], (
        crash.transcript
    )
    assert crash.described["Status"] == "Finished"
    assert crash.described["CallInfo"]["HangupRole"] == 2


def test_an_instance_ended_by_a_crash_reports_its_agent_stop(crash: Crash) -> None:
    stops = [e for e in crash.events if e["event"] == "agent_stop"]
    assert len(stops) == 1, crash.transcript
    assert stops[0]["data"]["hangupRole"] == 2, stops


@pytest.mark.parametrize("token", ["naïve-tøken", "a\r\nX-Injected: 1"])
def test_a_token_that_cannot_be_sent_is_refused_or_sent(server: HeraldServer, receiver, token: str) -> None:
    error: ClientException | None = None
    try:
        call = generate(server, callback(receiver.url, token=token))
    except ClientException as exc:
        error = exc
    if error is not None:
        assert error.code == "InvalidParameter", error.data
        assert "AgentConfig.CallbackConfig.Token" in error.data["Message"], error.data
        return
    instance_id = call["InstanceId"]
    stop(server, instance_id)
    wait_until(lambda: settled(server, instance_id, 2), WAIT_S, "final delivery state")
    rows = outbox(server, instance_id)
    assert [r["delivery"] for r in rows] == ["delivered", "delivered"], rows
    assert all("x-injected" not in r.headers for r in receiver.requests()), "a header was injected"


# -- refused configurations and addresses -------------------------------------------------------------


@pytest.mark.parametrize(
    ("config", "parameter"),
    [
        ({"Url": "ftp://x"}, "AgentConfig.CallbackConfig.Url"),
        ({"Url": "not a url"}, "AgentConfig.CallbackConfig.Url"),
        ({"Url": "http://user:secret@example.com/hook"}, "AgentConfig.CallbackConfig.Url"),
        ({"Url": ""}, "AgentConfig.CallbackConfig.Url"),
        ({"Token": "t"}, "AgentConfig.CallbackConfig.Url"),
        (
            {"Url": "https://example.com/hook", "Events": ["agent_start", "agent_started"]},
            "AgentConfig.CallbackConfig.Events",
        ),
    ],
)
def test_an_invalid_callback_config_is_refused(server: HeraldServer, config, parameter) -> None:
    error = refused(lambda: generate(server, config))
    assert parameter in error.data["Message"], error.data


def test_an_invalid_callback_config_is_refused_by_update(server: HeraldServer, receiver) -> None:
    call = generate(server, callback(receiver.url))
    instance_id = call["InstanceId"]
    try:
        for config, parameter in (
            ({"Url": "ftp://x"}, "AgentConfig.CallbackConfig.Url"),
            ({"Events": ["nonsense"]}, "AgentConfig.CallbackConfig.Events"),
        ):
            params = {"InstanceId": instance_id, "AgentConfig": json.dumps({"CallbackConfig": config})}
            error = refused(lambda params=params: server.call("UpdateAIAgentInstance", params))
            assert parameter in error.data["Message"], error.data
        described = server.call("DescribeAIAgentInstance", {"InstanceId": instance_id})["Instance"]
        shown = {**callback(receiver.url), "Token": "******"}  # the token is write-only: shown masked
        assert described["AgentConfig"]["CallbackConfig"] == shown, "a refused update stuck"
    finally:
        stop(server, instance_id)
    receiver.wait_for(has_stop(receiver, instance_id), WAIT_S, "agent_stop")  # still the first callback


@pytest.mark.parametrize(
    ("host", "why"),
    [("169.254.169.254", "metadata"), (FORBIDDEN_HOST, "loopback")],
)
def test_a_forbidden_address_is_never_posted_to_and_its_events_fail(
    server: HeraldServer, host: str, why: str
) -> None:
    """Accepted when configured (the name could be anything), refused at each attempt: the events end
    ``failed`` after ``max_attempts``, with the reason, and nothing reaches the address."""
    with CallbackReceiver(FORBIDDEN_HOST) as forbidden:
        url = forbidden.url if host == FORBIDDEN_HOST else f"http://{host}/hook"
        call = generate(server, callback(url))
        instance_id = call["InstanceId"]
        stop(server, instance_id)

        wait_until(lambda: settled(server, instance_id, 2), WAIT_S, "final delivery state")
        rows = outbox(server, instance_id)
        assert [r["name"] for r in rows] == ["agent_start", "agent_stop"], rows
        for row in rows:
            assert row["delivery"] == "failed", row
            assert row["attempts"] == MAX_ATTEMPTS, row
            assert why in row["last_error"], row
            logged = [
                line
                for line in server.logs().splitlines()
                if row["event_id"] in line and f"failed after {MAX_ATTEMPTS} attempts" in line
            ]
            assert len(logged) == 1, "the operator was not told"
        assert forbidden.requests() == []


def refused(fn: Callable[[], object]) -> Any:
    """Call ``fn`` expecting the SDK's ``InvalidParameter`` (HTTP 400); the error."""
    with pytest.raises(ClientException) as caught:
        fn()
    error = caught.value
    assert (error.code, error.status_code) == ("InvalidParameter", 400), error.data
    return error
