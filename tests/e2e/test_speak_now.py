"""Herald's speak-now contract: SendAIAgentSpeech's extra parameters, as a caller hears their effect.

The official SDK never sends these parameters, so they go through raw signed calls (``server.call``).
What comes back on the audio WebSocket is the judge: subtitles (``1002``), the outcome of every pushed
utterance (``1900 {requestId, state, playedMs, heardText, reason}``), the audio itself.
"""

from __future__ import annotations

import asyncio
import uuid
from typing import Any

import numpy as np
import pytest

from herald.testing.audio_client import (
    MSG_AGENT_STATE,
    MSG_AGENT_SUBTITLE,
    AudioRecorder,
    DataMessage,
)
from herald.testing.transcript import is_listening, shows, spoken_words, words

pytestmark = pytest.mark.e2e

MSG_AGENT_WILL_LEAVE = 1010
MSG_SPEECH_OUTCOME = 1900
OUTCOME_KEYS = {"requestId", "state", "playedMs", "heardText", "reason"}

BUSY = "This sentence keeps the agent busy for a moment."
LONG = (
    "This is a long announcement about our service. "
    "It has several sentences, so that it takes a good while to say. "
    "The third sentence talks about the weather, which is lovely today. "
    "The fourth sentence is about trains that always leave on time."
)


# -- helpers -------------------------------------------------------------------------------------------


async def joined(rec: AudioRecorder) -> None:
    await rec.wait_for_message(MSG_AGENT_STATE, is_listening, timeout_s=10)


async def say(server, instance_id: str, text: str, **extra: Any) -> str:
    """SendAIAgentSpeech as a raw signed call (extra parameters by wire name); returns its RequestId."""
    params = {"InstanceId": instance_id, "Text": text, **{k: str(v) for k, v in extra.items()}}
    body = await asyncio.to_thread(server.call, "SendAIAgentSpeech", params)
    request_id: str = body["RequestId"]
    assert request_id
    return request_id


async def outcome_of(rec: AudioRecorder, request_id: str, *, timeout_s: float = 40.0) -> DataMessage:
    message = await rec.wait_for_message(
        MSG_SPEECH_OUTCOME, lambda m: m.data.get("requestId") == request_id, timeout_s=timeout_s
    )
    assert message.data.keys() >= OUTCOME_KEYS, message.raw
    return message


def outcomes(rec: AudioRecorder, request_id: str) -> list[DataMessage]:
    return [m for m in rec.messages(MSG_SPEECH_OUTCOME) if m.data.get("requestId") == request_id]


async def quiet_for(rec: AudioRecorder, frames: int = 25) -> None:
    """Let ``frames`` more frames (20 ms each) arrive, so late messages would have shown up."""
    await rec.wait_for_frames(frames, after=rec.mark())


def energy(rec: AudioRecorder, *, after: int, before: int | None = None) -> float:
    """Root-mean-square level of everything recorded between two indexes."""
    pcm = rec.pcm(after=after, before=before).astype(np.float64)
    return float(np.sqrt(np.mean(np.square(pcm)))) if len(pcm) else 0.0


def invalid(api, server, params: dict[str, str]):
    return api.error(server.call, "SendAIAgentSpeech", params)


# -- arrival policies ----------------------------------------------------------------------------------


async def test_drop_if_busy_is_never_heard_while_speaking_but_plays_when_quiet(server, api, call):
    dropped_text = "You should never hear this sentence."
    played_text = "Now this one plays."
    async with AudioRecorder(server.audio_url(call.channel_id, call.token)) as rec:
        await joined(rec)
        mark = rec.mark()
        busy_id = await say(server, call.instance_id, BUSY)
        first = await rec.wait_for_message(MSG_AGENT_SUBTITLE, shows(BUSY), after=mark, timeout_s=30)

        dropped_id = await say(server, call.instance_id, dropped_text, Policy="drop-if-busy")
        dropped = await outcome_of(rec, dropped_id)
        busy = await outcome_of(rec, busy_id)
        await rec.wait_for_message(MSG_AGENT_STATE, is_listening, after=first.index, timeout_s=10)
        await quiet_for(rec)

        transcript = rec.describe(after=mark)
        assert dropped.data["state"] == "dropped", transcript
        assert dropped.data["playedMs"] == 0, transcript
        assert busy.data["state"] == "finished", f"drop-if-busy disturbed what was playing\n{transcript}"
        assert not [m for m in rec.messages(MSG_AGENT_SUBTITLE) if shows(dropped_text)(m)], transcript
        assert spoken_words(rec.messages(MSG_AGENT_SUBTITLE, after=mark)) == words(BUSY), transcript

        quiet = rec.mark()
        played_id = await say(server, call.instance_id, played_text, Policy="drop-if-busy")
        played = await outcome_of(rec, played_id)
        transcript = rec.describe(after=quiet)
        assert played.data["state"] == "finished", transcript
        assert spoken_words(rec.messages(MSG_AGENT_SUBTITLE, after=quiet)) == words(played_text), transcript
        assert rec.heard_s(after=quiet) >= 0.5, transcript
        assert len(outcomes(rec, dropped_id)) == 1, transcript


