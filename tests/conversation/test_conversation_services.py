"""What the server's ``[asr]`` and ``[llm]`` make of listening: engines, their errors, and ``off``."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import pytest

from herald.config import ConfigError
from herald.conversation.loop import ListeningServices
from herald.conversation.services import open_listening
from herald.listening.openai_asr import OpenAITranscriber
from herald.listening.pocketsphinx_asr import PocketSphinxRecognizer
from herald.media.fetch import SafeFetcher
from herald.media.netguard import AddressPolicy
from herald.speech.tts import Synthesizer
from herald.testing.tts import ToneEngine
from herald.thinking.llm import OpenAIChat


@pytest.fixture
async def opened() -> AsyncIterator[Any]:
    synthesizer = Synthesizer(ToneEngine(), workers=1)
    fetcher = SafeFetcher(AddressPolicy.from_entries(["0.0.0.0/0"]))
    made: list[ListeningServices] = []

    async def open_(asr: dict[str, Any], llm: dict[str, Any] | None = None) -> ListeningServices:
        services = await open_listening(asr, llm or {}, synthesizer, trusted=fetcher, guarded=fetcher)
        made.append(services)
        return services

    yield open_
    for services in made:
        await services.aclose()
    synthesizer.close()


async def test_off_hears_nothing_but_keeps_the_llm(opened: Any) -> None:
    """``engine = "off"``: no model is loaded and no worker started, yet typed turns can be answered."""
    services = await opened({"engine": "off"}, {"url": "http://127.0.0.1:9/v1", "model": "m"})
    assert services.vad is None
    assert services.recognizer is None
    assert isinstance(services.default_llm, OpenAIChat)


async def test_the_default_is_pocketsphinx_and_openai_needs_a_url(opened: Any) -> None:
    assert isinstance((await opened({})).recognizer, PocketSphinxRecognizer)
    services = await opened({"engine": "OpenAI", "url": "http://127.0.0.1:9/v1"})
    assert isinstance(services.recognizer, OpenAITranscriber)
    assert services.vad is not None
    with pytest.raises(ConfigError, match="needs url"):
        await opened({"engine": "openai"})


@pytest.mark.parametrize(
    ("asr", "rule"),
    [
        ({"engine": "whisper"}, "engine must be one of pocketsphinx, openai, off"),
        ({"workers": 0}, "between 1 and 16"),
        ({"workers": "two"}, "whole number"),
    ],
)
async def test_bad_settings_are_refused_by_name(opened: Any, asr: dict[str, Any], rule: str) -> None:
    with pytest.raises(ConfigError, match=rule):
        await opened(asr)
