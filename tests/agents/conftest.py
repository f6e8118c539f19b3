"""Fixtures for the agent layer's tests."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from herald.agents.registry import AgentDefinition
from herald.testing.world import World

AGENTS = [
    AgentDefinition("support", {"TtsConfig": {"SpeechRate": 1.2}, "Greeting": "Hi"}),
    AgentDefinition("graceful", {"GracefulShutdown": True}),
    AgentDefinition("impatient", {"UserOnlineTimeout": 3, "UserOfflineTimeout": 2, "MaxIdleTime": 10}),
]


@pytest.fixture
async def world(tmp_path: Path) -> AsyncIterator[World]:
    w = await World(f"sqlite:///{tmp_path / 'h.db'}", AGENTS).open()
    yield w
    await w.close()
