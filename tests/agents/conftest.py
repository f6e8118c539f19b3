"""Fixtures for the agent layer's tests."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from agent_helpers import AGENTS

from herald.conversation.loop import ListeningServices
from herald.speech.tts import Synthesizer
from herald.testing.conversation import LoudnessModel, ScriptedRecognizer
from herald.testing.tts import ToneEngine
from herald.testing.world import World


@pytest.fixture
async def world(tmp_path: Path) -> AsyncIterator[World]:
    w = await World(f"sqlite:///{tmp_path / 'h.db'}", AGENTS).open()
    yield w
    await w.close()


@pytest.fixture
async def listening_world(tmp_path: Path) -> AsyncIterator[World]:
    """Agents that listen: a loudness VAD, a recogniser that understands English only, no LLM."""
    recognizer = ScriptedRecognizer()
    recognizer.languages = frozenset({"en"})
    synthesizer = Synthesizer(ToneEngine(), workers=1)
    services = ListeningServices(vad=LoudnessModel(), recognizer=recognizer, synthesizer=synthesizer)
    w = await World(f"sqlite:///{tmp_path / 'h.db'}", AGENTS, listening=services).open()
    yield w
    await w.close()
    synthesizer.close()
