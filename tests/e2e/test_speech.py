"""Pushed speech as a caller hears it: SendAIAgentSpeech through the SDK, audio through the WebSocket."""

from __future__ import annotations

import re
import time

import pytest

from herald.testing.audio_client import (
    INTERRUPTED_BY_SPEECH,
    MSG_AGENT_STATE,
    MSG_AGENT_SUBTITLE,
    MSG_SPEAKING_INTERRUPTED,
    STATE_LISTENING,
    STATE_SPEAKING,
    AudioRecorder,
    DataMessage,
)

pytestmark = pytest.mark.e2e

GREETING = "Hello, welcome to use our service"
LONG = (
    "This is a long announcement about our service. "
    "It has several sentences, so that it takes a good while to say. "
    "The third sentence talks about the weather, which is lovely today. "
    "The fourth sentence is about trains that always leave on time. "
    "And the last sentence thanks you very much for listening to all of this."
)
URGENT = "Sorry to interrupt, here is an urgent update."


def words(text: str) -> str:
    """Compare texts by their words only: subtitles may be cut and re-joined with other spacing."""
    return " ".join(re.findall(r"[\w']+", text.lower()))


def is_state(state: int):
    return lambda m: m.data.get("state") == state


def subtitle_of(text: str):
    """A 1002 message whose text belongs to ``text``."""
    return lambda m: bool(words(m.data.get("text", ""))) and words(m.data.get("text", "")) in words(text)


def pieces(subtitles: list[DataMessage]) -> dict[object, list[DataMessage]]:
    """Subtitle messages grouped by sentenceId, in order of first appearance."""
    grouped: dict[object, list[DataMessage]] = {}
    for message in subtitles:
        grouped.setdefault(message.data.get("sentenceId"), []).append(message)
    return grouped


def spoken_text(subtitles: list[DataMessage]) -> str:
    """The text the subtitles show: the latest text of each piece (a piece may be updated), in order."""
    return words(" ".join(group[-1].data.get("text", "") for group in pieces(subtitles).values()))


async def joined(rec: AudioRecorder) -> None:
    """Wait for the state message sent right after joining, then for Listening."""
    await rec.wait_for_message(MSG_AGENT_STATE, timeout_s=10)
    await rec.wait_for_message(MSG_AGENT_STATE, is_state(STATE_LISTENING), timeout_s=10)


async def test_pushed_speech_is_heard(server, api, call):
    async with AudioRecorder(server.audio_url(call.channel_id, call.token)) as rec:
        await joined(rec)
        await api.wait_status(call.instance_id, "Executing")

        mark = rec.mark()
        request_id = await api.aspeak(call.instance_id, GREETING, enable_interrupt=False)
        assert request_id

        speaking = await rec.wait_for_message(
            MSG_AGENT_STATE, is_state(STATE_SPEAKING), after=mark, timeout_s=30
        )
        first = await rec.wait_for_message(MSG_AGENT_SUBTITLE, after=mark, timeout_s=30)
        listening = await rec.wait_for_message(
            MSG_AGENT_STATE, is_state(STATE_LISTENING), after=speaking.index, timeout_s=30
        )
        await rec.wait_for_frames(25, after=listening.index)  # half a second more, to see that it stays quiet

        transcript = rec.describe(after=mark)
        heard_s = rec.heard_s(after=mark)
        assert 1.0 <= heard_s <= 4.0, transcript
        assert rec.rms_per_frame(after=mark).max() > 1000, "the speech has no real energy"
        subtitles = rec.messages(MSG_AGENT_SUBTITLE, after=mark)
        assert spoken_text(subtitles) == words(GREETING), transcript
        assert subtitles[-1].data.get("end") is True, transcript
        assert not rec.nonsilent_frames(after=mark, before=first.index), (
            "audio before its subtitle\n" + transcript
        )
        assert len(rec.nonsilent_frames(after=listening.index)) <= 2, (
            "still speaking after Listening\n" + transcript
        )
        assert rec.message_errors == []  # frame sizes: test_audio_socket

        instance = await api.adescribe(call.instance_id)
        assert instance.status == "Executing"
        assert instance.call_info.call_start_time


