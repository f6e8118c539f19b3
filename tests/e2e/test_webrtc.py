"""Joining a call over WebRTC, as a real aiortc peer hears and uses it (``docs/webrtc.md``).

The peer (``herald.testing.rtc_client.RtcRecorder``) decodes the agent's Opus track to 48 kHz and keeps
the data-channel messages beside the audio, so these tests read like the WebSocket ones. One difference
matters: audio and messages travel apart (RTP and SCTP) and the peer's jitter buffer holds a few packets,
so audio arrives some tens of milliseconds after the messages sent with it; bounds on "frames after a
message" allow for that.
"""

from __future__ import annotations

import asyncio
import json
import re
from typing import Any

import httpx
import numpy as np
import pytest
from aiortc import RTCConfiguration, RTCPeerConnection
from alibabacloud_ice20201109 import models

from herald.client.errors import Refused
from herald.client.tracks import ToneTrack
from herald.testing.audio_client import (
    MSG_AGENT_STATE,
    MSG_AGENT_SUBTITLE,
    MSG_ERROR,
    MSG_SPEAKING_INTERRUPTED,
    SILENCE_RMS,
    STATE_LISTENING,
    AudioRecorder,
    DataMessage,
)
from herald.testing.rtc_client import RtcRecorder, refused_offer
from herald.testing.transcript import is_listening, shows, spoken_words, words

pytestmark = pytest.mark.e2e

MSG_VOICE_CHANGED = 1005
MSG_AGENT_WILL_LEAVE = 1010
MSG_CUSTOM = 1011
MSG_OUTCOME = 1900
BY_CLIENT = 3
BY_SPEECH = 4
ESPEAK = "espeak-ng/en-us"
WEBRTC_ENVELOPE = {"RequestId", "HostId", "Code", "Message"}

GREETING = "Hello, welcome to use our service"
LONG = (
    "This is a long announcement about our service. "
    "It has several sentences, so that it takes a good while to say. "
    "The third sentence talks about the weather, which is lovely today. "
    "The fourth sentence is about trains that always leave on time."
)
URGENT = "Sorry to interrupt, here is an urgent update."
TRANSPORT_LAG_FRAMES = 10
"""Old audio allowed after a cut message: a frame or two of the cut, plus what RTP and the peer's jitter
buffer still hold (about 5 frames here)."""


# -- helpers -------------------------------------------------------------------------------------------


def join(server, call, **kwargs: Any) -> RtcRecorder:
    return RtcRecorder(server.url, call.channel_id, call.token, **kwargs)


async def joined(rec: AudioRecorder) -> None:
    await rec.wait_for_message(MSG_AGENT_STATE, is_listening, timeout_s=10)


async def say(server, instance_id: str, text: str, **extra: str) -> str:
    """SendAIAgentSpeech as a raw signed call; returns its RequestId."""
    params = {"InstanceId": instance_id, "Text": text, **extra}
    body = await asyncio.to_thread(server.call, "SendAIAgentSpeech", params)
    return str(body["RequestId"])


async def outcome_of(rec: AudioRecorder, request_id: str, *, timeout_s: float = 40.0) -> DataMessage:
    return await rec.wait_for_message(
        MSG_OUTCOME, lambda m: m.data.get("requestId") == request_id, timeout_s=timeout_s
    )


async def played_out(rec: AudioRecorder, message: DataMessage, frames: int = 25) -> None:
    """Wait for ``frames`` more frames after ``message``: its audio, still in transit, has arrived."""
    await rec.wait_for_frames(frames, after=message.index)


async def offer_sdp(*, audio: bool = True) -> str:
    """A real aiortc offer (recvonly audio and a data channel, or the data channel only)."""
    pc = RTCPeerConnection(RTCConfiguration(iceServers=[]))
    try:
        if audio:
            pc.addTransceiver("audio", direction="recvonly")
        pc.createDataChannel("herald")
        await pc.setLocalDescription(await pc.createOffer())
        return str(pc.localDescription.sdp)
    finally:
        await pc.close()


