"""The audio WebSocket: who may join, the frame format at each rate, and real-time pacing."""

from __future__ import annotations

import asyncio

import pytest

from herald.testing.audio_client import (
    MSG_AGENT_STATE,
    MSG_AGENT_SUBTITLE,
    AudioRecorder,
    refused_upgrade,
)

pytestmark = pytest.mark.e2e

ENVELOPE_KEYS = {"RequestId", "HostId", "Code", "Message", "Recommend"}


def assert_envelope(refusal, status: int, code: str | None = None) -> None:
    assert refusal.status_code == status, refusal
    assert isinstance(refusal.body, dict), refusal
    assert refusal.body.keys() >= ENVELOPE_KEYS, refusal
    if code is not None:
        assert refusal.body["Code"] == code, refusal


@pytest.mark.parametrize(("rate", "samples"), [(8000, 160), (16000, 320), (24000, 480), (48000, 960)])
async def test_frames_have_20_ms_at_each_rate(server, call, rate, samples):
    async with AudioRecorder(server.audio_url(call.channel_id, call.token, rate)) as rec:
        frames = await rec.wait_for_frames(10, timeout_s=10)
    assert {f.samples for f in frames} == {samples}
    assert rec.errors == []


async def test_default_rate_is_16_khz(server, call):
    async with AudioRecorder(server.audio_url(call.channel_id, call.token)) as rec:
        frames = await rec.wait_for_frames(5)
    assert {len(f.pcm) for f in frames} == {320}


@pytest.mark.parametrize("rate", [8000, 48000])
async def test_frames_arrive_in_real_time(server, call, rate):
    async with AudioRecorder(server.audio_url(call.channel_id, call.token, rate)) as rec:
        await rec.wait_for_frames(5)
        start = rec.mark()
        await asyncio.sleep(2.5)
        frames = rec.frames(after=start)
    # Count what arrived over a 2 s window in the middle, away from start-up.
    t0 = frames[0].received_s + 0.25
    in_window = [f for f in frames if t0 <= f.received_s < t0 + 2.0]
    assert 80 <= len(in_window) <= 120, f"{len(in_window)} frames in 2 s, expected about 100"


async def test_state_message_right_after_joining(server, call):
    async with AudioRecorder(server.audio_url(call.channel_id, call.token)) as rec:
        state = await rec.wait_for_message(MSG_AGENT_STATE, timeout_s=5)
    assert state.data["state"] in (1, 2, 3)
    assert rec.message_errors == []


async def test_speech_is_heard_at_8_khz(server, api, call):
    async with AudioRecorder(server.audio_url(call.channel_id, call.token, 8000)) as rec:
        await rec.wait_for_message(MSG_AGENT_STATE, timeout_s=5)
        mark = rec.mark()
        await api.aspeak(call.instance_id, "Can you hear me on the phone line?")
        subtitle = await rec.wait_for_message(MSG_AGENT_SUBTITLE, after=mark, timeout_s=30)
        await rec.wait_for_speech(0.8, after=subtitle.index, timeout_s=20)
    assert rec.rms_per_frame(after=mark).max() > 1000
    assert rec.message_errors == []


async def test_bad_token_is_refused(server, call):
    assert_envelope(await refused_upgrade(server.audio_url(call.channel_id, "not-a-token")), 401)
    assert_envelope(await refused_upgrade(server.audio_url(call.channel_id, call.token + "x")), 401)


async def test_missing_token_is_refused(server, call):
    refusal = await refused_upgrade(f"{server.ws_url}/v1/calls/{call.channel_id}/audio")
    assert refusal.status_code in (400, 401), refusal
    assert_envelope(refusal, refusal.status_code)


async def test_token_of_another_channel_is_refused(server, api, call):
    other = api.generate_call()
    try:
        assert_envelope(await refused_upgrade(server.audio_url(other.channel_id, call.token)), 401)
    finally:
        api.stop(other.instance_id)


async def test_expired_token_is_refused(server, call):
    token = await asyncio.to_thread(server.token, call.channel_id, "late-user", expire_s=1)
    await asyncio.sleep(2.5)
    assert_envelope(await refused_upgrade(server.audio_url(call.channel_id, token)), 401)


async def test_channel_without_live_agent_is_not_found(server, api):
    token = await asyncio.to_thread(server.token, "no-agent-here", "someone")
    assert_envelope(await refused_upgrade(server.audio_url("no-agent-here", token)), 404, "ChannelNotFound")

    finished = api.generate_call()
    api.stop(finished.instance_id)
    assert_envelope(
        await refused_upgrade(server.audio_url(finished.channel_id, finished.token)), 404, "ChannelNotFound"
    )


@pytest.mark.parametrize("rate", ["11025", "0", "abc"])
async def test_unsupported_sample_rate_is_refused(server, call, rate):
    url = server.audio_url(call.channel_id, call.token) + f"&sample_rate={rate}"
    refusal = await refused_upgrade(url)
    assert 400 <= refusal.status_code < 500, refusal
    assert_envelope(refusal, refusal.status_code, "InvalidParameter")


async def test_the_token_may_come_in_an_authorization_header(server, call):
    """Keeps the token out of URLs (and so out of proxy logs)."""
    import websockets

    url = server.audio_url(call.channel_id, call.token).split("?")[0]
    headers = {"Authorization": f"Bearer {call.token}"}
    async with websockets.connect(url, additional_headers=headers, proxy=None, open_timeout=10) as ws:
        first = await asyncio.wait_for(ws.recv(), 5)
        assert isinstance(first, str)
        assert '"type":1001' in first
    bad = {"Authorization": "Bearer not-a-token"}
    with pytest.raises(websockets.InvalidStatus) as refused:
        await websockets.connect(url, additional_headers=bad, proxy=None, open_timeout=10)
    assert refused.value.response.status_code == 401


async def test_audio_is_not_deflated_even_when_the_client_offers_it(server, call):
    """PCM does not compress: deflating each frame would cost the server CPU for nothing."""
    import websockets

    url = server.audio_url(call.channel_id, call.token)
    async with websockets.connect(url, compression="deflate", proxy=None, open_timeout=10) as ws:
        assert ws.protocol.extensions == []
        frame = await asyncio.wait_for(ws.recv(), 5)
        assert frame is not None