@pytest.mark.parametrize(
    ("policy", "enable_interrupt"),
    [("append", "true"), ("interrupt", "false"), ("drop-if-busy", "true"), ("append", "True")],
)
def test_policy_contradicting_enable_interrupt_is_invalid(server, api, call, policy, enable_interrupt):
    exc = invalid(
        api,
        server,
        {
            "InstanceId": call.instance_id,
            "Text": "Hello",
            "Policy": policy,
            "EnableInterrupt": enable_interrupt,
        },
    )
    assert (exc.code, exc.status_code) == ("InvalidParameter", 400), exc.data
    assert "Policy" in exc.data["Message"], exc.data


@pytest.mark.parametrize("policy", ["later", "interrupt-now", "drop_if_busy"])
def test_unknown_policy_is_invalid(server, api, call, policy):
    exc = invalid(api, server, {"InstanceId": call.instance_id, "Text": "Hello", "Policy": policy})
    assert (exc.code, exc.status_code) == ("InvalidParameter", 400), exc.data
    assert "Policy" in exc.data["Message"], exc.data


@pytest.mark.parametrize(
    ("policy", "enable_interrupt"),
    [("interrupt", "true"), ("append", "false"), ("drop-if-busy", "false"), ("append", None)],
)
def test_policy_agreeing_with_enable_interrupt_is_accepted(server, api, call, policy, enable_interrupt):
    params = {"InstanceId": call.instance_id, "Text": "Hello", "Policy": policy}
    if enable_interrupt is not None:
        params["EnableInterrupt"] = enable_interrupt
    assert server.call("SendAIAgentSpeech", params)["RequestId"]


# -- ending the call -----------------------------------------------------------------------------------


async def test_end_call_after_spoken_plays_to_the_end_then_finishes_the_instance(server, api, call):
    text = "Thank you for calling. Goodbye."
    async with AudioRecorder(server.audio_url(call.channel_id, call.token)) as rec:
        await joined(rec)
        mark = rec.mark()
        request_id = await say(server, call.instance_id, text, EndCallAfterSpoken="true")
        done = await outcome_of(rec, request_id)
        leaving = await rec.wait_for_message(MSG_AGENT_WILL_LEAVE, after=mark, timeout_s=10)
        await rec.wait_until(lambda: rec.closed, timeout_s=10, what="the server closing the socket")

        transcript = rec.describe(after=mark)
        assert done.data["state"] == "finished", transcript
        assert words(done.data["heardText"]) == words(text), transcript
        assert spoken_words(rec.messages(MSG_AGENT_SUBTITLE, after=mark)) == words(text), transcript
        assert rec.heard_s(after=mark) >= 1.0, transcript
        assert done.index < leaving.index, f"the call ended before the speech had played\n{transcript}"

    instance = await api.wait_status(call.instance_id, "Finished", timeout_s=10)
    assert instance.call_info.call_end_time
    assert instance.call_info.hangup_role == 0, "the agent ended the call"


async def test_interrupted_end_call_speech_does_not_end_the_call(server, api, call):
    urgent = "Wait, one more thing."
    async with AudioRecorder(server.audio_url(call.channel_id, call.token)) as rec:
        await joined(rec)
        mark = rec.mark()
        ending_id = await say(server, call.instance_id, LONG, EndCallAfterSpoken="true")
        first = await rec.wait_for_message(MSG_AGENT_SUBTITLE, shows(LONG), after=mark, timeout_s=30)
        await rec.wait_for_speech(0.6, after=first.index, timeout_s=20)
        urgent_id = await say(server, call.instance_id, urgent)

        cut = await outcome_of(rec, ending_id)
        await outcome_of(rec, urgent_id)
        await quiet_for(rec, 50)

        transcript = rec.describe(after=mark)
        assert cut.data["state"] == "interrupted", transcript
        assert not rec.closed, f"the socket was closed\n{transcript}"
        assert rec.messages(MSG_AGENT_WILL_LEAVE, after=mark) == [], transcript
        assert (await api.adescribe(call.instance_id)).status == "Executing"