def loudness(rec: AudioRecorder, *, after: int, before: int) -> np.ndarray:
    """Frame RMS from the first to the last audible frame between two indexes."""
    rms = rec.rms_per_frame(after=after, before=before)
    loud = np.flatnonzero(rms > SILENCE_RMS)
    return rms[loud[0] : loud[-1] + 1] if len(loud) else rms[:0]


def same_speech(a: np.ndarray, b: np.ndarray) -> tuple[bool, str]:
    """Whether two loudness envelopes are one speech said the same way: length (±5 frames) and shape."""
    n = min(len(a), len(b))
    if n < 10:
        return False, f"too short: {len(a)} and {len(b)} frames"
    correlation = float(np.corrcoef(a[:n], b[:n])[0, 1])
    return abs(
        len(a) - len(b)
    ) <= 5 and correlation > 0.8, f"{len(a)} vs {len(b)} frames, r={correlation:.2f}"


def assert_envelope(body: Any, code: str) -> None:
    assert isinstance(body, dict), body
    assert body.keys() >= WEBRTC_ENVELOPE, f"not the ICE envelope: {body}"
    assert body["Code"] == code, body


# -- hearing the agent ---------------------------------------------------------------------------------


async def test_pushed_speech_is_heard_with_its_subtitles_and_outcome(server, call):
    async with join(server, call) as rec:
        await joined(rec)
        mark = rec.mark()
        request_id = await say(server, call.instance_id, GREETING)
        done = await outcome_of(rec, request_id)
        listening = await rec.wait_for_message(MSG_AGENT_STATE, is_listening, after=done.index - 1)
        await played_out(rec, listening)

        transcript = rec.describe(after=mark)
        assert done.data["state"] == "finished", transcript
        assert words(done.data["heardText"]) == words(GREETING), transcript
        subtitles = rec.messages(MSG_AGENT_SUBTITLE, after=mark)
        by_sentence: dict[Any, list[bool]] = {}
        for subtitle in subtitles:
            by_sentence.setdefault(subtitle.data["sentenceId"], []).append(subtitle.data["end"])
        assert list(by_sentence.values()) == [[False, True]] * len(by_sentence), transcript
        assert spoken_words(subtitles) == words(GREETING), transcript
        assert 1.0 <= rec.heard_s(after=mark) <= 4.0, transcript
        assert rec.rms_per_frame(after=mark).max() > 1000, f"the speech has no real energy\n{transcript}"
        assert not rec.nonsilent_frames(after=mark, before=subtitles[0].index), (
            f"audio before its subtitle\n{transcript}"
        )
        assert rec.errors == [], rec.errors  # every message a well-formed envelope

        session = await rec.describe_session()
        assert session["ConnectionState"] == "connected", session
        assert session["DataChannel"] == "open", session
        assert session["ChannelId"] == call.channel_id, session
        assert session["UserId"] == call.user_id, session


async def test_an_interrupting_speech_cuts_the_old_one_at_once(server, call):
    async with join(server, call) as rec:
        await joined(rec)
        mark = rec.mark()
        old_id = await say(server, call.instance_id, LONG)
        old_first = await rec.wait_for_message(MSG_AGENT_SUBTITLE, shows(LONG), after=mark, timeout_s=30)
        await rec.wait_for_speech(1.0, after=old_first.index, timeout_s=20)

        before = rec.mark()
        new_id = await say(server, call.instance_id, URGENT)
        cut = await rec.wait_for_message(MSG_SPEAKING_INTERRUPTED, after=before, timeout_s=20)
        new_first = await rec.wait_for_message(MSG_AGENT_SUBTITLE, shows(URGENT), after=before, timeout_s=30)
        new_done = await outcome_of(rec, new_id)
        old_done = await outcome_of(rec, old_id)
        await played_out(rec, new_done)

        transcript = rec.describe(after=mark)
        assert cut.data == {"reason": BY_SPEECH}, transcript
        assert cut.index < new_first.index, transcript
        leaked = rec.nonsilent_frames(after=cut.index, before=new_first.index)
        assert len(leaked) <= TRANSPORT_LAG_FRAMES, (
            f"{len(leaked)} frames of old audio after the cut\n{transcript}"
        )
        assert old_done.data["state"] == "interrupted", transcript
        assert len(words(old_done.data["heardText"])) < len(words(LONG)) / 2, transcript
        old_after_cut = [m for m in rec.messages(MSG_AGENT_SUBTITLE, after=cut.index) if not shows(URGENT)(m)]
        assert old_after_cut == [], f"subtitles of the cut speech after the cut\n{transcript}"
        assert new_done.data["state"] == "finished", transcript
        assert spoken_words(rec.messages(MSG_AGENT_SUBTITLE, after=cut.index)) == words(URGENT), transcript
        assert rec.heard_s(after=new_first.index, before=new_done.index) >= 0.8, transcript


