"""An in-process Herald agent layer for tests: a real database, a tone engine, a virtual clock."""

from __future__ import annotations

from collections.abc import Sequence

from herald.agents.live import SpeechServices
from herald.agents.manager import InstanceManager
from herald.agents.registry import AgentDefinition, AgentRegistry
from herald.auth.tokens import CallTokens
from herald.conversation.loop import ListeningServices
from herald.events.bus import EventBus
from herald.media.ticker import Ticker
from herald.speech.tts import Synthesizer
from herald.store.db import create_schema, open_database
from herald.store.dialogues import DialogueStore
from herald.store.events import EventStore
from herald.store.instances import InstanceStore
from herald.testing.clock import VirtualClock
from herald.testing.tts import ToneEngine


class World:
    """Everything ``InstanceManager`` needs, wired as the runtime wires it, minus HTTP and Piper; agents
    listen when given ``listening``."""

    def __init__(
        self,
        db_url: str,
        agents: Sequence[AgentDefinition] = (),
        *,
        listening: ListeningServices | None = None,
    ) -> None:
        self.clock = VirtualClock()
        self.engine = open_database(db_url)
        self.ticker = Ticker(self.clock)
        self.tts = ToneEngine(("tone", "tone-2"))
        self.synth = Synthesizer(self.tts)
        self.events = EventBus(EventStore(self.engine), self.clock, batch_delay_s=0)
        self.manager = InstanceManager(
            InstanceStore(self.engine),
            DialogueStore(self.engine),
            AgentRegistry(agents),
            SpeechServices(self.synth),
            self.ticker,
            CallTokens(b"k" * 32),
            self.clock,
            events=self.events,
            listening=listening,
        )

    async def open(self) -> World:
        await create_schema(self.engine)
        return self

    async def close(self) -> None:
        await self.manager.stop_all()
        await self.events.close()
        self.synth.close()
        await self.engine.dispose()
