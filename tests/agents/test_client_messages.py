"""Messages from people in the call: interrupt, switch voice, query state, stop; bad input changes nothing."""

from __future__ import annotations

import json

import pytest
from agent_helpers import messages, play

from herald.agents.client_messages import MAX_MESSAGE_BYTES, ClientMessages
from herald.agents.live import LiveInstance
from herald.agents.manager import NewInstance
from herald.agents.requests import SpeechRequest
from herald.media.messages import InterruptReason, MessageType
from herald.media.room import Participant
from herald.speech.handle import UtteranceState
from herald.testing.world import World


async def joined(world: World) -> tuple[str, LiveInstance, Participant, Participant]:
    call = await world.manager.generate_call(NewInstance(owner="ak", agent_id="default"), expire_s=60)
    live, asker = await world.manager.join(call.record.channel_id, call.user_id, 48_000)
    _, other = await world.manager.join(call.record.channel_id, "other-user", 48_000)
    return call.record.instance_id, live, asker, other


def envelope(msg_type: int, data: dict[str, object] | None = None) -> str:
    return json.dumps({"type": msg_type, "data": data or {}, "seqId": 1, "senderId": "u", "receiverId": ""})


async def test_1101_cuts_what_is_speaking_with_reason_3(world: World) -> None:
    instance_id, live, asker, other = await joined(world)
    handle = await world.manager.speak("ak", instance_id, SpeechRequest("r1", "one two three four five six"))
    await play(world, 10)
    await ClientMessages(world.manager).handle(live, asker, envelope(MessageType.INTERRUPT_SPEAKING))
    assert (await handle.wait()).state is UtteranceState.INTERRUPTED
    for participant in (asker, other):  # everyone hears that the agent was cut, and why
        assert messages(participant, MessageType.SPEAKING_INTERRUPTED) == [
            {"reason": InterruptReason.BY_CLIENT}
        ]


async def test_1119_answers_the_state_to_the_asker_only(world: World) -> None:
    _, live, asker, other = await joined(world)
    before_asker = len(messages(asker, MessageType.AGENT_STATE))
    before_other = len(messages(other, MessageType.AGENT_STATE))
    await ClientMessages(world.manager).handle(live, asker, envelope(MessageType.QUERY_STATE))
    assert messages(asker, MessageType.AGENT_STATE)[before_asker:] == [{"state": 1}]
    assert len(messages(other, MessageType.AGENT_STATE)) == before_other


async def test_1103_switches_the_voice_for_everyone_and_keeps_it(world: World) -> None:
    instance_id, live, asker, other = await joined(world)
    await ClientMessages(world.manager).handle(
        live, asker, envelope(MessageType.SWITCH_VOICE, {"voiceId": "tone-2"})
    )
    for participant in (asker, other):
        assert messages(participant, MessageType.VOICE_CHANGED) == [{"voiceId": "tone-2"}]
    assert live.voice().voice_id == "tone-2"
    record = await world.manager.get("ak", instance_id)
    assert record.agent_config["TtsConfig"]["VoiceId"] == "tone-2"  # as UpdateAIAgentInstance would


@pytest.mark.parametrize(
    ("data", "code"),
    [
        ({"voiceId": "no-such-voice"}, "InvalidParameter"),
        ({}, "InvalidParameter"),
        ({"voiceId": 7}, "InvalidParameter"),
    ],
)
async def test_1103_with_a_bad_voice_tells_the_asker_and_changes_nothing(
    world: World, data: dict[str, object], code: str
) -> None:
    _, live, asker, other = await joined(world)
    await ClientMessages(world.manager).handle(live, asker, envelope(MessageType.SWITCH_VOICE, data))
    errors = messages(asker, MessageType.ERROR)
    assert [e["code"] for e in errors] == [code]
    assert "oice" in str(errors[0]["message"])  # names the voice
    assert messages(other, MessageType.ERROR) == []
    assert messages(asker, MessageType.VOICE_CHANGED) == []
    assert live.voice().voice_id == "tone"


async def test_1102_switches_voice_interruption_for_the_call_and_tells_everyone(
    listening_world: World,
) -> None:
    _, live, asker, other = await joined(listening_world)
    assert live.conversation is not None
    assert live.conversation.voice_interrupt_enabled
    await ClientMessages(listening_world.manager).handle(
        live, asker, envelope(MessageType.ENABLE_VOICE_INTERRUPT, {"enable": False})
    )
    assert not live.conversation.voice_interrupt_enabled
    for participant in (asker, other):
        assert messages(participant, MessageType.VOICE_INTERRUPT_ENABLED) == [{"enable": False}]


@pytest.mark.parametrize("data", [{}, {"enable": "false"}, {"enable": 0}])
async def test_1102_without_a_boolean_is_refused_and_changes_nothing(
    listening_world: World, data: dict[str, object]
) -> None:
    _, live, asker, _ = await joined(listening_world)
    await ClientMessages(listening_world.manager).handle(
        live, asker, envelope(MessageType.ENABLE_VOICE_INTERRUPT, data)
    )
    errors = messages(asker, MessageType.ERROR)
    assert [e["code"] for e in errors] == ["InvalidParameter"]
    assert "data.enable" in str(errors[0]["message"])
    assert live.conversation is not None
    assert live.conversation.voice_interrupt_enabled
    assert messages(asker, MessageType.VOICE_INTERRUPT_ENABLED) == []


async def test_1102_to_an_agent_that_does_not_listen_says_so(world: World) -> None:
    _, live, asker, _ = await joined(world)
    await ClientMessages(world.manager).handle(
        live, asker, envelope(MessageType.ENABLE_VOICE_INTERRUPT, {"enable": True})
    )
    errors = messages(asker, MessageType.ERROR)
    assert [e["code"] for e in errors] == ["IncorrectInstanceStatus.NotListening"]
    assert "[asr]" in str(errors[0]["message"])


async def test_1100_stops_the_instance_as_hung_up_by_the_user(world: World) -> None:
    instance_id, live, asker, _ = await joined(world)
    await ClientMessages(world.manager).handle(live, asker, envelope(MessageType.STOP_AGENT))
    record = await world.manager.get("ak", instance_id)
    assert record.status == "Finished"
    assert record.hangup_role == 1
    assert messages(asker, MessageType.AGENT_WILL_LEAVE)


@pytest.mark.parametrize(
    "raw",
    [
        "not json",
        "[1101]",
        json.dumps({"type": "1101"}),
        json.dumps({"type": True}),
        json.dumps({"data": {}}),
        json.dumps({"type": 1101, "data": [1]}),
        b"\x00binary",
        json.dumps({"type": 1101, "data": {"pad": "x" * MAX_MESSAGE_BYTES}}),
    ],
)
async def test_a_malformed_message_gets_1000_and_changes_nothing(world: World, raw: str | bytes) -> None:
    instance_id, live, asker, _ = await joined(world)
    handle = await world.manager.speak("ak", instance_id, SpeechRequest("r1", "one two three four five six"))
    await play(world, 5)
    await ClientMessages(world.manager).handle(live, asker, raw)
    assert [e["code"] for e in messages(asker, MessageType.ERROR)] == ["InvalidMessage"]
    assert handle.state is UtteranceState.SPEAKING  # not interrupted


async def test_types_not_acted_on_are_ignored_quietly(world: World) -> None:
    _, live, asker, _ = await joined(world)
    for msg_type in (1112, 4242):
        await ClientMessages(world.manager).handle(live, asker, envelope(msg_type, {"text": "hi"}))
    assert messages(asker, MessageType.ERROR) == []