# -- per-utterance voice, rate and volume --------------------------------------------------------------


@pytest.mark.parametrize(
    ("voice_id", "text"),
    [
        ("espeak-ng/cmn", "你好，欢迎使用我们的服务。"),
        ("espeak-ng/en-us", "Hello from a different voice."),
        ("en_US-joe-medium", "Hello from the default voice."),
    ],
)
async def test_per_utterance_voice_is_heard(server, api, call, voice_id, text):
    async with AudioRecorder(server.audio_url(call.channel_id, call.token)) as rec:
        await joined(rec)
        mark = rec.mark()
        request_id = await say(server, call.instance_id, text, VoiceId=voice_id)
        done = await outcome_of(rec, request_id)

        transcript = rec.describe(after=mark)
        assert done.data["state"] == "finished", transcript
        assert spoken_words(rec.messages(MSG_AGENT_SUBTITLE, after=mark)) == words(text), transcript
        assert rec.heard_s(after=mark, before=done.index) >= 0.5, transcript
        assert rec.rms_per_frame(after=mark, before=done.index).max() > 1000, transcript


async def _heard_on_new_call(server, api, text: str, **extra: Any) -> tuple[float, float, str]:
    """Say ``text`` on a call of its own: (seconds heard, RMS of the whole utterance, transcript)."""
    call = await asyncio.to_thread(api.generate_call)
    try:
        async with AudioRecorder(server.audio_url(call.channel_id, call.token)) as rec:
            await joined(rec)
            mark = rec.mark()
            request_id = await say(server, call.instance_id, text, **extra)
            done = await outcome_of(rec, request_id)
            assert done.data["state"] == "finished", rec.describe(after=mark)
            return (
                rec.heard_s(after=mark, before=done.index),
                energy(rec, after=mark, before=done.index),
                rec.describe(after=mark),
            )
    finally:
        await asyncio.to_thread(api.stop, call.instance_id)


async def test_speech_rate_two_is_audibly_shorter_than_half(server, api):
    text = "Seven brown foxes jumped."
    (slow_s, _, slow_t), (fast_s, _, fast_t) = await asyncio.gather(
        _heard_on_new_call(server, api, text, SpeechRate="0.5"),
        _heard_on_new_call(server, api, text, SpeechRate="2.0"),
    )
    assert fast_s > 0.2, fast_t
    assert fast_s < 0.6 * slow_s, f"rate 2.0: {fast_s:.2f} s, rate 0.5: {slow_s:.2f} s\n{fast_t}\n{slow_t}"


async def test_volume_two_hundred_is_louder_than_fifty(server, api):
    # espeak-ng renders the same text identically every time, so only the gain differs.
    text = "Testing the volume of this voice."
    (loud_s, loud_rms, loud_t), (_soft_s, soft_rms, soft_t) = await asyncio.gather(
        _heard_on_new_call(server, api, text, Volume="200", VoiceId="espeak-ng/en-us"),
        _heard_on_new_call(server, api, text, Volume="50", VoiceId="espeak-ng/en-us"),
    )
    assert loud_s > 0.5, loud_t
    assert soft_rms > 0, soft_t
    assert loud_rms > 2.0 * soft_rms, f"RMS at 200 %: {loud_rms:.0f}, at 50 %: {soft_rms:.0f}"


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("SpeechRate", "0.4"),
        ("SpeechRate", "2.01"),
        ("SpeechRate", "fast"),
        ("SpeechRate", "nan"),
        ("Volume", "-1"),
        ("Volume", "401"),
        ("Volume", "1.5"),
        ("VoiceId", "no-such-voice"),
        ("VoiceId", "espeak-ng/no-such-language"),
        ("VoiceId", "v" * 65),
    ],
)
def test_bad_voice_settings_are_invalid_and_named(server, api, call, name, value):
    exc = invalid(api, server, {"InstanceId": call.instance_id, "Text": "Hello", name: value})
    assert (exc.code, exc.status_code) == ("InvalidParameter", 400), exc.data
    assert name in exc.data["Message"], exc.data


# -- idempotency ---------------------------------------------------------------------------------------


