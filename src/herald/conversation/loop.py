"""One agent's conversation: it listens to everyone in the call, answers through the LLM, yields to barge-in.

The agent's side is an explicit state machine (``Phase``)::

    LISTENING ──user turn──► THINKING ──first clause──► ANSWERING ──reply heard or cut──► LISTENING
        ▲                      │  ▲                        │
        └──LLM failed/empty────┘  └──────new user turn─────┘   (a new turn always supersedes the old)

Each participant's microphone goes through its own ``VoiceActivity``. Speech onset while the agent speaks
barges in (``1016`` reason 2) unless voice interruption is off, the speech is protected, or the speech is
shorter than ``VadDuration``; what was said is transcribed when it ends, shown (``1003``), checked for
``InterruptWords`` (reason 1) and becomes the user's turn. ``SendAIAgentText`` and ``1111`` are turns too
(reason 5). The answer streams from the LLM clause by clause into one utterance, so the agent starts
speaking before the reply is complete. What the user heard of every utterance goes into the history.
"""

from __future__ import annotations

import asyncio
import contextlib
import enum
import logging
import random
import re
from collections.abc import Callable, Coroutine, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

from herald import ids
from herald.agents.requests import DialogueType, SpeechRequest
from herald.clock import Clock
from herald.conversation.history import History
from herald.conversation.settings import ConversationSettings, MessagePicker
from herald.listening.asr import (
    RecognitionError,
    RecognitionStream,
    SpeechRecognizer,
    language_refusal,
)
from herald.listening.vad import SpeechEnded, SpeechStarted, VoiceActivity
from herald.listening.vad_model import SileroModel
from herald.media.frames import Pcm
from herald.media.messages import InterruptReason, MessageType
from herald.speech.handle import Outcome, SpeechHandle, UtteranceState
from herald.speech.scheduler import ArrivalPolicy
from herald.speech.source import AudioSource
from herald.speech.text_stream import TextStream
from herald.speech.tts import Synthesizer, VoiceSettings
from herald.thinking.clauses import ClauseBuffer
from herald.thinking.llm import ChatMessage, ChatModel, LlmError

_log = logging.getLogger(__name__)

ASR_FAILED_CODE = 2
"""``code`` of the ``error`` event when what the user said could not be transcribed."""
LLM_FAILED_CODE = 3
"""``code`` of the ``error`` event when the LLM could not answer."""
_NS = 1_000_000_000


class Phase(enum.Enum):
    LISTENING = "listening"
    THINKING = "thinking"
    """A user turn is with the LLM; nothing of the answer is speaking yet."""
    ANSWERING = "answering"
    """The answer is being spoken (it may still be streaming in)."""


class Speaker(Protocol):
    """What the conversation needs of its live instance."""

    @property
    def speaking(self) -> bool:
        """Whether anything is playing or queued."""
        ...

    @property
    def protected_speaking(self) -> bool:
        """Whether what is playing now is protected from the user's voice."""
        ...

    def voice(self, request: SpeechRequest | None = None) -> VoiceSettings: ...

    def pronunciation(self) -> Sequence[tuple[str, str]]: ...

    def speak(self, request: SpeechRequest, source: AudioSource | None = None) -> SpeechHandle: ...

    def interrupt(self, reason: InterruptReason, by: str, *, by_voice: bool = False) -> bool: ...

    def send_message(self, msg_type: MessageType, data: dict[str, object]) -> None: ...

    def set_thinking(self, thinking: bool) -> None: ...

    def record_user_turn(self, round_id: str, text: str) -> None:
        """A dialogue line of the user's (``ListAIAgentDialogues``) and a ``chat_record`` event."""
        ...

    def report_error(self, code: int, message: str) -> None:
        """``1000`` to the call and an ``error`` event."""
        ...

    def hang_up(self, reason: str) -> None: ...


