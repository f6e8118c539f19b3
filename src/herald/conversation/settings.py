"""How one agent converses, read from its ``AgentConfig`` (``AsrConfig``, ``LlmConfig``, ``InterruptConfig``,
``AutoSpeechConfig``) over the server's defaults."""

from __future__ import annotations

import random
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from typing import Literal

from herald.agents.settings import AgentConfigModel, AutoSpeechMessage
from herald.conversation.history import DEFAULT_HISTORY_LIMIT, HistorySettings
from herald.listening.vad import VadSettings
from herald.thinking.llm import ChatMessage

DEFAULT_MAX_SILENCE_MS = 400
"""ICE's ``AsrMaxSilence`` default: this much silence ends what the user says."""
DEFAULT_THRESHOLD = 0.5
"""Silero's own balance of speech probability (``VadLevel`` 11, the default)."""
DEFAULT_APOLOGY = "Sorry, something went wrong on my side. Could you say that again?"


def vad_threshold(level: int | None) -> float:
    """``AsrConfig.VadLevel`` → the speech probability the user's voice needs to be heard as speech.

    1 (easiest to interrupt) to 10 (hardest) spread over 0.3 to 0.84; 11 and 0 keep Silero's 0.5 (0 turns
    voice barge-in off, not listening).
    """
    if level is None or level in (0, 11):
        return DEFAULT_THRESHOLD
    return round(0.3 + (level - 1) * 0.06, 2)


@dataclass(frozen=True, slots=True)
class Endpoint:
    url: str
    model: str
    api_key: str


@dataclass(frozen=True, slots=True)
class Prompts:
    """Things to say, one picked each time (``random`` by their ``Probability``, or in ``sequence``)."""

    texts: tuple[str, ...]
    weights: tuple[float, ...]


@dataclass(frozen=True, slots=True)
class UserIdle:
    wait_ms: int
    max_repeats: int
    messages: Prompts


@dataclass(frozen=True, slots=True)
class LlmPending:
    wait_ms: int
    mode: Literal["random", "sequence"]
    messages: Prompts


@dataclass(frozen=True, slots=True)
class ConversationSettings:
    vad: VadSettings = field(default_factory=VadSettings)
    vad_barge_in: bool = True
    """``VadLevel`` 0 turns the voice's barge-in off."""
    barge_in_ms: int = 0
    """``VadDuration``: continuous speech it takes to barge in (0: at the onset)."""
    voice_interrupt: bool = True
    interrupt_words: tuple[str, ...] = ()
    keep_interrupt_words: bool = False
    no_interrupt_mode: Literal["cache", "discard"] = "cache"
    language: str | None = None
    history: HistorySettings = field(default_factory=HistorySettings)
    llm_endpoint: Endpoint | None = None
    """The agent's own LLM; ``None``: the server's."""
    asr_endpoint: Endpoint | None = None
    """The agent's own OpenAI-compatible speech recogniser; ``None``: the server's."""
    output_min_length: int = 0
    user_idle: UserIdle | None = None
    llm_pending: LlmPending | None = None
    apology: Prompts = field(default_factory=lambda: Prompts((DEFAULT_APOLOGY,), (1.0,)))


def conversation_settings(config: AgentConfigModel, *, default_model: str = "") -> ConversationSettings:
    asr = config.AsrConfig
    llm = config.LlmConfig
    interrupt = config.InterruptConfig
    auto = config.AutoSpeechConfig
    level = asr.VadLevel if asr else None
    vad = VadSettings(
        threshold=vad_threshold(level),
        min_silence_ms=(asr.AsrMaxSilence if asr and asr.AsrMaxSilence else DEFAULT_MAX_SILENCE_MS),
    )
    history = HistorySettings(
        system_prompt=(llm.LlmSystemPrompt or "") if llm else "",
        seed=tuple(ChatMessage(item.Role, item.Content) for item in llm.LlmHistory) if llm else (),
        limit=(llm.LlmHistoryLimit if llm and llm.LlmHistoryLimit is not None else DEFAULT_HISTORY_LIMIT),
        sync_with_tts=bool(llm and llm.HistorySyncWithTTS),
    )
    endpoint = None
    if llm is not None and llm.Url:
        endpoint = Endpoint(llm.Url, llm.Model or default_model, llm.ApiKey or "")
    asr_endpoint = (
        Endpoint(asr.Url, asr.Model or "", asr.ApiKey or "") if asr is not None and asr.Url else None
    )
    settings = ConversationSettings(
        vad=vad,
        vad_barge_in=level != 0,
        barge_in_ms=(asr.VadDuration or 0) if asr else 0,
        voice_interrupt=interrupt.EnableVoiceInterrupt if interrupt else True,
        interrupt_words=tuple(interrupt.InterruptWords) if interrupt else (),
        keep_interrupt_words=bool(interrupt and interrupt.KeepInterruptWordsForLlm),
        no_interrupt_mode=interrupt.NoInterruptMode if interrupt else "cache",
        language=asr.AsrLanguageId if asr else None,
        history=history,
        llm_endpoint=endpoint,
        asr_endpoint=asr_endpoint,
        output_min_length=(llm.OutputMinLength or 0) if llm else 0,
    )
    if auto is not None and auto.UserIdle is not None:
        idle = auto.UserIdle
        settings = replace(
            settings, user_idle=UserIdle(idle.WaitTime, idle.MaxRepeats, _prompts(idle.Messages))
        )
    if auto is not None and auto.LlmPending is not None:
        pending = auto.LlmPending
        settings = replace(
            settings, llm_pending=LlmPending(pending.WaitTime, pending.Mode, _prompts(pending.Messages))
        )
    if auto is not None and auto.Apology is not None:
        settings = replace(settings, apology=_prompts(auto.Apology.Messages))
    return settings


def _prompts(messages: Sequence[AutoSpeechMessage]) -> Prompts:
    """Messages without a ``Probability`` share what the others leave equally."""
    given = sum(m.Probability for m in messages if m.Probability is not None)
    unweighted = [m for m in messages if m.Probability is None]
    share = max(0.0, 1.0 - given) / len(unweighted) if unweighted else 0.0
    weights = tuple(m.Probability if m.Probability is not None else share for m in messages)
    if sum(weights) <= 0:
        weights = tuple(1.0 for _ in messages)
    return Prompts(tuple(m.Text for m in messages), weights)


class MessagePicker:
    """Picks the next prompt of a set: by weight at random, or each in turn (``sequence``)."""

    def __init__(self, rng: random.Random) -> None:
        self._rng = rng
        self._next: dict[str, int] = {}

    def pick(self, prompts: Prompts, mode: Literal["random", "sequence"], *, key: str) -> str:
        if mode == "sequence":
            index = self._next.get(key, 0)
            self._next[key] = index + 1
            return prompts.texts[index % len(prompts.texts)]
        return self._rng.choices(prompts.texts, weights=prompts.weights)[0]
