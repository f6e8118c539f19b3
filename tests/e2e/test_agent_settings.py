"""AgentConfig settings that govern speech, as a caller hears them.

Agents come from a config file (``[agents.<id>.AgentConfig]``) or from ``AgentConfig`` in
GenerateAIAgentCall, and change through UpdateAIAgentInstance. Where two renderings must be compared, the
espeak-ng voice is used: it says the same text the same way every time, so "the same speech" can be checked
by the shape of its loudness over time.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterator
from typing import Any

import numpy as np
import pytest
from alibabacloud_ice20201109 import models

from herald.testing.audio_client import (
    MSG_AGENT_STATE,
    MSG_AGENT_SUBTITLE,
    SILENCE_RMS,
    AudioRecorder,
    DataMessage,
)
from herald.testing.server import HeraldServer
from herald.testing.transcript import is_listening, shows, spoken_words, words

pytestmark = pytest.mark.e2e

MSG_VOICE_CHANGED = 1005
MSG_AGENT_WILL_LEAVE = 1010
MSG_SPEECH_OUTCOME = 1900
ESPEAK = "espeak-ng/en-us"
GREETING = "Hello, this is the greeter speaking."
ONE_SENTENCE = "This single sentence is long enough to still be playing when the stop request arrives here."

CONFIG = f"""
[agents.greeter.AgentConfig]
Greeting = "{GREETING}"

