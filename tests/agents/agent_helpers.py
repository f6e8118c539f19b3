"""What the agent layer's tests share (a module of its own: every test folder has a conftest)."""

from __future__ import annotations

import asyncio
import json

from herald.agents.registry import AgentDefinition
from herald.media.room import Participant
from herald.testing.world import World

AGENTS = [
    AgentDefinition("support", {"TtsConfig": {"SpeechRate": 1.2}, "Greeting": "Hi"}),
    AgentDefinition("graceful", {"GracefulShutdown": True}),
    AgentDefinition("impatient", {"UserOnlineTimeout": 3, "UserOfflineTimeout": 2, "MaxIdleTime": 10}),
]


async def play(world: World, frames: int) -> None:
    """Run the pacer for ``frames`` frames, letting synthesis (a real thread) keep up."""
    for _ in range(frames):
        await asyncio.sleep(0.002)
        world.ticker.tick_all()


def messages(participant: Participant, msg_type: int) -> list[dict[str, object]]:
    """The ``data`` of every message of ``msg_type`` waiting in ``participant``'s queue."""
    found = []
    for item in list(participant._items):
        if isinstance(item, str):
            envelope = json.loads(item)
            if envelope["type"] == msg_type:
                found.append(envelope["data"])
    return found