async def test_appended_speeches_play_in_order(server, call):
    texts = ["First message.", "Second message.", "Third message."]
    async with join(server, call) as rec:
        await joined(rec)
        mark = rec.mark()
        ids = [await say(server, call.instance_id, text, EnableInterrupt="false") for text in texts]
        outcomes = [await outcome_of(rec, request_id) for request_id in ids]

        transcript = rec.describe(after=mark)
        assert [o.data["state"] for o in outcomes] == ["finished"] * 3, transcript
        assert rec.messages(MSG_SPEAKING_INTERRUPTED, after=mark) == [], transcript
        subtitles = rec.messages(MSG_AGENT_SUBTITLE, after=mark)
        assert spoken_words(subtitles) == words(" ".join(texts)), transcript
        starts = [next(m for m in subtitles if shows(text)(m)).index for text in texts]
        assert starts == sorted(starts), transcript
        assert [o.index for o in outcomes] == sorted(o.index for o in outcomes), transcript
        for text, begin, end in zip(texts, starts, [*starts[1:], outcomes[-1].index], strict=True):
            assert rec.heard_s(after=begin, before=end) >= 0.3, f"{text!r} not heard\n{transcript}"


# -- messages from the peer ----------------------------------------------------------------------------


async def test_1119_answers_the_state_to_the_asker_only(server, call):
    other = server.token(call.channel_id, "second-user")
    async with join(server, call) as rec, AudioRecorder(server.audio_url(call.channel_id, other)) as ws:
        await joined(rec)
        await joined(ws)
        rec_mark, ws_mark = rec.mark(), ws.mark()
        await rec.send_json({"type": 1119, "data": {}})
        answer = await rec.wait_for_message(MSG_AGENT_STATE, after=rec_mark, timeout_s=10)
        await ws.wait_for_frames(25, after=ws_mark)  # time for a stray answer to reach the other one

        assert answer.data == {"state": STATE_LISTENING}, rec.describe(after=rec_mark)
        assert ws.messages(MSG_AGENT_STATE, after=ws_mark) == [], ws.describe(after=ws_mark)


async def test_1101_cuts_the_speech_and_silences_the_agent(server, call):
    async with join(server, call) as rec:
        await joined(rec)
        mark = rec.mark()
        request_id = await say(server, call.instance_id, LONG)
        first = await rec.wait_for_message(MSG_AGENT_SUBTITLE, after=mark, timeout_s=30)
        await rec.wait_for_speech(0.5, after=first.index, timeout_s=20)

        await rec.send_json({"type": 1101, "data": {}})
        cut = await rec.wait_for_message(MSG_SPEAKING_INTERRUPTED, after=first.index, timeout_s=10)
        done = await outcome_of(rec, request_id)
        await rec.wait_for_frames(50, after=cut.index)  # a second more

        transcript = rec.describe(after=mark)
        assert cut.data == {"reason": BY_CLIENT}, transcript
        assert done.data["state"] == "interrupted", transcript
        leaked = rec.nonsilent_frames(after=cut.index)
        assert len(leaked) <= TRANSPORT_LAG_FRAMES, f"{len(leaked)} frames heard after the cut\n{transcript}"
        assert rec.messages(MSG_AGENT_SUBTITLE, after=cut.index) == [], transcript
        assert (await rec.wait_for_message(MSG_AGENT_STATE, is_listening, after=cut.index)).data["state"] == 1


