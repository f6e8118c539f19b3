"""What an instance does on its own: greets, ends calls, stops gracefully, times out, records dialogues."""

from __future__ import annotations

import asyncio

from agent_helpers import messages, play

from herald.agents.manager import NewInstance
from herald.agents.requests import SpeechRequest
from herald.media.messages import MessageType
from herald.speech.handle import UtteranceState
from herald.speech.scheduler import ArrivalPolicy
from herald.testing.world import World

SECOND_NS = 1_000_000_000


async def test_the_greeting_is_said_once_when_the_first_user_joins(world: World) -> None:
    call = await world.manager.generate_call(NewInstance(owner="ak", agent_id="support"), expire_s=60)
    _, first = await world.manager.join(call.record.channel_id, call.user_id, 48_000)
    await play(world, 30)
    await world.manager.join(call.record.channel_id, "second-user", 48_000)
    await play(world, 30)
    subtitles = messages(first, MessageType.AGENT_SUBTITLE)
    assert [s["text"] for s in subtitles if s["end"] is False] == ["Hi"]
    records = await world.manager.dialogues.list(
        "ak", call.record.session_id or "", start_ms=0, end_ms=2**53, order="ASC",
        page_number=1, page_size=10, round_limit=None,
    )  # fmt: skip
    assert [(r.type, r.text) for r in records] == [("greeting", "Hi")]


async def test_every_pushed_speech_becomes_a_dialogue_record_with_its_outcome(world: World) -> None:
    record = await world.manager.start(NewInstance(owner="ak", agent_id="default", channel_id="c"))
    first = await world.manager.speak(
        "ak", record.instance_id, SpeechRequest("r1", "one two three four five")
    )
    await play(world, 10)
    second = await world.manager.speak("ak", record.instance_id, SpeechRequest("r2", "six seven"))
    await play(world, 20)
    assert (await first.wait()).state is UtteranceState.INTERRUPTED
    assert (await second.wait()).state is UtteranceState.FINISHED
    await asyncio.sleep(0.05)  # records are written in the background
    records = await world.manager.dialogues.list(
        "ak", record.instance_id, start_ms=0, end_ms=2**53, order="ASC", page_number=1, page_size=10,
        round_limit=None,
    )  # fmt: skip
    by_id = {r.dialogue_id: r for r in records}
    assert by_id["r1"].type == "speech"
    assert by_id["r1"].producer == "agent"
    assert by_id["r1"].extend["Outcome"] == "interrupted"
    assert 0 < by_id["r1"].extend["PlayedMs"] < 500  # type: ignore[operator]
    assert by_id["r1"].text in {"one", "one two", "one two three"}
    assert by_id["r2"].text == "six seven"
    assert by_id["r2"].extend["Outcome"] == "finished"
    # Another key sees nothing of it.
    assert not await world.manager.dialogues.list(
        "other", record.instance_id, start_ms=0, end_ms=2**53, order="ASC", page_number=1, page_size=10,
        round_limit=None,
    )  # fmt: skip


async def test_end_call_after_spoken_stops_the_instance_once_it_has_played(world: World) -> None:
    record = await world.manager.start(NewInstance(owner="ak", agent_id="default", channel_id="c"))
    handle = await world.manager.speak(
        "ak", record.instance_id, SpeechRequest("bye", "goodbye now", end_call_after=True)
    )
    await play(world, 30)
    assert (await handle.wait()).state is UtteranceState.FINISHED
    await asyncio.sleep(0.05)
    done = await world.manager.get("ak", record.instance_id)
    assert done.status == "Finished"
    assert done.hangup_role == 0  # the agent hung up


async def test_an_interrupted_end_call_speech_does_not_end_the_call(world: World) -> None:
    record = await world.manager.start(NewInstance(owner="ak", agent_id="default", channel_id="c"))
    await world.manager.speak(
        "ak", record.instance_id, SpeechRequest("bye", "a b c d e f g", end_call_after=True)
    )
    await play(world, 5)
    await world.manager.speak("ak", record.instance_id, SpeechRequest("wait", "wait"))
    await play(world, 20)
    await asyncio.sleep(0.05)
    assert (await world.manager.get("ak", record.instance_id)).status != "Finished"