@dataclass(frozen=True, slots=True)
class ListeningServices:
    """Shared by every conversation of the server."""

    vad: SileroModel | None
    """``None``: agents do not listen (``[asr] engine = "off"``); typed turns are still answered."""
    recognizer: SpeechRecognizer | None
    synthesizer: Synthesizer
    default_llm: ChatModel | None = None
    """The server's LLM (``[llm]``), for agents that name none of their own."""
    llm_factory: Callable[[str, str, str], ChatModel] | None = None
    """Makes a client for an agent's own ``LlmConfig`` (url, model, key)."""
    asr_factory: Callable[[str, str, str], SpeechRecognizer] | None = None
    """Makes a recogniser for an agent's own ``AsrConfig`` (url, model, key)."""

    def language_problem(self, settings: ConversationSettings) -> str | None:
        """Why the server's recogniser cannot take the agent's ``AsrLanguageId`` (``None``: it can, or the
        agent names a recogniser of its own, which answers for itself)."""
        if settings.asr_endpoint is not None or self.recognizer is None:
            return None
        return language_refusal(self.recognizer, settings.language)

    async def aclose(self) -> None:
        """Stop the recogniser's workers, if it has any."""
        aclose = getattr(self.recognizer, "aclose", None)
        if aclose is not None:
            await aclose()