async def test_1103_switches_the_voice_from_the_next_speech(server, api, call):
    text = "The voice of this agent changes now."
    async with join(server, call) as rec:
        await joined(rec)
        reference_mark = rec.mark()
        reference = await outcome_of(rec, await say(server, call.instance_id, text, VoiceId=ESPEAK))

        mark = rec.mark()
        await rec.send_json({"type": 1103, "data": {"voiceId": ESPEAK}})
        changed = await rec.wait_for_message(MSG_VOICE_CHANGED, after=mark, timeout_s=10)
        assert changed.data == {"voiceId": ESPEAK}, changed.raw

        next_mark = rec.mark()
        spoken = await outcome_of(rec, await say(server, call.instance_id, text))
        await played_out(rec, spoken)
        assert spoken.data["state"] == "finished", rec.describe(after=next_mark)
        ok, detail = same_speech(
            loudness(rec, after=reference_mark, before=reference.index + 10),
            loudness(rec, after=next_mark, before=spoken.index + 10),
        )
        assert ok, f"the next speech is not in the new voice: {detail}"
    instance = await api.adescribe(call.instance_id)
    assert instance.agent_config.tts_config.voice_id == ESPEAK


async def test_1103_with_an_unknown_voice_is_an_error_to_the_sender(server, api, call):
    async with join(server, call) as rec:
        await joined(rec)
        mark = rec.mark()
        await rec.send_json({"type": 1103, "data": {"voiceId": "no-such-voice"}})
        error = await rec.wait_for_message(MSG_ERROR, after=mark, timeout_s=10)
        await rec.wait_for_frames(10, after=error.index)

        assert error.data["code"] == "InvalidParameter", error.raw
        assert "no-such-voice" in error.data["message"], error.raw
        assert rec.messages(MSG_VOICE_CHANGED, after=mark) == [], rec.describe(after=mark)
    instance = await api.adescribe(call.instance_id)
    assert (
        instance.agent_config is None
        or instance.agent_config.tts_config is None
        or (instance.agent_config.tts_config.voice_id != "no-such-voice")
    )


async def test_a_malformed_message_gets_invalid_message_back(server, call):
    async with join(server, call) as rec:
        await joined(rec)
        mark = rec.mark()
        await rec.send_text("this is not JSON")
        error = await rec.wait_for_message(MSG_ERROR, after=mark, timeout_s=10)
        assert error.data["code"] == "InvalidMessage", error.raw
        await rec.send_json({"type": 1119, "data": {}})  # and the channel still works
        await rec.wait_for_message(MSG_AGENT_STATE, after=error.index, timeout_s=10)


async def test_1100_ends_the_instance(server, api, call):
    async with join(server, call) as rec:
        await joined(rec)
        mark = rec.mark()
        await rec.send_json({"type": 1100, "data": {}})
        leaving = await rec.wait_for_message(MSG_AGENT_WILL_LEAVE, after=mark, timeout_s=10)
        await rec.wait_until(lambda: rec.closed, timeout_s=10, what="the server ending the session")
        assert leaving.data.get("message") or leaving.data.get("reason") is not None, leaving.raw

    instance = await api.wait_status(call.instance_id, "Finished", timeout_s=10)
    assert instance.call_info.hangup_role == 1, "the user ended the call"


async def test_a_custom_message_reaches_webrtc_and_websocket_participants(server, api, call):
    other = server.token(call.channel_id, "second-user")
    async with join(server, call) as rec, AudioRecorder(server.audio_url(call.channel_id, other)) as ws:
        await joined(rec)
        await joined(ws)
        payload = json.dumps({"kind": "order", "id": 42, "note": "née ✓"}, ensure_ascii=False)
        await asyncio.to_thread(
            api.client.send_aiagent_data_channel_message,
            models.SendAIAgentDataChannelMessageRequest(instance_id=call.instance_id, message=payload),
        )
        for participant in (rec, ws):
            message = await participant.wait_for_message(MSG_CUSTOM, timeout_s=10)
            assert message.data == {"message": payload}, message.raw