async def test_graceful_shutdown_finishes_the_current_utterance_and_drops_the_queue(world: World) -> None:
    record = await world.manager.start(NewInstance(owner="ak", agent_id="graceful", channel_id="c"))
    current = await world.manager.speak("ak", record.instance_id, SpeechRequest("a", "one two three"))
    queued = await world.manager.speak(
        "ak", record.instance_id, SpeechRequest("b", "four", policy=ArrivalPolicy.APPEND)
    )
    await play(world, 3)
    await world.manager.stop("ak", record.instance_id)
    assert (await queued.wait()).state is UtteranceState.DROPPED
    await play(world, 20)
    assert (await current.wait()).state is UtteranceState.FINISHED
    await asyncio.sleep(0.05)
    assert (await world.manager.get("ak", record.instance_id)).status == "Finished"


async def test_without_graceful_shutdown_stop_cuts_at_once(world: World) -> None:
    record = await world.manager.start(NewInstance(owner="ak", agent_id="default", channel_id="c"))
    current = await world.manager.speak("ak", record.instance_id, SpeechRequest("a", "one two three"))
    await play(world, 3)
    await world.manager.stop("ak", record.instance_id)
    assert (await current.wait()).state is UtteranceState.INTERRUPTED
    assert (await world.manager.get("ak", record.instance_id)).status == "Finished"


async def test_timeouts_end_instances_nobody_joins_or_everyone_left(world: World) -> None:
    watch = asyncio.create_task(world.manager.watch(period_s=1.0))
    lonely = await world.manager.start(NewInstance(owner="ak", agent_id="impatient", channel_id="lonely"))
    left = await world.manager.start(NewInstance(owner="ak", agent_id="impatient", channel_id="left"))
    live, participant = await world.manager.join("left", "u", 16_000)
    for _ in range(2):
        await world.clock.advance(SECOND_NS)
    world.manager.leave(live, participant)
    assert (await world.manager.get("ak", lonely.instance_id)).status == "Created"
    for _ in range(3):
        await world.clock.advance(SECOND_NS)
    await asyncio.sleep(0.05)
    gone = await world.manager.get("ak", lonely.instance_id)
    assert gone.status == "Finished"
    assert gone.hangup_role == 2  # UserOnlineTimeout: the system ended it
    user_left = await world.manager.get("ak", left.instance_id)
    assert user_left.status == "Finished"
    assert user_left.hangup_role == 1  # UserOfflineTimeout: the user left
    watch.cancel()


async def test_max_idle_time_ends_a_quiet_instance(world: World) -> None:
    watch = asyncio.create_task(world.manager.watch(period_s=1.0))
    record = await world.manager.start(NewInstance(owner="ak", agent_id="impatient", channel_id="idle"))
    await world.manager.join("idle", "u", 16_000)  # stays in the call, but nothing happens
    for _ in range(9):
        await world.clock.advance(SECOND_NS)
    assert (await world.manager.get("ak", record.instance_id)).status == "Executing"
    for _ in range(3):
        await world.clock.advance(SECOND_NS)
    await asyncio.sleep(0.05)
    assert (await world.manager.get("ak", record.instance_id)).status == "Finished"
    watch.cancel()


async def test_a_voice_change_is_announced_and_used_from_the_next_utterance(world: World) -> None:
    call = await world.manager.generate_call(NewInstance(owner="ak", agent_id="default"), expire_s=60)
    _, participant = await world.manager.join(call.record.channel_id, call.user_id, 48_000)
    await world.manager.update(
        "ak", call.record.instance_id, agent_config={"TtsConfig": {"VoiceId": "tone-2"}},
        template_config=None, user_data=None,
    )  # fmt: skip
    assert messages(participant, MessageType.VOICE_CHANGED) == [{"voiceId": "tone-2"}]