class Conversation:
    def __init__(
        self,
        speaker: Speaker,
        services: ListeningServices,
        settings: ConversationSettings,
        clock: Clock,
        *,
        rng: random.Random | None = None,
    ) -> None:
        self._speaker = speaker
        self._services = services
        self._settings = settings
        self._clock = clock
        self._history = History(settings.history)
        self._llm = self._chat_model(settings)
        self._recognizer = self._speech_recognizer(settings)
        self._pick = MessagePicker(rng or random.Random())
        self._phase = Phase.LISTENING
        self._ears: dict[int, _Ear] = {}
        self._partial_shown: set[str] = set()
        """Utterances whose partial subtitles were shown (their final one is sent even if empty)."""
        self._barged: set[int] = set()
        """Participants whose current speech already barged in."""
        self._cached_turns: list[str] = []
        """Turns spoken over a protected speech (``NoInterruptMode=cache``), taken when it ends."""
        self._reply_task: asyncio.Task[None] | None = None
        self._reply_handle: SpeechHandle | None = None
        self._tasks: set[asyncio.Task[None]] = set()
        self._idle_since_ns: int | None = None
        """Since when nobody has said anything (``None``: someone is speaking, or nobody joined yet)."""
        self._idle_prompts = 0
        self._user_turns = 0
        self.voice_interrupt_enabled = settings.voice_interrupt
        """``1102`` switches it for the call."""

    # ---- configuration ----

    @property
    def phase(self) -> Phase:
        return self._phase

    @property
    def history(self) -> History:
        return self._history

    @property
    def can_answer(self) -> bool:
        return self._llm is not None

    @property
    def listens(self) -> bool:
        """Whether the agent hears microphones (the server's ``[asr]`` is not off)."""
        return self._services.vad is not None and self._services.recognizer is not None

    def reconfigure(self, settings: ConversationSettings) -> None:
        """From the next turn (``UpdateAIAgentInstance``); the history so far is kept."""
        if settings.voice_interrupt != self._settings.voice_interrupt:
            self.voice_interrupt_enabled = settings.voice_interrupt
        self._settings = settings
        self._history.reconfigure(settings.history)
        self._llm = self._chat_model(settings)
        self._recognizer = self._speech_recognizer(settings)
        vad = self._services.vad
        for ear in self._ears.values():
            self._drop_utterance(ear)  # heard with the old settings, by the old recogniser
            if vad is not None:
                ear.vad = VoiceActivity(vad, settings.vad)

    def _chat_model(self, settings: ConversationSettings) -> ChatModel | None:
        endpoint = settings.llm_endpoint
        if endpoint is not None and self._services.llm_factory is not None:
            return self._services.llm_factory(endpoint.url, endpoint.model, endpoint.api_key)
        return self._services.default_llm

    def _speech_recognizer(self, settings: ConversationSettings) -> SpeechRecognizer | None:
        if not self.listens:
            return None
        endpoint = settings.asr_endpoint
        if endpoint is not None and self._services.asr_factory is not None:
            return self._services.asr_factory(endpoint.url, endpoint.model, endpoint.api_key)
        return self._services.recognizer

    # ---- what the agent says ----

    def utterance_ended(self, request: SpeechRequest, outcome: Outcome) -> None:
        """Every utterance of the instance ends here: its heard part joins the history if it belongs."""
        if request.add_to_history or request.dialogue_type is DialogueType.GREETING:
            interrupted = outcome.state is UtteranceState.INTERRUPTED
            self._history.add_agent(outcome.heard_text, interrupted=interrupted)
        handle = self._reply_handle
        if handle is not None and handle.utterance_id == request.utterance_id:
            self._reply_handle = None
            if self._reply_task is not None and not self._reply_task.done():
                self._reply_task.cancel()  # cut: the rest of the answer is not wanted
            self._reply_task = None
            self._set_phase(Phase.LISTENING)
        self._idle_since_ns = self._clock.monotonic_ns()
        if not self._speaker.speaking and self._cached_turns:
            cached, self._cached_turns = " ".join(self._cached_turns), []
            self.user_turn(cached, interrupt=None)

    # ---- hearing ----

    def hear(self, participant_id: int, frame: Pcm) -> None:
        """One canonical 20 ms frame of a participant's microphone. Cheap; never blocks."""
        vad, recognizer = self._services.vad, self._recognizer
        if vad is None or recognizer is None:
            return  # not listening
        ear = self._ears.get(participant_id)
        if ear is None:
            ear = self._ears[participant_id] = _Ear(VoiceActivity(vad, self._settings.vad))
        for event in ear.vad.push(frame):
            match event:
                case SpeechStarted():
                    self._idle_since_ns = None
                    self._idle_prompts = 0
                    self._start_utterance(ear, recognizer)
                case SpeechEnded(audio=audio):
                    self._barged.discard(participant_id)
                    self._idle_since_ns = self._clock.monotonic_ns()
                    stream, sentence_id = ear.stream, ear.sentence_id
                    if stream is not None:
                        stream.feed(audio[ear.fed :])
                        ear.stream = None
                    self._spawn(self._transcribe(recognizer, audio, stream, sentence_id), "transcribe")
        if ear.stream is not None:
            audio = ear.vad.take_audio()
            ear.stream.feed(audio)
            ear.fed += len(audio)
        if ear.vad.speaking_ms > 0 and participant_id not in self._barged:
            self._maybe_barge_in(participant_id, ear.vad.speaking_ms)

    def _start_utterance(self, ear: _Ear, recognizer: SpeechRecognizer) -> None:
        """Someone began to speak: recognise it as it is spoken, if the recogniser can."""
        sentence_id = ear.sentence_id = ids.request_id()
        ear.fed = 0
        ear.stream = recognizer.stream(
            language=self._settings.language,
            on_partial=lambda text: self._show_partial(sentence_id, text),
        )

    def _drop_utterance(self, ear: _Ear) -> None:
        if ear.stream is not None:
            ear.stream.cancel()
            ear.stream = None
            self._partial_shown.discard(ear.sentence_id)

    def _show_partial(self, sentence_id: str, text: str) -> None:
        """What is heard so far of an utterance still being spoken (``1003`` with ``end: false``)."""
        self._partial_shown.add(sentence_id)
        subtitle = {"text": " ".join(text.split()), "sentenceId": sentence_id, "end": False}
        self._speaker.send_message(MessageType.USER_SUBTITLE, subtitle)

    def joined(self) -> None:
        """Someone joined the call: the ``UserIdle`` wait starts now, if it had not."""
        if self._idle_since_ns is None and self._user_turns == 0:
            self._idle_since_ns = self._clock.monotonic_ns()

    def forget(self, participant_id: int) -> None:
        """The participant left."""
        ear = self._ears.pop(participant_id, None)
        if ear is not None:
            self._drop_utterance(ear)
        self._barged.discard(participant_id)

    @property
    def _voice_interrupts(self) -> bool:
        """Whether the user's voice may cut the agent (``EnableVoiceInterrupt``, ``1102``, ``VadLevel``)."""
        return self.voice_interrupt_enabled and self._settings.vad_barge_in

    def _maybe_barge_in(self, participant_id: int, speaking_ms: int) -> None:
        if not self._voice_interrupts:
            return
        if speaking_ms < self._settings.barge_in_ms:
            return
        self._barged.add(participant_id)
        if self._phase is Phase.THINKING:
            self._cancel_reply()  # they are still talking: the answer would be to half a question
        if self._speaker.speaking and not self._speaker.protected_speaking:
            self._speaker.interrupt(InterruptReason.BY_VOICE, "the user's voice", by_voice=True)

    async def _transcribe(
        self, recognizer: SpeechRecognizer, audio: Pcm, stream: RecognitionStream | None, sentence_id: str
    ) -> None:
        """The utterance's text, from its stream (all fed already) or from its whole ``audio``."""
        failure: RecognitionError | None = None
        try:
            if stream is not None:
                text = await stream.finish()
            else:
                text = await recognizer.transcribe(audio, language=self._settings.language)
        except RecognitionError as exc:
            failure, text = exc, ""
        # Asked only now: the stream's last partial may come while it finishes (the audio's tail).
        partial_shown = sentence_id in self._partial_shown
        self._partial_shown.discard(sentence_id)
        text = " ".join(text.split())
        if text or partial_shown:  # an empty final closes the subtitle its partials opened
            self._speaker.send_message(
                MessageType.USER_SUBTITLE, {"text": text, "sentenceId": sentence_id, "end": True}
            )
        if failure is not None:
            _log.warning("speech recognition failed: %s", failure.reason)
            self._speaker.report_error(ASR_FAILED_CODE, f"speech recognition failed: {failure.reason}")
            self._apologise()
            return
        if not text:
            return
        words = self._settings.interrupt_words
        matched = _interrupt_word(text, words)
        if matched is not None:
            if self._speaker.speaking and not self._speaker.protected_speaking:
                self._speaker.interrupt(
                    InterruptReason.BY_WORDS, f"the interrupt word {matched!r}", by_voice=True
                )
            if not self._settings.keep_interrupt_words:
                text = _without(text, matched)
            if not text:
                return
        if self._speaker.protected_speaking or (self._speaker.speaking and not self._voice_interrupts):
            # Said over speech the voice may not cut: answered once it ends, or not at all.
            if self._settings.no_interrupt_mode == "cache":
                self._cached_turns.append(text)
            return
        self.user_turn(text, interrupt=InterruptReason.BY_VOICE)

    # ---- turns ----

    def user_turn(self, text: str, *, interrupt: InterruptReason | None) -> str:
        """The user said (or typed) ``text``: cut what is playing (with ``interrupt`` as the reason) and
        answer it. Returns the turn's round id."""
        round_id = ids.request_id()
        self._user_turns += 1
        self._idle_prompts = 0
        self._idle_since_ns = None
        self._speaker.record_user_turn(round_id, text)
        self._cancel_reply()
        if interrupt is not None and self._speaker.speaking:
            self._speaker.interrupt(interrupt, "a new user turn")
        self._history.add_user(text)
        if self._llm is None:
            return round_id  # listening only: the turn is recorded, nothing answers it
        messages = self._history.for_request()
        self._set_phase(Phase.THINKING)
        self._reply_task = self._spawn(self._answer(self._llm, messages, round_id), "answer")
        return round_id

    def _cancel_reply(self) -> None:
        if self._reply_task is not None and not self._reply_task.done():
            self._reply_task.cancel()
        self._reply_task = None
        if self._phase is Phase.THINKING:
            self._set_phase(Phase.LISTENING)

    async def _answer(self, llm: ChatModel, messages: list[ChatMessage], round_id: str) -> None:
        stream: TextStream | None = None
        clauses = ClauseBuffer(min_chars=self._settings.output_min_length)
        pending = self._spawn(self._pending_filler(), "llm-pending") if self._settings.llm_pending else None
        try:
            async with contextlib.aclosing(llm.reply(messages)) as deltas:
                async for delta in deltas:
                    for clause in clauses.push(delta):
                        stream = self._write(stream, clause, round_id)
                for clause in clauses.flush():
                    stream = self._write(stream, clause, round_id)
        except LlmError as exc:
            _log.warning("the LLM failed: %s", exc.reason)
            self._speaker.report_error(LLM_FAILED_CODE, f"the LLM failed: {exc.reason}")
            if stream is not None:
                stream.fail(exc.reason)
            self._set_phase(Phase.LISTENING)
            self._apologise()
            return
        finally:
            if pending is not None:
                pending.cancel()
        if stream is None:  # the LLM said nothing
            self._set_phase(Phase.LISTENING)
            return
        stream.end()
        reply = " ".join(stream.written)
        self._speaker.send_message(MessageType.LLM_REPLY_COMPLETED, {"text": reply, "sentenceId": round_id})

    def _write(self, stream: TextStream | None, clause: str, round_id: str) -> TextStream:
        if stream is None:
            request = SpeechRequest(
                utterance_id=ids.request_id(),
                content="",
                policy=ArrivalPolicy.APPEND,
                dialogue_type=DialogueType.NORMAL,
                add_to_history=True,
                round_id=round_id,
            )
            stream = TextStream(
                self._services.synthesizer, self._speaker.voice(), self._speaker.pronunciation()
            )
            self._reply_handle = self._speaker.speak(request, stream.audio())
            self._set_phase(Phase.ANSWERING)
        stream.write(clause)
        return stream

    async def _pending_filler(self) -> None:
        pending = self._settings.llm_pending
        assert pending is not None
        await self._clock.sleep_until_ns(self._clock.monotonic_ns() + pending.wait_ms * 1_000_000)
        if self._phase is Phase.THINKING:
            self._say(self._pick.pick(pending.messages, pending.mode, key="pending"))

    def _apologise(self) -> None:
        self._say(self._pick.pick(self._settings.apology, "random", key="apology"))

    def _say(self, text: str, *, add_to_history: bool = False) -> None:
        """A prompt, a filler or an apology, after whatever is playing."""
        request = SpeechRequest(
            utterance_id=ids.request_id(),
            content=text,
            policy=ArrivalPolicy.APPEND,
            dialogue_type=DialogueType.NORMAL,
            add_to_history=add_to_history,
        )
        self._speaker.speak(request)

    # ---- silence ----

    def on_second(self) -> None:
        """Called about once a second: ``UserIdle`` prompts, then hanging up."""
        idle = self._settings.user_idle
        since = self._idle_since_ns
        if idle is None or since is None or self._phase is not Phase.LISTENING or self._speaker.speaking:
            return
        if any(ear.vad.speaking_ms > 0 for ear in self._ears.values()):
            return
        if self._clock.monotonic_ns() - since < idle.wait_ms * 1_000_000:
            return
        if self._idle_prompts >= idle.max_repeats:
            self._idle_since_ns = None
            self._speaker.hang_up(f"the user said nothing after {idle.max_repeats} prompts (UserIdle)")
            return
        self._idle_prompts += 1
        self._idle_since_ns = None  # counted again from when the prompt has been said
        self._say(self._pick.pick(idle.messages, "random", key="idle"), add_to_history=True)

    # ---- bookkeeping ----

    def _set_phase(self, phase: Phase) -> None:
        if phase is not self._phase:
            self._phase = phase
            # While the answer streams in, a gap in its audio is thinking too (the speaker shows speaking
            # whenever audio plays).
            self._speaker.set_thinking(phase is not Phase.LISTENING)

    def _spawn(self, coro: Coroutine[Any, Any, None], name: str) -> asyncio.Task[None]:
        task = asyncio.create_task(coro, name=name)
        self._tasks.add(task)
        task.add_done_callback(self._task_done)
        return task

    def _task_done(self, task: asyncio.Task[None]) -> None:
        self._tasks.discard(task)
        if not task.cancelled() and task.exception() is not None:
            _log.error("conversation task %s failed", task.get_name(), exc_info=task.exception())

    async def close(self) -> None:
        tasks = list(self._tasks)
        for task in tasks:
            task.cancel()
        for task in tasks:
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task
        for ear in self._ears.values():
            self._drop_utterance(ear)
        self._ears.clear()