[agents.graceful.AgentConfig]
GracefulShutdown = true
"""


@pytest.fixture(scope="module")
def server() -> Iterator[HeraldServer]:
    with HeraldServer(check_exit=False, config=CONFIG) as running:
        yield running


# -- helpers -------------------------------------------------------------------------------------------


async def say(server: HeraldServer, instance_id: str, text: str, **extra: str) -> str:
    params = {"InstanceId": instance_id, "Text": text, **extra}
    body = await asyncio.to_thread(server.call, "SendAIAgentSpeech", params)
    request_id: str = body["RequestId"]
    return request_id


async def outcome_of(rec: AudioRecorder, request_id: str, timeout_s: float = 40.0) -> DataMessage:
    return await rec.wait_for_message(
        MSG_SPEECH_OUTCOME, lambda m: m.data.get("requestId") == request_id, timeout_s=timeout_s
    )


async def spoken(
    server, rec: AudioRecorder, instance_id: str, text: str, **extra: str
) -> tuple[int, DataMessage]:
    """Say ``text``, wait until it has ended; returns the mark before it and its outcome."""
    mark = rec.mark()
    request_id = await say(server, instance_id, text, **extra)
    return mark, await outcome_of(rec, request_id)


def envelope(rec: AudioRecorder, *, after: int, before: int) -> np.ndarray:
    """Frame loudness from the first to the last audible frame between two indexes."""
    rms = rec.rms_per_frame(after=after, before=before)
    loud = np.flatnonzero(rms > SILENCE_RMS)
    return rms[loud[0] : loud[-1] + 1] if len(loud) else rms[:0]


def same_speech(a: np.ndarray, b: np.ndarray) -> tuple[bool, str]:
    """Whether two loudness envelopes are the same speech: same length (a few frames) and shape."""
    n = min(len(a), len(b))
    if n < 10:
        return False, f"too short: {len(a)} and {len(b)} frames"
    correlation = float(np.corrcoef(a[:n], b[:n])[0, 1])
    ok = abs(len(a) - len(b)) <= 3 and correlation > 0.9
    return ok, f"{len(a)} vs {len(b)} frames, correlation {correlation:.3f}"


def agent_config(**fields: Any) -> Any:
    return models.AIAgentConfig(**fields)


# -- greeting ------------------------------------------------------------------------------------------


async def test_greeting_is_spoken_once_when_the_first_user_joins(server, api):
    call = api.generate_call("greeter")
    try:
        await asyncio.sleep(0.5)
        async with AudioRecorder(server.audio_url(call.channel_id, call.token)) as rec:
            first = await rec.wait_for_message(MSG_AGENT_SUBTITLE, shows(GREETING), timeout_s=30)
            done = await rec.wait_for_message(MSG_SPEECH_OUTCOME, after=first.index, timeout_s=30)
            await rec.wait_for_message(MSG_AGENT_STATE, is_listening, after=first.index, timeout_s=10)
            transcript = rec.describe()
            assert done.data["state"] == "finished", transcript
            assert spoken_words(rec.messages(MSG_AGENT_SUBTITLE)) == words(GREETING), transcript
            assert rec.nonsilent_frames(before=first.index) == [], "audio before the greeting's subtitle"
            assert rec.heard_s() >= 1.0, transcript

        # Joining again (a second listener, then a reconnect) does not greet again.
        async with AudioRecorder(server.audio_url(call.channel_id, call.token)) as again:
            await again.wait_for_frames(50)
            assert again.messages(MSG_AGENT_SUBTITLE) == [], again.describe()
            assert again.heard_s() == 0, again.describe()
    finally:
        await asyncio.to_thread(api.stop, call.instance_id)


# -- stopping ------------------------------------------------------------------------------------------


async def test_graceful_shutdown_lets_the_current_sentence_finish(server, api):
    call = api.generate_call("graceful")
    async with AudioRecorder(server.audio_url(call.channel_id, call.token)) as rec:
        await rec.wait_for_message(MSG_AGENT_STATE, is_listening, timeout_s=10)
        mark = rec.mark()
        request_id = await say(server, call.instance_id, ONE_SENTENCE)
        first = await rec.wait_for_message(MSG_AGENT_SUBTITLE, shows(ONE_SENTENCE), after=mark, timeout_s=30)
        await rec.wait_for_speech(0.5, after=first.index, timeout_s=20)

        stopped = rec.mark()
        await asyncio.to_thread(api.stop, call.instance_id)
        done = await outcome_of(rec, request_id)
        leaving = await rec.wait_for_message(MSG_AGENT_WILL_LEAVE, after=mark, timeout_s=15)
        await rec.wait_until(lambda: rec.closed, timeout_s=10, what="the socket closing")

        transcript = rec.describe(after=mark)
        assert done.data["state"] == "finished", transcript
        assert words(done.data["heardText"]) == words(ONE_SENTENCE), transcript
        ends = [m for m in rec.messages(MSG_AGENT_SUBTITLE, after=first.index) if m.data.get("end") is True]
        assert ends, f"the sentence was not played to its end\n{transcript}"
        assert ends[-1].index < leaving.index, f"the sentence was not played to its end\n{transcript}"
        assert rec.heard_s(after=stopped, before=leaving.index) >= 0.5, transcript
    instance = await api.wait_status(call.instance_id, "Finished", timeout_s=10)
    assert instance.call_info.call_end_time


async def test_stop_without_graceful_shutdown_cuts_at_once(server, api, call):
    async with AudioRecorder(server.audio_url(call.channel_id, call.token)) as rec:
        await rec.wait_for_message(MSG_AGENT_STATE, is_listening, timeout_s=10)
        mark = rec.mark()
        request_id = await say(server, call.instance_id, ONE_SENTENCE)
        first = await rec.wait_for_message(MSG_AGENT_SUBTITLE, shows(ONE_SENTENCE), after=mark, timeout_s=30)
        await rec.wait_for_speech(0.5, after=first.index, timeout_s=20)

        await asyncio.to_thread(api.stop, call.instance_id)
        stopped = rec.mark()
        assert (await api.adescribe(call.instance_id)).status == "Finished"
        await rec.wait_until(lambda: rec.closed, timeout_s=5, what="the socket closing")

        transcript = rec.describe(after=mark)
        assert rec.messages(MSG_AGENT_WILL_LEAVE, after=mark), transcript
        cut = [m for m in rec.messages(MSG_SPEECH_OUTCOME, after=mark) if m.data["requestId"] == request_id]
        assert [m.data["state"] for m in cut] == ["interrupted"], transcript
        assert words(cut[0].data["heardText"]) != words(ONE_SENTENCE), transcript
        assert rec.heard_s(after=stopped) <= 0.3, f"it went on speaking after the stop\n{transcript}"


# -- timeouts ------------------------------------------------------------------------------------------


async def test_user_offline_timeout_ends_the_call_after_the_user_left(server, api):
    call = api.generate_call(agent_config=agent_config(user_offline_timeout=2))
    async with AudioRecorder(server.audio_url(call.channel_id, call.token)) as rec:
        await rec.wait_for_message(MSG_AGENT_STATE, timeout_s=10)
        await api.wait_status(call.instance_id, "Executing")
    left = time.monotonic()
    await asyncio.sleep(0.5)
    assert (await api.adescribe(call.instance_id)).status == "Executing", "ended before the timeout"
    instance = await api.wait_status(call.instance_id, "Finished", timeout_s=10)
    assert instance.call_info.hangup_role == 1, "the user is deemed to have hung up"
    assert time.monotonic() - left >= 1.5


async def test_user_online_timeout_ends_a_call_nobody_joined(server, api):
    call = api.generate_call(agent_config=agent_config(user_online_timeout=2))
    assert (await api.adescribe(call.instance_id)).status == "Created"
    instance = await api.wait_status(call.instance_id, "Finished", timeout_s=10)
    assert instance.call_info.hangup_role == 2, "the system ended it"


# -- updates -------------------------------------------------------------------------------------------


async def test_update_voice_is_announced_and_used_from_the_next_speech(server, api, call):
    text = "The voice of this agent changes now."
    async with AudioRecorder(server.audio_url(call.channel_id, call.token)) as rec:
        await rec.wait_for_message(MSG_AGENT_STATE, is_listening, timeout_s=10)
        ref_mark, ref = await spoken(server, rec, call.instance_id, text, VoiceId=ESPEAK)
        reference = envelope(rec, after=ref_mark, before=ref.index)

        mark = rec.mark()
        await asyncio.to_thread(
            api.client.update_aiagent_instance,
            models.UpdateAIAgentInstanceRequest(
                instance_id=call.instance_id,
                agent_config=agent_config(tts_config=models.AIAgentConfigTtsConfig(voice_id=ESPEAK)),
            ),
        )
        changed = await rec.wait_for_message(MSG_VOICE_CHANGED, after=mark, timeout_s=10)
        assert changed.data == {"voiceId": ESPEAK}, changed.raw

        new_mark, new = await spoken(server, rec, call.instance_id, text)
        assert new.data["state"] == "finished", rec.describe(after=new_mark)
        ok, detail = same_speech(reference, envelope(rec, after=new_mark, before=new.index))
        assert ok, f"the next speech is not in the new voice: {detail}"
    instance = await api.adescribe(call.instance_id)
    assert instance.agent_config.tts_config.voice_id == ESPEAK


@pytest.mark.parametrize(
    ("config", "named"),
    [
        ({"tts_config": models.AIAgentConfigTtsConfig(speech_rate=2.5)}, "AgentConfig.TtsConfig.SpeechRate"),
        ({"tts_config": models.AIAgentConfigTtsConfig(speech_rate=0.4)}, "AgentConfig.TtsConfig.SpeechRate"),
        ({"volume": 401}, "AgentConfig.Volume"),
        ({"volume": -1}, "AgentConfig.Volume"),
        (
            {"tts_config": models.AIAgentConfigTtsConfig(voice_id="no-such-voice")},
            "AgentConfig.TtsConfig.VoiceId",
        ),
    ],
    ids=["rate-high", "rate-low", "volume-high", "volume-negative", "unknown-voice"],
)
def test_out_of_range_update_is_invalid_and_changes_nothing(api, call, config, named):
    exc = api.error(
        api.client.update_aiagent_instance,
        models.UpdateAIAgentInstanceRequest(
            instance_id=call.instance_id, agent_config=agent_config(**config)
        ),
    )
    assert (exc.code, exc.status_code) == ("InvalidParameter", 400), exc.data
    assert named in exc.data["Message"], exc.data
    instance = api.describe(call.instance_id)
    assert instance.agent_config is None or instance.agent_config.volume in (None, 100)
    tts = instance.agent_config.tts_config if instance.agent_config else None
    assert tts is None or (tts.speech_rate is None and tts.voice_id is None), instance.agent_config.to_map()


# -- what is said --------------------------------------------------------------------------------------


async def test_pronunciation_rules_change_the_speech_but_not_the_subtitle(server, api):
    rules = [
        models.AIAgentConfigTtsConfigPronunciationRules(
            type="replacement", word="SQL", pronunciation="sequel"
        )
    ]
    call = api.generate_call(
        agent_config=agent_config(
            tts_config=models.AIAgentConfigTtsConfig(voice_id=ESPEAK, pronunciation_rules=rules)
        )
    )
    try:
        async with AudioRecorder(server.audio_url(call.channel_id, call.token)) as rec:
            await rec.wait_for_message(MSG_AGENT_STATE, is_listening, timeout_s=10)
            ruled_mark, ruled = await spoken(server, rec, call.instance_id, "I like SQL.")
            plain_mark, plain = await spoken(server, rec, call.instance_id, "I like sequel.")

            subtitles = rec.messages(MSG_AGENT_SUBTITLE, after=ruled_mark, before=ruled.index)
            assert {m.data["text"] for m in subtitles} == {"I like SQL."}, rec.describe(after=ruled_mark)
            assert words(ruled.data["heardText"]) == ["i", "like", "sql"], ruled.raw
            ok, detail = same_speech(
                envelope(rec, after=ruled_mark, before=ruled.index),
                envelope(rec, after=plain_mark, before=plain.index),
            )
            assert ok, f"'SQL' was not said as 'sequel': {detail}"
    finally:
        await asyncio.to_thread(api.stop, call.instance_id)


async def test_a_repeated_phrase_is_heard_again_and_starts_no_later(server, api, call):
    phrase = "Please hold the line, an agent will be with you shortly."
    async with AudioRecorder(server.audio_url(call.channel_id, call.token)) as rec:
        await rec.wait_for_message(MSG_AGENT_STATE, is_listening, timeout_s=10)
        latencies = []
        for _ in range(2):
            mark = rec.mark()
            sent = time.monotonic()
            request_id = await say(server, call.instance_id, phrase)
            await rec.wait_for_speech(0.02, after=mark, timeout_s=30)
            audible = rec.nonsilent_frames(after=mark)[0]
            latencies.append(audible.received_s - sent)
            done = await outcome_of(rec, request_id)
            await rec.wait_for_message(MSG_AGENT_STATE, is_listening, after=audible.index, timeout_s=10)

            transcript = rec.describe(after=mark)
            assert done.data["state"] == "finished", transcript
            assert spoken_words(rec.messages(MSG_AGENT_SUBTITLE, after=mark)) == words(phrase), transcript
            assert rec.heard_s(after=mark) >= 1.5, transcript
        first, second = latencies
        assert second <= first + 0.25, f"first audio after {first:.2f} s, then after {second:.2f} s"
