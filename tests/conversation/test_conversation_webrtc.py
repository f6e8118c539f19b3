"""A real conversation over WebRTC, end to end: an aiortc peer speaks (Piper's voice) into its microphone
track, the server hears it (Opus, Silero VAD, PocketSphinx), asks a scripted OpenAI-compatible LLM and
answers on the agent's track; and the user barges in over that track.

The WebSocket counterpart is ``test_conversation_voice.py``. As there, one server (with ``[llm]`` pointing
at one ``ScriptedLlm``) serves the module and each test has its own call. The microphone
(``SpeechTrack``) sends silence all the time, and the clips the test makes it say. Audio and messages
travel apart over WebRTC (RTP and SCTP) and the peer's jitter buffer holds a few packets, so agent audio
arrives some tens of milliseconds after the messages sent with it: bounds on audio after a message allow
for that.
"""

from __future__ import annotations

from collections.abc import Callable

import pytest
from talk_helpers import ANSWER, MSG_SPEECH_OUTCOME, WAIT_S, assistant, talk_over_webrtc, user

from herald.conversation.history import INTERRUPTED_MARK
from herald.speech.piper_engine import PiperEngine
from herald.speech.tts import VoiceSettings
from herald.testing.audio_client import (
    MSG_AGENT_STATE,
    MSG_AGENT_SUBTITLE,
    MSG_SPEAKING_INTERRUPTED,
    MSG_USER_SUBTITLE,
    STATE_SPEAKING,
    STATE_THINKING,
    Pcm,
)
from herald.testing.llm_server import Reply, ScriptedLlm
from herald.testing.server import HeraldServer
from herald.testing.transcript import words

pytestmark = pytest.mark.e2e

REASON_VOICE = 2
LEAK_MS = 300
"""Old agent audio allowed after a cut message: the frame or two of the cut, plus what RTP and the peer's
jitter buffer still hold."""

# PocketSphinx hears these right in (nearly) every take of Piper's voice (docs/listening.md); the tests
# assert only the words listed with them.
QUESTION = "What time is it?"
WEATHER = "Tell me about the weather."

STORY = (
    "Once upon a time there was a lighthouse keeper who lived alone on a small rocky island. "
    "Every evening he climbed the long spiral staircase to light the great lamp at the top. "
    "Ships passing in the night saw the beam sweep across the water and steered clear of the rocks. "
    "One stormy winter a small boat lost its way and drifted towards the island in the dark."
)


# ---- fixtures ------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def say() -> Callable[[str], Pcm]:
    """``say(text)``: Piper (Herald's own voice) speaking ``text``, 48 kHz (WebRTC's rate), one take."""
    engine = PiperEngine.load()
    voice = VoiceSettings(voice_id=engine.voice_ids[0])
    clips = {text: engine.synthesize(text, voice) for text in (QUESTION, WEATHER)}
    return clips.__getitem__


talk = talk_over_webrtc


# ---- the tests -----------------------------------------------------------------------------------------


async def test_the_agent_hears_a_question_on_the_microphone_track_and_answers_aloud(
    server: HeraldServer, fresh_llm: ScriptedLlm, say: Callable[[str], Pcm]
) -> None:
    async with talk(server, fresh_llm) as t:
        rec = t.rec
        mark = rec.mark()
        spoken = await t.mic.say(say(QUESTION))

        heard = await t.hear(after=mark)
        text = heard.data["text"]
        assert {"what", "time"} <= set(words(text)), heard.data
        # While the user spoke, what was heard so far showed as partial subtitles of the same sentence.
        partials = [m for m in rec.messages(MSG_USER_SUBTITLE, after=mark) if m.index < heard.index]
        assert partials, "no partial subtitle before the final one"
        assert {m.data["sentenceId"] for m in partials} == {heard.data["sentenceId"]}
        assert all(m.data["end"] is False and m.data["text"] for m in partials)
        request = await t.llm_request(0)
        assert request.messages[-1] == user(text), request.messages

        outcome = await t.next_message(MSG_SPEECH_OUTCOME, after=heard.index)
        assert (outcome.data["state"], outcome.data["heardText"]) == ("finished", ANSWER), outcome.data
        states = [m.data["state"] for m in rec.messages(MSG_AGENT_STATE, after=heard.index)]
        assert {STATE_THINKING, STATE_SPEAKING} <= set(states), states
        assert states.index(STATE_THINKING) < states.index(STATE_SPEAKING), states
        said = [m.data["text"] for m in rec.messages(MSG_AGENT_SUBTITLE, after=mark) if m.data["end"]]
        assert " ".join(said) == ANSWER, said
        await rec.wait_for_speech(1.0, after=heard.index, timeout_s=WAIT_S)  # the answer, heard
        first_audio = rec.nonsilent_frames(after=heard.index)[0]
        ended_s = spoken.voice_ended_s
        print(
            f"\nover WebRTC, end of the user's voice → 1003: {(heard.received_s - ended_s) * 1000:.0f} ms, "
            f"→ LLM request: {(request.received_s - ended_s) * 1000:.0f} ms, "
            f"→ first audible answer: {(first_audio.received_s - ended_s) * 1000:.0f} ms"
        )


async def test_the_user_barges_in_on_the_microphone_track_and_the_history_keeps_what_was_heard(
    server: HeraldServer, fresh_llm: ScriptedLlm, say: Callable[[str], Pcm]
) -> None:
    fresh_llm.script(Reply(STORY, chunk_chars=40))
    async with talk(server, fresh_llm, {"LlmConfig": {"HistorySyncWithTTS": True}}) as t:
        rec = t.rec
        mark = rec.mark()
        await t.send_text("Tell me a story.")
        first = await t.next_message(MSG_AGENT_SUBTITLE, after=mark)
        await rec.wait_for_speech(1.0, after=first.index - 1, timeout_s=WAIT_S)

        barge = rec.mark()
        spoken_task = t.mic.say(say(WEATHER))
        cut = await t.next_message(MSG_SPEAKING_INTERRUPTED, after=barge)
        assert cut.data["reason"] == REASON_VOICE, cut.data
        story = (await t.next_message(MSG_SPEECH_OUTCOME, after=mark)).data
        spoken = await spoken_task
        assert story["state"] == "interrupted", story
        heard_words = words(story["heardText"])
        assert 0 < len(heard_words) < len(words(STORY)), story
        assert heard_words == words(STORY)[: len(heard_words)], story

        heard = await t.hear(after=barge)
        assert "weather" in words(heard.data["text"]), heard.data
        request = await t.llm_request(1)
        assert request.messages[0] == user("Tell me a story."), request.messages
        assert request.messages[-2:] == [
            assistant(story["heardText"] + INTERRUPTED_MARK),
            user(heard.data["text"]),
        ], request.messages

        answer = await t.next_message(MSG_AGENT_SUBTITLE, after=cut.index)
        leaked_ms = rec.heard_s(after=cut.index, before=answer.index) * 1000
        print(
            f"\nbarge-in over WebRTC: 1016 {(cut.received_s - spoken.voice_started_s) * 1000:.0f} ms after "
            f"the user's voice began; audible old audio after it: {leaked_ms:.0f} ms"
        )
        assert leaked_ms <= LEAK_MS, rec.describe(after=barge)
        assert len(rec.messages(MSG_SPEAKING_INTERRUPTED, after=mark)) == 1, rec.describe(after=mark)
        reply = await t.next_message(MSG_SPEECH_OUTCOME, after=answer.index)
        assert (reply.data["state"], reply.data["heardText"]) == ("finished", ANSWER), reply.data