async def test_interrupting_speech_cuts_the_current_one(server, api, call):
    async with AudioRecorder(server.audio_url(call.channel_id, call.token)) as rec:
        await joined(rec)
        mark = rec.mark()
        sent_s = time.monotonic()
        await api.aspeak(call.instance_id, LONG)
        assert time.monotonic() - sent_s < 2.0, "SendAIAgentSpeech waited for the speech to play"
        old_first = await rec.wait_for_message(MSG_AGENT_SUBTITLE, after=mark, timeout_s=30)
        await rec.wait_for_speech(1.0, after=old_first.index, timeout_s=20)

        before_interrupt = rec.mark()
        await api.aspeak(call.instance_id, URGENT, enable_interrupt=True)
        interrupted = await rec.wait_for_message(
            MSG_SPEAKING_INTERRUPTED, after=before_interrupt, timeout_s=20
        )
        new_first = await rec.wait_for_message(
            MSG_AGENT_SUBTITLE, subtitle_of(URGENT), after=before_interrupt, timeout_s=30
        )
        listening = await rec.wait_for_message(
            MSG_AGENT_STATE, is_state(STATE_LISTENING), after=new_first.index, timeout_s=30
        )
        await rec.wait_for_frames(25, after=listening.index)

        transcript = rec.describe(after=mark)
        assert interrupted.data.get("reason") == INTERRUPTED_BY_SPEECH, transcript
        assert interrupted.index < new_first.index, transcript
        leaked = rec.nonsilent_frames(after=interrupted.index, before=new_first.index)
        assert len(leaked) <= 1, f"{len(leaked)} frames of the old speech after the interrupt\n{transcript}"

        old_heard_s = rec.heard_s(after=old_first.index, before=interrupted.index)
        assert 0.8 <= old_heard_s <= 4.0, f"heard {old_heard_s:.2f} s of a ~12 s speech\n{transcript}"
        old_text = spoken_text(rec.messages(MSG_AGENT_SUBTITLE, after=mark, before=interrupted.index))
        assert len(old_text) < len(words(LONG)) / 2, f"the long speech was not cut\n{transcript}"
        late = [
            m for m in rec.messages(MSG_AGENT_SUBTITLE, after=interrupted.index) if not subtitle_of(URGENT)(m)
        ]
        assert late == [], f"subtitles of the interrupted speech after the interrupt\n{transcript}"

        new_subtitles = rec.messages(MSG_AGENT_SUBTITLE, after=interrupted.index)
        assert spoken_text(new_subtitles) == words(URGENT), transcript
        assert new_subtitles[-1].data.get("end") is True
        assert 1.0 <= rec.heard_s(after=new_first.index - 1, before=listening.index) <= 5.0, transcript
        assert rec.message_errors == []  # frame sizes: test_audio_socket


APPENDED = ["First message.", "Second message.", "Third message."]


async def test_appended_speeches_play_in_order(server, api, call):
    async with AudioRecorder(server.audio_url(call.channel_id, call.token)) as rec:
        await joined(rec)
        mark = rec.mark()
        for text in APPENDED:
            await api.aspeak(call.instance_id, text, enable_interrupt=False)

        last = await rec.wait_for_message(
            MSG_AGENT_SUBTITLE, subtitle_of(APPENDED[-1]), after=mark, timeout_s=40
        )
        listening = await rec.wait_for_message(
            MSG_AGENT_STATE, is_state(STATE_LISTENING), after=last.index, timeout_s=30
        )
        await rec.wait_for_frames(25, after=listening.index)

        transcript = rec.describe(after=mark)
        assert rec.messages(MSG_SPEAKING_INTERRUPTED, after=mark) == [], transcript
        subtitles = rec.messages(MSG_AGENT_SUBTITLE, after=mark)
        assert spoken_text(subtitles) == words(" ".join(APPENDED)), transcript
        assert subtitles[-1].data.get("end") is True, transcript

        # Each speech is heard after its own subtitle and before the next one's.
        starts = [next(m for m in subtitles if subtitle_of(text)(m)).index for text in APPENDED]
        assert starts == sorted(starts), transcript
        bounds = [*starts, listening.index]
        for text, begin, end in zip(APPENDED, bounds, bounds[1:], strict=False):
            assert rec.heard_s(after=begin, before=end) >= 0.3, f"{text!r} not heard\n{transcript}"

        segments = rec.speech_segments(min_gap_s=0.06, after=mark, before=listening.index)
        assert len(segments) >= len(APPENDED), transcript
        assert rec.message_errors == []  # frame sizes: test_audio_socket


