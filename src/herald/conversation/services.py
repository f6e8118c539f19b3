"""Opening what agents listen and think with, from the server's ``[asr]`` and ``[llm]`` settings.

The speech recogniser is PocketSphinx (offline, the default) or an OpenAI-compatible transcription URL
(``engine = "openai"``), or off (``engine = "off"``: agents hear no microphone, but with an LLM they still
answer ``SendAIAgentText`` and ``1111``). The server's
LLM is optional; agents may name their own in ``AgentConfig.LlmConfig``. Endpoints the operator configured
are trusted (any address); endpoints an API caller names go through the fetch address policy.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Mapping
from typing import Any

from herald.config import ConfigError
from herald.conversation.loop import ListeningServices
from herald.listening.asr import SpeechRecognizer
from herald.listening.openai_asr import OpenAITranscriber
from herald.listening.pocketsphinx_asr import PocketSphinxRecognizer
from herald.listening.vad_model import SileroModel
from herald.media.fetch import SafeFetcher
from herald.speech.tts import Synthesizer
from herald.thinking.llm import ChatModel, OpenAIChat

_log = logging.getLogger(__name__)

ENGINES = ("pocketsphinx", "openai", "off")


async def open_listening(
    asr: Mapping[str, Any],
    llm: Mapping[str, Any],
    synthesizer: Synthesizer,
    *,
    trusted: SafeFetcher,
    guarded: SafeFetcher,
) -> ListeningServices:
    """The shared parts of every agent's conversation (without a recogniser or VAD when listening is off:
    agents then answer typed turns only). Loads the models (seconds): call it at start, not on a request."""
    engine = str(asr.get("engine", "pocketsphinx")).strip().lower()
    if engine not in ENGINES:
        raise ConfigError(f"[asr] engine must be one of {', '.join(ENGINES)} (got {engine!r}).")
    recognizer: SpeechRecognizer | None = None
    if engine == "openai":
        url = _required(asr, "url", '[asr] engine = "openai" needs url (HERALD_ASR_URL)')
        recognizer = OpenAITranscriber(
            url, str(asr.get("model", "whisper-1")), str(asr.get("api_key", "")), trusted
        )
    elif engine == "pocketsphinx":
        recognizer = PocketSphinxRecognizer(workers=_workers(asr))
        # Its workers load their model (~0.3 s each) while the server starts; the first utterance waits
        # for them if it comes first. A worker that cannot start fails that utterance, with the reason.
        warm_up = asyncio.create_task(recognizer.start(), name="asr-start")
        warm_up.add_done_callback(_log_failure)
    vad = await asyncio.to_thread(SileroModel.load) if recognizer is not None else None
    default_model = str(llm.get("model", ""))
    default_llm: ChatModel | None = None
    if llm.get("url"):
        default_llm = OpenAIChat(str(llm["url"]), default_model, str(llm.get("api_key", "")), trusted)

    def agent_llm(url: str, model: str, api_key: str) -> ChatModel:
        return OpenAIChat(url, model or default_model, api_key, guarded)

    def agent_asr(url: str, model: str, api_key: str) -> SpeechRecognizer:
        return OpenAITranscriber(url, model or "whisper-1", api_key, guarded)

    return ListeningServices(
        vad=vad,
        recognizer=recognizer,
        synthesizer=synthesizer,
        default_llm=default_llm,
        llm_factory=agent_llm,
        asr_factory=agent_asr,
    )


def _log_failure(task: asyncio.Task[None]) -> None:
    if not task.cancelled() and task.exception() is not None:
        _log.error("the speech recogniser could not start: %s", task.exception())


def _required(table: Mapping[str, Any], key: str, message: str) -> str:
    value = table.get(key)
    if not value:
        raise ConfigError(message)
    return str(value)


def _workers(table: Mapping[str, Any]) -> int:
    try:
        workers = int(table.get("workers", 1))
    except (TypeError, ValueError):
        raise ConfigError(f"[asr] workers must be a whole number (got {table.get('workers')!r}).") from None
    if not 1 <= workers <= 16:
        raise ConfigError(f"[asr] workers must be between 1 and 16 (got {workers}).")
    return workers