# -- the peer's microphone -----------------------------------------------------------------------------


@pytest.mark.parametrize(("level", "loud"), [(0.3, True), (0.0, False)], ids=["tone", "silence"])
async def test_the_microphone_is_received(server, call, level, loud):
    async with join(server, call, microphone=ToneTrack(440.0, level)) as rec:
        await joined(rec)
        state: dict[str, Any] = {}

        async def received_a_second() -> bool:
            state.update(await rec.describe_session())
            return bool(state["Microphone"]["Frames"] >= 50)

        for _ in range(50):
            if await received_a_second():
                break
            await asyncio.sleep(0.1)
        microphone = state["Microphone"]
        assert microphone["Frames"] >= 50, state
        assert microphone["Seconds"] >= 1.0, state
        if loud:
            assert microphone["Rms"] > 1000, state  # a 0.3 full-scale tone is about 7000
        else:
            assert microphone["Rms"] < 100, state


# -- leaving and refusals ------------------------------------------------------------------------------


async def test_delete_leaves_and_the_session_is_gone(server, call):
    other = server.token(call.channel_id, "second-user")
    async with join(server, call) as rec:
        await joined(rec)
        url = rec.session_url
        assert re.fullmatch(rf".*/v1/calls/{call.channel_id}/webrtc/[^/]+", url), url
        async with httpx.AsyncClient(trust_env=False, timeout=10) as http:
            as_other = await http.get(url, headers={"Authorization": f"Bearer {other}"})
            assert as_other.status_code == 404, as_other.text
            assert_envelope(as_other.json(), "SessionNotFound")

            left = await http.delete(url, headers={"Authorization": f"Bearer {call.token}"})
            assert left.status_code == 200, left.text
            assert left.json().get("RequestId"), left.text

            await rec.wait_until(lambda: rec.closed, timeout_s=10, what="the session closing")
            gone = await http.get(url, headers={"Authorization": f"Bearer {call.token}"})
            assert gone.status_code == 404, gone.text
            assert_envelope(gone.json(), "SessionNotFound")


async def test_a_bad_token_is_refused_with_invalid_token(server, call):
    with pytest.raises(Refused) as refused:
        async with RtcRecorder(server.url, call.channel_id, call.token + "x"):
            pass
    assert (refused.value.status_code, refused.value.code) == (401, "InvalidToken"), refused.value
    assert refused.value.message, refused.value


async def test_an_unknown_channel_is_not_found(server):
    token = server.token("no-such-channel", "someone")
    refusal = await refused_offer(server.url, "no-such-channel", await offer_sdp(), token=token)
    assert refusal.status_code == 404, refusal.body
    assert_envelope(refusal.body, "ChannelNotFound")


@pytest.mark.parametrize(
    ("case", "status", "code", "named"),
    [
        ("not-sdp", 400, "InvalidParameter", "SDP"),
        ("no-audio", 400, "InvalidParameter", "SDP"),
        ("text/plain", 415, "UnsupportedMediaType", "Content-Type"),
        ("too-large", 413, "RequestTooLarge", ""),
        ("no-token", 400, "MissingParameter", ""),
    ],
)
async def test_bad_offers_are_refused_with_the_envelope(server, call, case, status, code, named):
    if case == "not-sdp":
        body = "this is not an SDP offer"
    else:
        body = await offer_sdp(audio=case != "no-audio")
        if case == "too-large":
            body += "a=x-padding:" + "x" * 70_000 + "\r\n"
    refusal = await refused_offer(
        server.url,
        call.channel_id,
        body,
        token=None if case == "no-token" else call.token,
        content_type="text/plain" if case == "text/plain" else "application/sdp",
    )
    assert refusal.status_code == status, refusal.body
    assert_envelope(refusal.body, code)
    assert named in refusal.body["Message"], refusal.body
