"""A real conversation end to end: a WebSocket client speaks (Piper's voice), the server hears it (Silero VAD,
PocketSphinx), asks a scripted OpenAI-compatible LLM and answers aloud; barge-in, protected speech,
``SendAIAgentText``, a failing LLM, ``AddToHistory``, ``InterruptWords`` and ``UserIdle``.

One server (with ``[llm]`` pointing at one ``ScriptedLlm``) serves the whole module; each test has its own
call, takes the LLM's requests from its own index on and scripts its own replies. The client's microphone
sends audio all the time (``Microphone``): silence, and the clips the test makes it say.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Callable
from typing import Any

import pytest
from alibabacloud_ice20201109 import models
from alibabacloud_tea_openapi.exceptions import ClientException
from talk_helpers import ANSWER, MSG_SPEECH_OUTCOME, Talk, assistant, talk_over_websocket, user

from herald.conversation.history import INTERRUPTED_MARK
from herald.media.resample import resample_once
from herald.speech.piper_engine import PiperEngine
from herald.speech.tts import VoiceSettings
from herald.testing.audio_client import (
    MSG_AGENT_STATE,
    MSG_AGENT_SUBTITLE,
    MSG_ERROR,
    MSG_SPEAKING_INTERRUPTED,
    STATE_SPEAKING,
    STATE_THINKING,
    AudioRecorder,
    Pcm,
)
from herald.testing.llm_server import Reply, ScriptedLlm
from herald.testing.server import HeraldServer
from herald.testing.transcript import words

pytestmark = pytest.mark.e2e

MSG_AGENT_WILL_LEAVE = 1010
MSG_REPLY_COMPLETED = 1017
REASON_WORDS = 1
REASON_VOICE = 2
REASON_LLM_QUERY = 5
RATE_HZ = 16_000
ENVELOPE_KEYS = {"RequestId", "HostId", "Code", "Message", "Recommend"}

# PocketSphinx hears each of these right in (nearly) every take of Piper's voice; tests still only assert
# the words listed with them.
QUESTION = "What time is it?"
WEATHER = "Tell me about the weather."
TODAY = "What is the weather today?"
MORNING = "Good morning."
STOP = "Please stop."
PHRASES = (QUESTION, WEATHER, TODAY, MORNING, STOP)

STORY = (
    "Once upon a time there was a lighthouse keeper who lived alone on a small rocky island. "
    "Every evening he climbed the long spiral staircase to light the great lamp at the top. "
    "Ships passing in the night saw the beam sweep across the water and steered clear of the rocks. "
    "One stormy winter a small boat lost its way and drifted towards the island in the dark."
)
NOTICE = (
    "This is an important notice about your account that cannot be interrupted. Please listen until the end."
)


# ---- fixtures ------------------------------------------------------------------------------------------


@pytest.fixture(scope="session")
def say() -> Callable[[str], Pcm]:
    """``say(text)``: Piper (Herald's own voice) speaking ``text``, 16 kHz, one take per session."""
    engine = PiperEngine.load()
    voice = VoiceSettings(voice_id=engine.voice_ids[0])
    clips = {text: resample_once(engine.synthesize(text, voice), 48_000, RATE_HZ) for text in PHRASES}
    return clips.__getitem__


def talk(
    server: HeraldServer, llm: ScriptedLlm, agent_config: dict[str, Any] | None = None
) -> contextlib.AbstractAsyncContextManager[Talk]:
    """A call whose client speaks on the audio WebSocket at 16 kHz."""
    return talk_over_websocket(server, llm, agent_config, rate_hz=RATE_HZ)


def audible_ms_after(rec: AudioRecorder, index: int, before: int | None = None) -> float:
    """Audio with speech energy (RMS rule) received after item ``index`` (and before ``before``), in ms."""
    return rec.heard_s(after=index, before=before) * 1000


async def describe_when(server: HeraldServer, instance_id: str, status: str, *, timeout_s: float) -> Any:
    """DescribeAIAgentInstance's answer once the instance's Status is ``status`` (or the last one)."""
    deadline = time.monotonic() + timeout_s
    while True:
        body = await asyncio.to_thread(server.call, "DescribeAIAgentInstance", {"InstanceId": instance_id})
        if body["Instance"]["Status"] == status or time.monotonic() > deadline:
            return body
        await asyncio.sleep(0.25)


def list_dialogues(server: HeraldServer, session_id: str, count: int, timeout_s: float = 10) -> list[Any]:
    """The session's dialogues (oldest first) once there are ``count``: they are written a moment later."""
    deadline = time.monotonic() + timeout_s
    while True:
        request = models.ListAIAgentDialoguesRequest(
            session_id=session_id,
            start_time=0,
            end_time=int(time.time() * 1000) + 60_000,
            order="ASC",
            page_size=100,
        )
        found = list(server.sdk_client().list_aiagent_dialogues(request).body.dialogues or [])
        if len(found) >= count or time.monotonic() > deadline:
            assert len(found) == count, [d.to_map() for d in found]
            return found
        time.sleep(0.2)


# ---- the tests -----------------------------------------------------------------------------------------


async def test_the_agent_transcribes_what_it_hears_and_answers_aloud(
    server: HeraldServer, fresh_llm: ScriptedLlm, say: Callable[[str], Pcm]
) -> None:
    async with talk(server, fresh_llm) as t:
        rec = t.rec
        mark = rec.mark()
        spoken = await t.mic.say(say(QUESTION))

        heard = await t.hear(after=mark)
        text = heard.data["text"]
        assert {"what", "time"} <= set(words(text)), heard.data
        assert heard.data["end"] is True, heard.data
        assert heard.data["sentenceId"], heard.data
        request = await t.llm_request(0)
        assert request.messages[-1] == user(text), request.messages
        assert request.model == "scripted"

        outcome = await t.outcome(after=heard.index)
        assert outcome["state"] == "finished", outcome
        assert outcome["heardText"] == ANSWER, outcome
        states = [m.data["state"] for m in rec.messages(MSG_AGENT_STATE, after=mark)]
        assert {STATE_THINKING, STATE_SPEAKING} <= set(states), states
        assert states.index(STATE_THINKING) < states.index(STATE_SPEAKING), states
        thinking = next(
            m for m in rec.messages(MSG_AGENT_STATE, after=mark) if m.data["state"] == STATE_THINKING
        )
        assert thinking.index > heard.index, "thinking starts once the turn was heard"
        said = [m.data["text"] for m in rec.messages(MSG_AGENT_SUBTITLE, after=mark) if m.data["end"]]
        assert " ".join(said) == ANSWER, said
        assert rec.heard_s(after=heard.index) > 1.0, rec.describe(after=mark)
        first_audio = rec.nonsilent_frames(after=heard.index)[0]
        ended_s = spoken.voice_ended_s
        print(
            f"\nend of the user's voice → 1003: {(heard.received_s - ended_s) * 1000:.0f} ms, "
            f"→ LLM request: {(request.received_s - ended_s) * 1000:.0f} ms, "
            f"→ first audible answer: {(first_audio.received_s - ended_s) * 1000:.0f} ms"
        )
        completed = await rec.wait_for_message(MSG_REPLY_COMPLETED, after=mark)
        assert completed.data["text"] == ANSWER, completed.data

    user_line, agent_line = await asyncio.to_thread(list_dialogues, server, t.instance_id, 2)
    assert (user_line.producer, user_line.text) == ("user", text), user_line.to_map()
    assert (agent_line.producer, agent_line.text) == ("agent", ANSWER), agent_line.to_map()
    assert user_line.round_id, user_line.to_map()
    assert agent_line.round_id == user_line.round_id, (user_line.to_map(), agent_line.to_map())


async def test_the_user_barges_in_and_the_history_keeps_what_was_heard(
    server: HeraldServer, fresh_llm: ScriptedLlm, say: Callable[[str], Pcm]
) -> None:
    fresh_llm.script(Reply(STORY, chunk_chars=40))
    async with talk(server, fresh_llm, {"LlmConfig": {"HistorySyncWithTTS": True}}) as t:
        rec = t.rec
        mark = rec.mark()
        await t.api("SendAIAgentText", Text="Tell me a story.")
        first = await rec.wait_for_message(MSG_AGENT_SUBTITLE, after=mark, timeout_s=15)
        await rec.wait_for_speech(1.0, after=first.index - 1, timeout_s=15)

        barge = rec.mark()
        spoken_task = t.mic.say(say(WEATHER))
        cut = await rec.wait_for_message(MSG_SPEAKING_INTERRUPTED, after=barge, timeout_s=10)
        assert cut.data["reason"] == REASON_VOICE, cut.data
        story = await t.outcome(after=mark)
        spoken = await spoken_task
        assert story["state"] == "interrupted", story
        heard_words = words(story["heardText"])
        assert 0 < len(heard_words) < len(words(STORY)), story
        assert heard_words == words(STORY)[: len(heard_words)], story

        heard = await t.hear(after=barge)
        assert "weather" in words(heard.data["text"]), heard.data
        request = await t.llm_request(1)
        assert request.messages[-2:] == [
            assistant(story["heardText"] + INTERRUPTED_MARK),
            user(heard.data["text"]),
        ], request.messages
        assert request.messages[0] == user("Tell me a story."), request.messages

        answer = await rec.wait_for_message(MSG_AGENT_SUBTITLE, after=cut.index, timeout_s=15)
        leaked_ms = audible_ms_after(rec, cut.index, before=answer.index)
        onset_to_cut_ms = (cut.received_s - spoken.voice_started_s) * 1000
        print(
            f"\nbarge-in: 1016 {onset_to_cut_ms:.0f} ms after the user's voice began; "
            f"audible old audio after it: {leaked_ms:.0f} ms"
        )
        assert leaked_ms <= 200, rec.describe(after=barge)
        assert len(rec.messages(MSG_SPEAKING_INTERRUPTED, after=mark)) == 1, rec.describe(after=mark)
        assert (await t.outcome(after=answer.index))["state"] == "finished"


async def test_protected_speech_is_not_cut_and_what_was_said_over_it_is_answered_after(
    server: HeraldServer, fresh_llm: ScriptedLlm, say: Callable[[str], Pcm]
) -> None:
    async with talk(server, fresh_llm) as t:
        rec = t.rec
        mark = rec.mark()
        notice_id = await t.push(NOTICE, Protected="true")
        first = await rec.wait_for_message(MSG_AGENT_SUBTITLE, after=mark, timeout_s=15)
        await rec.wait_for_speech(1.0, after=first.index - 1, timeout_s=15)
        await t.mic.say(say(TODAY))
        heard = await t.hear(after=first.index)
        assert t.request_count() == 0, "nothing is asked while the protected speech plays"

        notice = await t.outcome(notice_id, after=mark)
        assert notice["state"] == "finished", notice
        assert notice["heardText"] == NOTICE, notice
        ended = rec.messages(MSG_SPEECH_OUTCOME, after=mark)[0]
        ended_s = ended.received_s
        assert heard.received_s < ended_s, "the user was heard while the notice played"

        request = await t.llm_request(0)
        # The server asks the LLM as it sends the outcome: the two arrive in either order, a moment apart.
        assert request.received_s >= ended_s - 0.1, "the turn was kept until the protected speech ended"
        assert request.messages[-1] == user(heard.data["text"]), request.messages
        answer = await t.outcome(after=ended.index)
        assert (answer["state"], answer["heardText"]) == ("finished", ANSWER), answer
        assert rec.messages(MSG_SPEAKING_INTERRUPTED, after=mark) == [], rec.describe(after=mark)


async def test_text_sent_through_the_sdk_cuts_the_agent_and_is_answered(
    server: HeraldServer, fresh_llm: ScriptedLlm
) -> None:
    async with talk(server, fresh_llm) as t:
        rec = t.rec
        mark = rec.mark()
        story_id = await t.push(STORY)
        first = await rec.wait_for_message(MSG_AGENT_SUBTITLE, after=mark, timeout_s=15)
        await rec.wait_for_speech(0.8, after=first.index - 1, timeout_s=15)

        request = models.SendAIAgentTextRequest(instance_id=t.instance_id, text=QUESTION)
        response = await asyncio.to_thread(server.sdk_client().send_aiagent_text, request)
        assert response.body.request_id
        cut = await rec.wait_for_message(MSG_SPEAKING_INTERRUPTED, after=mark, timeout_s=10)
        assert cut.data["reason"] == REASON_LLM_QUERY, cut.data
        assert (await t.outcome(story_id, after=mark))["state"] == "interrupted"

        asked = await t.llm_request(0)
        assert asked.messages[-1] == user(QUESTION), asked.messages
        answer = await t.outcome(after=cut.index, other_than={story_id})
        assert (answer["state"], answer["heardText"]) == ("finished", ANSWER), answer
        assert rec.heard_s(after=cut.index) > 1.0


async def test_a_failing_llm_is_reported_and_apologised_for_and_the_next_turn_works(
    server: HeraldServer, fresh_llm: ScriptedLlm
) -> None:
    apology = "Sorry, my thoughts are elsewhere. Say it again?"
    fresh_llm.script(Reply("the model is overloaded", status=500))
    config = {"AutoSpeechConfig": {"Apology": {"Messages": [{"Text": apology}]}}}
    async with talk(server, fresh_llm, config) as t:
        rec = t.rec
        mark = rec.mark()
        await t.api("SendAIAgentText", Text=QUESTION)
        error = await rec.wait_for_message(MSG_ERROR, after=mark, timeout_s=15)
        assert error.data["code"] == "AgentError", error.data
        assert "LLM" in error.data["message"], error.data
        said = await t.outcome(after=mark)
        assert (said["state"], said["heardText"]) == ("finished", apology), said
        assert rec.heard_s(after=error.index) > 1.0
        assert (await t.llm_request(0, answered=True)).reply == Reply("the model is overloaded", status=500)

        mark = rec.mark()
        await t.api("SendAIAgentText", Text="Are you there?")
        request = await t.llm_request(1)
        assert request.messages[-1] == user("Are you there?"), request.messages
        answer = await t.outcome(after=mark)
        assert (answer["state"], answer["heardText"]) == ("finished", ANSWER), answer
        assert rec.messages(MSG_ERROR, after=mark) == []


async def test_pushed_speech_joins_the_history_only_when_asked_to(
    server: HeraldServer, fresh_llm: ScriptedLlm
) -> None:
    kept = "Your parcel arrives on Monday."
    skipped = "This call may be recorded."
    async with talk(server, fresh_llm) as t:
        mark = t.rec.mark()
        kept_id = await t.push(kept, AddToHistory="true")
        skipped_id = await t.push(skipped, EnableInterrupt="false")  # after the first
        assert (await t.outcome(kept_id, after=mark))["heardText"] == kept
        assert (await t.outcome(skipped_id, after=mark))["heardText"] == skipped

        await t.api("SendAIAgentText", Text="When does it arrive?")
        request = await t.llm_request(0)
        assert request.messages == [assistant(kept), user("When does it arrive?")], request.messages
        answer = await t.outcome(after=mark, other_than={kept_id, skipped_id})
        assert answer["heardText"] == ANSWER, answer


WORDS_ONLY = {"InterruptConfig": {"EnableVoiceInterrupt": False, "InterruptWords": ["stop"]}}


async def test_an_interrupt_word_cuts_the_agent_when_its_voice_interruption_is_off(
    server: HeraldServer, fresh_llm: ScriptedLlm, say: Callable[[str], Pcm]
) -> None:
    async with talk(server, fresh_llm, WORDS_ONLY) as t:
        rec = t.rec
        mark = rec.mark()
        story_id = await t.push(STORY)
        first = await rec.wait_for_message(MSG_AGENT_SUBTITLE, after=mark, timeout_s=15)
        await rec.wait_for_speech(0.8, after=first.index - 1, timeout_s=15)

        await t.mic.say(say(STOP))
        cut = await rec.wait_for_message(MSG_SPEAKING_INTERRUPTED, after=mark, timeout_s=10)
        assert cut.data["reason"] == REASON_WORDS, cut.data
        heard = await t.hear(after=first.index)
        assert "stop" in words(heard.data["text"]), heard.data
        assert heard.index < cut.index, "the word is found in the transcript, after the utterance"
        assert (await t.outcome(story_id, after=mark))["state"] == "interrupted"
        assert len(rec.messages(MSG_SPEAKING_INTERRUPTED, after=mark)) == 1, rec.describe(after=mark)
        rest = [w for w in words(heard.data["text"]) if w != "stop"]
        if rest:  # what was said besides the word is the user's turn ("please")
            request = await t.llm_request(0)
            assert words(request.messages[-1]["content"]) == rest, request.messages


async def test_other_speech_does_not_cut_the_agent_when_its_voice_interruption_is_off(
    server: HeraldServer, fresh_llm: ScriptedLlm, say: Callable[[str], Pcm]
) -> None:
    async with talk(server, fresh_llm, WORDS_ONLY) as t:
        rec = t.rec
        mark = rec.mark()
        await t.push(STORY)
        first = await rec.wait_for_message(MSG_AGENT_SUBTITLE, after=mark, timeout_s=15)
        await rec.wait_for_speech(0.8, after=first.index - 1, timeout_s=15)

        await t.mic.say(say(MORNING))
        heard = await t.hear(after=first.index)
        assert "morning" in words(heard.data["text"]), heard.data
        await rec.wait_for_speech(1.0, after=heard.index, timeout_s=10)
        assert rec.messages(MSG_SPEAKING_INTERRUPTED, after=mark) == [], rec.describe(after=mark)


async def test_a_silent_user_is_prompted_then_the_call_ends(
    server: HeraldServer, fresh_llm: ScriptedLlm
) -> None:
    prompt = "Are you still there?"
    config = {
        "AutoSpeechConfig": {"UserIdle": {"WaitTime": 5000, "MaxRepeats": 1, "Messages": [{"Text": prompt}]}}
    }
    async with talk(server, fresh_llm, config) as t:
        rec = t.rec
        joined_s = time.monotonic()
        said = await t.outcome(timeout_s=15)
        assert said["heardText"] == prompt, said
        prompt_s = rec.messages(MSG_AGENT_SUBTITLE)[0].received_s
        leaving = await rec.wait_for_message(MSG_AGENT_WILL_LEAVE, timeout_s=15)
        body = await describe_when(server, t.instance_id, "Finished", timeout_s=5)
        print(
            f"\nUserIdle: the prompt began {prompt_s - joined_s:.1f} s after the user joined, the agent "
            f"left {leaving.received_s - prompt_s:.1f} s after it began"
        )
        assert body["Instance"]["Status"] == "Finished", body
        assert 4.5 <= prompt_s - joined_s <= 7.5, prompt_s - joined_s
        assert 5.0 <= leaving.received_s - prompt_s <= 9.5, leaving.received_s - prompt_s
        assert t.request_count() == 0


# ---- no LLM anywhere -------------------------------------------------------------------------------------


def test_text_to_an_agent_without_an_llm_is_refused() -> None:
    with HeraldServer(check_exit=False) as bare:
        client = bare.sdk_client()
        call = bare.call("GenerateAIAgentCall", {"AIAgentId": "default"})
        request = models.SendAIAgentTextRequest(instance_id=call["InstanceId"], text=QUESTION)
        with pytest.raises(ClientException) as caught:
            client.send_aiagent_text(request)
        exc = caught.value
        assert (exc.status_code, exc.code) == (400, "InvalidParameter.NoLlm"), exc
        assert isinstance(exc.data, dict), exc
        assert exc.data.keys() >= ENVELOPE_KEYS, exc.data