@dataclass(eq=False, slots=True)
class _Ear:
    """One participant's microphone: who is speaking, and the utterance being recognised as it is spoken."""

    vad: VoiceActivity
    stream: RecognitionStream | None = None
    sentence_id: str = ""
    """The current (or last) utterance's ``sentenceId`` in ``1003``."""
    fed: int = 0
    """Samples of the current utterance given to ``stream``."""


def _interrupt_word(text: str, words: Sequence[str]) -> str | None:
    """The first of ``words`` that ``text`` contains as whole words (case and punctuation ignored)."""
    said = f" {_normalise(text)} "
    for word in words:
        wanted = _normalise(word)
        if wanted and f" {wanted} " in said:
            return word
    return None


def _without(text: str, word: str) -> str:
    """``text`` with the first occurrence of the interrupt ``word`` taken out (case ignored), and the
    punctuation that followed it ("Stop, what time is it?" → "what time is it?")."""
    pattern = r"(?<!\w)" + r"\W+".join(re.escape(part) for part in word.split()) + r"(?!\w)[\s,.;:!?]*"
    return " ".join(re.sub(pattern, " ", text, count=1, flags=re.IGNORECASE).split())


def _normalise(text: str) -> str:
    return " ".join("".join(c if c.isalnum() or c.isspace() else " " for c in text.lower()).split())
