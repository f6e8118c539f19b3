"""The conversation's decisions, with fakes for the ears, the LLM and the live instance: barge-in, protected
speech, interrupt words, turns superseding turns, fillers, apologies, and prompting an idle user."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

import pytest

from herald.agents.settings import AgentConfigModel
from herald.conversation.history import INTERRUPTED_MARK
from herald.conversation.loop import ASR_FAILED_CODE, LLM_FAILED_CODE, Conversation, ListeningServices, Phase
from herald.conversation.settings import conversation_settings
from herald.media.messages import InterruptReason, MessageType
from herald.speech.handle import Outcome, SpeechHandle, UtteranceState
from herald.speech.tts import Synthesizer
from herald.testing.clock import VirtualClock
from herald.testing.conversation import (
    LOUD,
    QUIET,
    LoudnessModel,
    RecordingSpeaker,
    ScriptedChat,
    ScriptedRecognizer,
)
from herald.testing.tts import ToneEngine


class Rig:
    def __init__(self, config: dict[str, Any], chat: ScriptedChat, recognizer: ScriptedRecognizer) -> None:
        self.clock = VirtualClock()
        self.speaker = RecordingSpeaker()
        self.chat = chat
        self.recognizer = recognizer
        self.synthesizer = Synthesizer(ToneEngine(), workers=1)
        services = ListeningServices(
            vad=LoudnessModel(), recognizer=recognizer, synthesizer=self.synthesizer, default_llm=chat
        )
        settings = conversation_settings(AgentConfigModel.model_validate(config))
        self.conversation = Conversation(self.speaker, services, settings, self.clock)

    def talk(self, ms: int, participant: int = 1) -> None:
        for _ in range(ms // 20):
            self.conversation.hear(participant, LOUD)

    def pause(self, ms: int, participant: int = 1) -> None:
        for _ in range(ms // 20):
            self.conversation.hear(participant, QUIET)

    def playing(self, *, protected: bool = False) -> SpeechHandle:
        handle = SpeechHandle("pushed", "a long announcement", protected=protected)
        handle.move_to(UtteranceState.SPEAKING)
        self.speaker.playing = handle
        return handle

    def end(self, index: int, state: UtteranceState, heard: str) -> None:
        """The ``index``-th utterance asked for ends: ``state``, with ``heard`` heard of it."""
        said = self.speaker.said[index]
        if self.speaker.playing is said.handle:
            self.speaker.playing = None
        self.conversation.utterance_ended(said.request, Outcome(state, 1000, heard))

    def end_pushed(self, handle: SpeechHandle) -> None:
        from herald.agents.requests import SpeechRequest

        self.speaker.playing = None
        self.conversation.utterance_ended(
            SpeechRequest(handle.utterance_id, handle.text),
            Outcome(UtteranceState.FINISHED, 1000, handle.text),
        )

    def message_texts(self, msg_type: MessageType) -> list[Any]:
        return [data for kind, data in self.speaker.messages if kind is msg_type]


@pytest.fixture
async def rig_for() -> AsyncIterator[Any]:
    made: list[Rig] = []

    def make(
        config: dict[str, Any] | None = None,
        *,
        replies: list[str] | None = None,
        heard: list[str] | None = None,
        streaming: bool = False,
    ) -> Rig:
        recognizer = ScriptedRecognizer(*(heard or []), streaming=streaming)
        made.append(Rig(config or {}, ScriptedChat(replies=list(replies or [])), recognizer))
        return made[-1]

    yield make
    for rig in made:
        await rig.conversation.close()
        rig.synthesizer.close()


async def settle() -> None:
    for _ in range(20):
        await asyncio.sleep(0)


async def test_a_user_turn_is_answered_as_one_streamed_utterance_and_remembered_as_heard(
    rig_for: Any,
) -> None:
    rig = rig_for({"LlmConfig": {"LlmSystemPrompt": "Be brief."}}, replies=["It is three. Anything else?"])
    round_id = rig.conversation.user_turn("What time is it?", interrupt=None)
    assert rig.conversation.phase is Phase.THINKING
    assert rig.speaker.thinking
    await settle()
    assert [(m.role, m.content) for m in rig.chat.requests[0]] == [
        ("system", "Be brief."),
        ("user", "What time is it?"),
    ]
    assert rig.speaker.turns == [(round_id, "What time is it?")]
    [answer] = rig.speaker.said
    assert answer.streamed
    assert answer.request.round_id == round_id
    assert rig.message_texts(MessageType.LLM_REPLY_COMPLETED) == [
        {"text": "It is three. Anything else?", "sentenceId": round_id}
    ]
    assert rig.conversation.phase is Phase.ANSWERING
    rig.end(0, UtteranceState.FINISHED, "It is three. Anything else?")
    assert rig.conversation.phase is Phase.LISTENING
    assert not rig.speaker.thinking
    assert rig.conversation.history.messages[-1].content == "It is three. Anything else?"


async def test_the_users_voice_barges_in_once_per_utterance_and_the_cut_answer_is_remembered_cut(
    rig_for: Any,
) -> None:
    rig = rig_for(
        {"LlmConfig": {"HistorySyncWithTTS": True}},
        replies=["Once upon a time there was a king."],
        heard=["stop"],
    )
    rig.conversation.user_turn("Tell me a story.", interrupt=None)
    await settle()
    rig.speaker.playing = rig.speaker.said[0].handle
    rig.pause(200)
    rig.talk(400)
    assert rig.speaker.interrupts == [(InterruptReason.BY_VOICE, True)]
    rig.end(0, UtteranceState.INTERRUPTED, "Once upon a")
    assert rig.conversation.history.messages[-1].content == f"Once upon a{INTERRUPTED_MARK}"
    rig.pause(600)
    await settle()
    assert rig.chat.requests[-1][-1].content == "stop"  # what they said is the next turn


async def test_a_protected_speech_is_not_cut_and_the_words_over_it_wait_for_its_end(rig_for: Any) -> None:
    rig = rig_for(replies=["Sure."], heard=["can you repeat that"])
    pushed = rig.playing(protected=True)
    rig.talk(600)
    rig.pause(600)
    await settle()
    assert rig.speaker.interrupts == []
    assert rig.chat.requests == []  # held while the protected speech plays
    rig.end_pushed(pushed)
    await settle()
    assert rig.chat.requests[0][-1].content == "can you repeat that"


async def test_words_over_a_protected_speech_are_dropped_with_no_interrupt_mode_discard(rig_for: Any) -> None:
    rig = rig_for({"InterruptConfig": {"NoInterruptMode": "discard"}}, heard=["hello"])
    pushed = rig.playing(protected=True)
    rig.talk(600)
    rig.pause(600)
    await settle()
    rig.end_pushed(pushed)
    await settle()
    assert rig.chat.requests == []


async def test_vad_duration_needs_that_much_speech_to_barge_in(rig_for: Any) -> None:
    rig = rig_for({"AsrConfig": {"VadDuration": 600}})
    rig.playing()
    rig.talk(400)
    assert rig.speaker.interrupts == []
    rig.talk(300)
    assert rig.speaker.interrupts == [(InterruptReason.BY_VOICE, True)]


@pytest.mark.parametrize(
    "config",
    [{"AsrConfig": {"VadLevel": 0}}, {"InterruptConfig": {"EnableVoiceInterrupt": False}}],
    ids=["VadLevel 0", "EnableVoiceInterrupt false"],
)
async def test_voice_barge_in_can_be_turned_off(rig_for: Any, config: dict[str, Any]) -> None:
    rig = rig_for(config)
    rig.playing()
    rig.talk(800)
    assert rig.speaker.interrupts == []


async def test_other_words_over_the_agent_wait_when_voice_interruption_is_off(rig_for: Any) -> None:
    rig = rig_for({"InterruptConfig": {"EnableVoiceInterrupt": False}}, heard=["good morning"])
    pushed = rig.playing()
    rig.talk(600)
    rig.pause(600)
    await settle()
    assert rig.speaker.interrupts == []
    assert rig.chat.requests == []
    rig.end_pushed(pushed)
    await settle()
    assert rig.chat.requests[0][-1].content == "good morning"


async def test_an_interrupt_word_cuts_and_is_left_out_of_the_turn(rig_for: Any) -> None:
    config = {"InterruptConfig": {"EnableVoiceInterrupt": False, "InterruptWords": ["hold on"]}}
    rig = rig_for(config, heard=["Hold on, what time is it?"])
    rig.playing()
    rig.talk(600)
    rig.pause(600)
    await settle()
    assert rig.speaker.interrupts[0] == (InterruptReason.BY_WORDS, True)
    assert rig.chat.requests[0][-1].content == "what time is it?"
    assert rig.message_texts(MessageType.USER_SUBTITLE)[0]["text"] == "Hold on, what time is it?"


async def test_a_new_turn_supersedes_an_answer_still_being_thought(rig_for: Any) -> None:
    rig = rig_for(replies=["first answer", "second answer"])
    rig.chat.gate = asyncio.Event()
    rig.conversation.user_turn("first", interrupt=None)
    await settle()
    rig.conversation.user_turn("second", interrupt=InterruptReason.BY_LLM_QUERY)
    rig.chat.gate.set()
    await settle()
    assert [s.request.round_id is not None for s in rig.speaker.said] == [True]
    assert rig.message_texts(MessageType.LLM_REPLY_COMPLETED)[0]["text"] == "first answer"  # the one left


async def test_a_failing_llm_is_reported_and_the_agent_apologises_and_keeps_listening(rig_for: Any) -> None:
    config = {"AutoSpeechConfig": {"Apology": {"Messages": [{"Text": "Sorry, say again?"}]}}}
    rig = rig_for(config)
    rig.chat.fail = "HTTP 500: overloaded"
    rig.conversation.user_turn("hi", interrupt=None)
    await settle()
    assert rig.speaker.errors[0][0] == LLM_FAILED_CODE
    assert "overloaded" in rig.speaker.errors[0][1]
    assert rig.speaker.texts() == ["Sorry, say again?"]
    assert rig.conversation.phase is Phase.LISTENING


async def test_a_failing_recogniser_is_reported_and_the_agent_apologises(rig_for: Any) -> None:
    rig = rig_for()
    rig.recognizer.fail = "the service answered HTTP 503"
    rig.talk(400)
    rig.pause(600)
    await settle()
    assert rig.speaker.errors[0][0] == ASR_FAILED_CODE
    assert len(rig.speaker.said) == 1
    assert not rig.speaker.said[0].streamed


async def test_a_slow_llm_gets_a_filler_then_the_answer(rig_for: Any) -> None:
    config = {"AutoSpeechConfig": {"LlmPending": {"WaitTime": 1000, "Messages": [{"Text": "Let me see."}]}}}
    rig = rig_for(config, replies=["Here it is."])
    rig.chat.gate = asyncio.Event()
    rig.conversation.user_turn("find my order", interrupt=None)
    await settle()
    await rig.clock.advance(900_000_000)
    assert rig.speaker.said == []
    await rig.clock.advance(200_000_000)
    await settle()
    assert rig.speaker.texts() == ["Let me see."]
    rig.chat.gate.set()
    await settle()
    assert [s.streamed for s in rig.speaker.said] == [False, True]


async def test_an_idle_user_is_prompted_then_hung_up_on(rig_for: Any) -> None:
    idle = {"WaitTime": 5000, "MaxRepeats": 1, "Messages": [{"Text": "Are you still there?"}]}
    rig = rig_for({"AutoSpeechConfig": {"UserIdle": idle}})
    rig.conversation.on_second()
    assert rig.speaker.said == []  # nobody has joined: nobody is idle
    rig.conversation.joined()
    await rig.clock.advance(4_000_000_000)
    rig.conversation.on_second()
    assert rig.speaker.said == []
    await rig.clock.advance(1_500_000_000)
    rig.conversation.on_second()
    assert rig.speaker.texts() == ["Are you still there?"]
    rig.end(0, UtteranceState.FINISHED, "Are you still there?")
    await rig.clock.advance(5_500_000_000)
    rig.conversation.on_second()
    assert rig.speaker.hung_up
    assert "UserIdle" in rig.speaker.hung_up[0]


async def test_speaking_resets_the_idle_count(rig_for: Any) -> None:
    idle = {"WaitTime": 5000, "MaxRepeats": 1, "Messages": [{"Text": "Hello?"}]}
    rig = rig_for({"AutoSpeechConfig": {"UserIdle": idle}}, heard=["yes"])
    rig.conversation.joined()
    await rig.clock.advance(5_500_000_000)
    rig.conversation.on_second()
    rig.end(0, UtteranceState.FINISHED, "Hello?")
    rig.talk(400)
    rig.pause(600)
    await settle()
    rig.end(1, UtteranceState.FINISHED, "OK.")  # the answer to "yes"
    await rig.clock.advance(5_500_000_000)
    rig.conversation.on_second()
    assert rig.speaker.hung_up == []
    assert rig.speaker.texts()[-1] == "Hello?"


async def test_what_is_heard_so_far_is_shown_while_the_user_speaks(rig_for: Any) -> None:
    """A streaming recogniser: ``1003`` with ``end: false`` as the words come, then the final one with the
    same ``sentenceId``; the turn is the final text."""
    rig = rig_for(replies=["Three."], heard=["what time is it"], streaming=True)
    rig.pause(100)
    rig.talk(600)
    partials = rig.message_texts(MessageType.USER_SUBTITLE)
    assert partials
    assert all(not p["end"] for p in partials)
    assert [p["text"] for p in partials][-1] == "what time is it"
    assert rig.chat.requests == []  # nothing is answered before the utterance ends
    rig.pause(600)
    await settle()
    final = rig.message_texts(MessageType.USER_SUBTITLE)[-1]
    assert final == {"text": "what time is it", "sentenceId": partials[0]["sentenceId"], "end": True}
    assert {p["sentenceId"] for p in partials} == {final["sentenceId"]}
    assert rig.speaker.turns[0][1] == "what time is it"
    [stream] = rig.recognizer.streams
    assert stream.finished
    assert stream.samples == rig.recognizer.heard[0] > 0  # all the utterance went to the stream


async def test_an_utterance_heard_as_nothing_closes_its_partial_subtitles(rig_for: Any) -> None:
    rig = rig_for(heard=["mm"], streaming=True)
    rig.talk(400)
    rig.recognizer.texts = [""]  # the final hypothesis is empty after all
    rig.pause(600)
    await settle()
    subtitles = rig.message_texts(MessageType.USER_SUBTITLE)
    assert subtitles[-1] == {"text": "", "sentenceId": subtitles[0]["sentenceId"], "end": True}
    assert rig.speaker.turns == []


async def test_a_partial_shown_as_the_utterance_ends_is_closed_by_its_final_even_empty(rig_for: Any) -> None:
    """The stream's last partial may come while it finishes (PocketSphinx decodes the audio's tail then):
    the final ``1003`` must still close it, however late the partial was shown."""
    rig = rig_for(heard=[""], streaming=True)  # nothing heard while the user speaks: no partial yet
    rig.talk(400)
    assert rig.message_texts(MessageType.USER_SUBTITLE) == []
    [stream] = rig.recognizer.streams
    stream.partial_at_finish = "mm"
    rig.pause(600)
    await settle()
    partial, final = rig.message_texts(MessageType.USER_SUBTITLE)
    assert partial == {"text": "mm", "sentenceId": partial["sentenceId"], "end": False}
    assert final == {"text": "", "sentenceId": partial["sentenceId"], "end": True}
    assert rig.speaker.turns == []


async def test_a_recognition_failure_closes_the_partials_shown_then_apologises(rig_for: Any) -> None:
    rig = rig_for(heard=["what time is it"], streaming=True)
    rig.talk(400)
    rig.recognizer.fail = "the worker process stopped"
    rig.pause(600)
    await settle()
    subtitles = rig.message_texts(MessageType.USER_SUBTITLE)
    assert subtitles[0]["end"] is False
    assert subtitles[-1] == {"text": "", "sentenceId": subtitles[0]["sentenceId"], "end": True}
    assert rig.speaker.errors[0][0] == ASR_FAILED_CODE
    assert len(rig.speaker.said) == 1  # the apology
    assert rig.speaker.turns == []


async def test_a_speaker_who_leaves_mid_sentence_is_not_recognised(rig_for: Any) -> None:
    rig = rig_for(heard=["what time is it"], streaming=True)
    rig.talk(400)
    rig.conversation.forget(1)
    await settle()
    [stream] = rig.recognizer.streams
    assert stream.cancelled
    assert not stream.finished
    assert rig.speaker.turns == []


async def test_without_listening_microphones_are_ignored_and_typed_turns_answered() -> None:
    """``[asr] engine = "off"``: no voice activity, no recognition, no barge-in; text turns still work."""
    chat = ScriptedChat(replies=["Three."])
    speaker = RecordingSpeaker()
    synthesizer = Synthesizer(ToneEngine(), workers=1)
    services = ListeningServices(vad=None, recognizer=None, synthesizer=synthesizer, default_llm=chat)
    conversation = Conversation(speaker, services, conversation_settings(AgentConfigModel()), VirtualClock())
    try:
        assert not conversation.listens
        handle = SpeechHandle("pushed", "a long announcement")
        handle.move_to(UtteranceState.SPEAKING)
        speaker.playing = handle
        for _ in range(50):
            conversation.hear(1, LOUD)
        assert speaker.interrupts == []
        speaker.playing = None
        conversation.user_turn("what time is it", interrupt=None)
        await settle()
        assert [m.content for m in chat.requests[0]][-1] == "what time is it"
        assert speaker.said[0].streamed
    finally:
        await conversation.close()
        synthesizer.close()
