"""The instance manager: lifecycle, ownership, channel rules and restart recovery, on a virtual clock."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import pytest
from agent_helpers import AGENTS

from herald.agents.manager import NewInstance
from herald.agents.requests import SpeechRequest
from herald.agents.state import HangupRole
from herald.errors import (
    AgentNotFound,
    ChannelNotFound,
    IncorrectInstanceStatus,
    InstanceNotFound,
    InvalidParameter,
)
from herald.speech.scheduler import ArrivalPolicy
from herald.testing.world import World


async def test_a_generated_call_goes_created_executing_finished(world: World) -> None:
    call = await world.manager.generate_call(NewInstance(owner="ak", agent_id="support"), expire_s=60)
    record = call.record
    assert record.status == "Created"
    assert record.agent_config == {"TtsConfig": {"SpeechRate": 1.2}, "Greeting": "Hi"}
    grant = world.manager._tokens.verify(call.token, channel_id=record.channel_id, now=world.clock.now())
    assert grant.user_id == call.user_id

    await world.clock.advance(5 * 10**9)
    await world.manager.join(record.channel_id, call.user_id, 16_000)
    joined = await world.manager.get("ak", record.instance_id)
    assert joined.status == "Executing"
    assert joined.call_start_at == world.clock.now()

    await world.clock.advance(7 * 10**9)
    await world.manager.stop("ak", record.instance_id)
    done = await world.manager.get("ak", record.instance_id)
    assert done.status == "Finished"
    assert done.hangup_role == HangupRole.AGENT
    assert done.call_end_at is not None
    assert (done.call_end_at - done.call_start_at).total_seconds() == pytest.approx(7, abs=0.01)  # type: ignore[operator]
    with pytest.raises(IncorrectInstanceStatus):
        await world.manager.speak(
            "ak", record.instance_id, SpeechRequest("r", "hi", policy=ArrivalPolicy.APPEND)
        )
    with pytest.raises(ChannelNotFound):
        await world.manager.join(record.channel_id, call.user_id, 16_000)


async def test_another_keys_instances_are_invisible(world: World) -> None:
    call = await world.manager.generate_call(NewInstance(owner="ak", agent_id="default"), expire_s=60)
    with pytest.raises(InstanceNotFound):
        await world.manager.get("someone-else", call.record.instance_id)
    with pytest.raises(InstanceNotFound):
        await world.manager.stop("someone-else", call.record.instance_id)
    assert (
        await world.manager.list_instances(
            "someone-else", "default", start=None, end=None, page_number=1, page_size=10
        )
        == []
    )


async def test_one_live_agent_per_channel_and_unknown_agents_refused(world: World) -> None:
    await world.manager.start(NewInstance(owner="ak", agent_id="default", channel_id="room-1"))
    with pytest.raises(InvalidParameter) as caught:
        await world.manager.start(NewInstance(owner="ak", agent_id="default", channel_id="room-1"))
    assert caught.value.parameter == "RuntimeConfig.ChannelId"
    with pytest.raises(AgentNotFound):
        await world.manager.start(NewInstance(owner="ak", agent_id="ghost", channel_id="room-2"))


async def test_update_merges_validates_and_keeps_the_old_config_on_error(world: World) -> None:
    record = await world.manager.start(NewInstance(owner="ak", agent_id="support", channel_id="c"))
    await world.manager.update(
        "ak", record.instance_id, agent_config={"TtsConfig": {"VoiceId": "tone-2"}}, template_config=None,
        user_data="{\"crm\": 42}",
    )  # fmt: skip
    updated = await world.manager.get("ak", record.instance_id)
    assert updated.agent_config["TtsConfig"] == {"SpeechRate": 1.2, "VoiceId": "tone-2"}
    assert updated.user_data == '{"crm": 42}'
    with pytest.raises(InvalidParameter):
        await world.manager.update(
            "ak", record.instance_id, agent_config={"Volume": 999}, template_config=None, user_data=None
        )
    assert (await world.manager.get("ak", record.instance_id)).agent_config == updated.agent_config


@pytest.mark.parametrize("language", ["fr", "fr-FR", "zh_CN"])
async def test_a_language_the_recogniser_does_not_understand_is_refused_up_front(
    listening_world: World, language: str
) -> None:
    """Not an error on every utterance later: the start, the call and the update are refused, naming it."""
    manager = listening_world.manager
    asr: dict[str, Any] = {"AsrConfig": {"AsrLanguageId": language}}
    for create in (
        lambda: manager.start(NewInstance("ak", "default", agent_config=asr, channel_id="c1")),
        lambda: manager.generate_call(NewInstance("ak", "default", agent_config=asr), expire_s=60),
    ):
        with pytest.raises(InvalidParameter) as caught:
            await create()
        assert caught.value.parameter == "AgentConfig.AsrConfig.AsrLanguageId"
        assert language in caught.value.message
        assert "en only" in caught.value.message
    assert listening_world.manager.live_count == 0
    record = await manager.start(NewInstance("ak", "default", channel_id="c2"))
    with pytest.raises(InvalidParameter):
        await listening_world.manager.update(
            "ak", record.instance_id, agent_config=asr, template_config=None, user_data=None
        )
    assert "AsrConfig" not in (await listening_world.manager.get("ak", record.instance_id)).agent_config


@pytest.mark.parametrize(
    "asr",
    [
        {"AsrLanguageId": "en-US"},
        {"AsrLanguageId": "EN"},
        {"AsrLanguageId": "fr", "Url": "https://asr.example.com/v1", "Model": "whisper-1"},
    ],
)
async def test_english_or_an_agents_own_recogniser_takes_the_language(
    listening_world: World, asr: dict[str, str]
) -> None:
    record = await listening_world.manager.start(
        NewInstance("ak", "default", agent_config={"AsrConfig": asr}, channel_id="c")
    )
    assert record.agent_config["AsrConfig"]["AsrLanguageId"] == asr["AsrLanguageId"]


async def test_live_instances_speak_into_their_room_on_each_tick(world: World) -> None:
    call = await world.manager.generate_call(NewInstance(owner="ak", agent_id="default"), expire_s=60)
    live, participant = await world.manager.join(call.record.channel_id, call.user_id, 48_000)
    handle = await world.manager.speak("ak", call.record.instance_id, SpeechRequest("r1", "one two"))
    loud = 0
    for _ in range(60):
        await asyncio.sleep(0.005)  # synthesis runs on a real worker thread (the tone engine is instant)
        world.ticker.tick_all()
        while participant._items:
            item = await participant.get()
            if isinstance(item, bytes) and max(item) > 0:
                loud += 1
    # "one two" is two 100 ms tone words: ten frames of sound, then silence.
    assert (await handle.wait()).state.value == "finished"
    assert loud == 10
    assert live.instance_id == call.record.instance_id


async def test_restart_finishes_what_was_live_and_keeps_it_listed(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'h.db'}"
    first = await World(url, AGENTS).open()
    record = await first.manager.start(NewInstance(owner="ak", agent_id="default", channel_id="c"))
    first.synth.close()
    await first.engine.dispose()  # the process dies: nothing is stopped cleanly

    second = World(url, AGENTS)
    assert await second.manager.recover() == 1
    recovered = await second.manager.get("ak", record.instance_id)
    assert recovered.status == "Finished"
    assert recovered.hangup_role == HangupRole.SYSTEM
    assert recovered.call_end_at is not None
    listed = await second.manager.list_instances(
        "ak", "default", start=None, end=None, page_number=1, page_size=10
    )
    assert [r.instance_id for r in listed] == [record.instance_id]
    await second.close()


async def test_a_burst_of_joins_does_not_trip_over_the_database_lock(world: World) -> None:
    calls = [
        await world.manager.generate_call(NewInstance(owner="ak", agent_id="default"), expire_s=60)
        for _ in range(60)
    ]
    await asyncio.gather(*(world.manager.join(c.record.channel_id, c.user_id, 16_000) for c in calls))
    statuses = {(await world.manager.get("ak", c.record.instance_id)).status for c in calls}
    assert statuses == {"Executing"}


async def test_starts_racing_for_one_channel_make_one_instance(world: World) -> None:
    # The database write is where a start waits: every racer reaches it before the first is live.
    starts = [
        world.manager.start(NewInstance(owner="ak", agent_id="default", channel_id="ch-race"))
        for _ in range(4)
    ]
    results = await asyncio.gather(*starts, return_exceptions=True)
    started = [r for r in results if not isinstance(r, BaseException)]
    refused = [r for r in results if isinstance(r, InvalidParameter)]
    assert len(started) == 1
    assert len(refused) == 3
    assert all("RuntimeConfig.ChannelId" in str(r) for r in refused)
    assert world.manager.live_in_channel("ch-race").instance_id == started[0].instance_id
