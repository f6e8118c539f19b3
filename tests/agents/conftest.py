"""Fixtures for the agent layer's tests."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from agent_helpers import AGENTS

from herald.testing.world import World


@pytest.fixture
async def world(tmp_path: Path) -> AsyncIterator[World]:
    w = await World(f"sqlite:///{tmp_path / 'h.db'}", AGENTS).open()
    yield w
    await w.close()