async def test_interrupt_drops_queued_speeches(server, api, call):
    queued = ["Number one is playing now.", "Number two waits in the queue.", "Number three waits too."]
    async with AudioRecorder(server.audio_url(call.channel_id, call.token)) as rec:
        await joined(rec)
        mark = rec.mark()
        for text in queued:
            await api.aspeak(call.instance_id, text, enable_interrupt=False)
        first = await rec.wait_for_message(
            MSG_AGENT_SUBTITLE, subtitle_of(queued[0]), after=mark, timeout_s=30
        )
        await rec.wait_for_speech(0.3, after=first.index)

        await api.aspeak(call.instance_id, URGENT)
        new_first = await rec.wait_for_message(
            MSG_AGENT_SUBTITLE, subtitle_of(URGENT), after=mark, timeout_s=30
        )
        listening = await rec.wait_for_message(
            MSG_AGENT_STATE, is_state(STATE_LISTENING), after=new_first.index, timeout_s=30
        )
        await rec.wait_for_frames(50, after=listening.index)  # a second for any dropped speech to show up

        transcript = rec.describe(after=mark)
        dropped = [
            m
            for m in rec.messages(MSG_AGENT_SUBTITLE, after=mark)
            if subtitle_of(queued[1])(m) or subtitle_of(queued[2])(m)
        ]
        assert dropped == [], f"queued speeches were played after the interrupt\n{transcript}"
        assert rec.messages(MSG_SPEAKING_INTERRUPTED, after=first.index, before=new_first.index), transcript
        assert spoken_text(rec.messages(MSG_AGENT_SUBTITLE, after=new_first.index - 1)) == words(URGENT)
        assert len(rec.nonsilent_frames(after=listening.index)) <= 2, transcript
        assert rec.message_errors == []  # frame sizes: test_audio_socket


async def test_each_sentence_is_captioned_when_it_starts_and_closed_when_it_has_played(server, api, call):
    """ICE's subtitles: per sentence, ``end: false`` as its audio starts, ``end: true`` once played."""
    async with AudioRecorder(server.audio_url(call.channel_id, call.token)) as rec:
        await joined(rec)
        mark = rec.mark()
        await api.aspeak(call.instance_id, "First sentence here. And a second one.")
        speaking = await rec.wait_for_message(
            MSG_AGENT_STATE, is_state(STATE_SPEAKING), after=mark, timeout_s=30
        )
        await rec.wait_for_message(
            MSG_AGENT_STATE, is_state(STATE_LISTENING), after=speaking.index, timeout_s=30
        )

        transcript = rec.describe(after=mark)
        subtitles = rec.messages(MSG_AGENT_SUBTITLE, after=mark)
        groups = list(pieces(subtitles).values())
        assert len(groups) >= 2, f"two sentences, one caption each\n{transcript}"
        for group in groups:
            assert [m.data.get("end") for m in group] == [False, True], transcript
            assert group[0].data.get("text") == group[1].data.get("text"), transcript
            opened, closed = group
            heard = rec.nonsilent_frames(after=opened.index, before=closed.index)
            assert heard, f"no audio between the opening and closing of {opened.raw}\n{transcript}"
        # Sentences follow one another: each closes before the next opens.
        order = [(m.data.get("sentenceId"), m.data.get("end")) for m in subtitles]
        expected = []
        for group in groups:
            expected += [(group[0].data["sentenceId"], False), (group[0].data["sentenceId"], True)]
        assert order == expected, transcript