async def test_client_token_retry_speaks_once_and_returns_the_first_request_id(server, api, call):
    text = "This announcement is made only once."
    token = f"e2e-{uuid.uuid4()}"
    async with AudioRecorder(server.audio_url(call.channel_id, call.token)) as rec:
        await joined(rec)
        mark = rec.mark()
        first = await say(server, call.instance_id, text, ClientToken=token)
        again = await say(server, call.instance_id, text, ClientToken=token)
        assert again == first

        done = await outcome_of(rec, first)
        await quiet_for(rec, 50)
        transcript = rec.describe(after=mark)
        assert done.data["state"] == "finished", transcript
        assert len(rec.messages(MSG_SPEECH_OUTCOME, after=mark)) == 1, transcript
        assert spoken_words(rec.messages(MSG_AGENT_SUBTITLE, after=mark)) == words(text), transcript

        exc = invalid(
            api,
            server,
            {"InstanceId": call.instance_id, "Text": "Something else entirely.", "ClientToken": token},
        )
        assert (exc.code, exc.status_code) == ("IdempotentParameterMismatch", 400), exc.data
        await quiet_for(rec, 25)
        assert len(rec.messages(MSG_SPEECH_OUTCOME, after=mark)) == 1, rec.describe(after=mark)


def test_client_token_on_generate_call_returns_the_same_instance(server, api):
    token = f"e2e-{uuid.uuid4()}"
    params = {"AIAgentId": "default", "ClientToken": token, "UserId": "token-user"}
    first = server.call("GenerateAIAgentCall", params)
    try:
        again = server.call("GenerateAIAgentCall", params)
        assert again["InstanceId"] == first["InstanceId"]
        assert again["RequestId"] == first["RequestId"]
        assert again["ChannelId"] == first["ChannelId"]

        exc = api.error(server.call, "GenerateAIAgentCall", {**params, "UserId": "someone-else"})
        assert (exc.code, exc.status_code) == ("IdempotentParameterMismatch", 400), exc.data
    finally:
        api.stop(first["InstanceId"])


# -- outcomes ------------------------------------------------------------------------------------------


async def test_every_pushed_speech_ends_in_exactly_one_outcome(server, api, call):
    queued = "I wait in the queue and am never said."
    urgent = "Sorry to interrupt, here is an urgent update."
    late = "I arrive while the agent is busy."
    async with AudioRecorder(server.audio_url(call.channel_id, call.token)) as rec:
        await joined(rec)
        mark = rec.mark()
        long_id = await say(server, call.instance_id, LONG)
        first = await rec.wait_for_message(MSG_AGENT_SUBTITLE, shows(LONG), after=mark, timeout_s=30)
        queued_id = await say(server, call.instance_id, queued, EnableInterrupt="false")
        await rec.wait_for_speech(1.5, after=first.index, timeout_s=20)

        urgent_id = await say(server, call.instance_id, urgent)
        urgent_first = await rec.wait_for_message(
            MSG_AGENT_SUBTITLE, shows(urgent), after=first.index, timeout_s=30
        )
        late_id = await say(server, call.instance_id, late, Policy="drop-if-busy")
        await outcome_of(rec, urgent_id)
        await rec.wait_for_message(MSG_AGENT_STATE, is_listening, after=urgent_first.index, timeout_s=10)
        await quiet_for(rec, 50)

        transcript = rec.describe(after=mark)
        ids = [long_id, queued_id, urgent_id, late_id]
        assert len(set(ids)) == 4
        for request_id in ids:
            assert len(outcomes(rec, request_id)) == 1, f"{request_id}: not one outcome\n{transcript}"
        for message in rec.messages(MSG_SPEECH_OUTCOME, after=mark):
            assert message.data["requestId"] in ids, f"an outcome of nothing pushed\n{transcript}"
        by_id = {request_id: outcomes(rec, request_id)[0].data for request_id in ids}

        cut = by_id[long_id]
        assert cut["state"] == "interrupted", transcript
        assert cut["playedMs"] >= 1000, transcript
        heard = words(cut["heardText"])
        assert heard, f"nothing of the cut speech counted as heard\n{transcript}"
        assert heard == words(LONG)[: len(heard)], f"{cut['heardText']!r} is not a prefix of the text"
        assert len(heard) < len(words(LONG)), transcript

        assert by_id[queued_id]["state"] == "dropped", transcript
        assert by_id[queued_id]["playedMs"] == 0, transcript
        assert by_id[queued_id]["heardText"] == "", transcript

        assert by_id[urgent_id]["state"] == "finished", transcript
        assert words(by_id[urgent_id]["heardText"]) == words(urgent), transcript
        assert by_id[urgent_id]["playedMs"] >= 800, transcript
        assert by_id[urgent_id]["reason"] == "", transcript

        assert by_id[late_id]["state"] == "dropped", transcript
        for request_id in (queued_id, late_id):
            assert by_id[request_id]["reason"], f"a dropped speech without a reason\n{transcript}"
            text = queued if request_id == queued_id else late
            assert not [m for m in rec.messages(MSG_AGENT_SUBTITLE) if shows(text)(m)], transcript
