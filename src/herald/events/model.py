"""The events an instance reports, and the callback body ICE sends for each (``docs/events.md``)."""

from __future__ import annotations

import enum
import uuid
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any


class EventName(enum.StrEnum):
    AGENT_START = "agent_start"
    """The instance started (``StartAIAgentInstance``, ``GenerateAIAgentCall``)."""
    SESSION_START = "session_start"
    """The first user joined the call."""
    AGENT_STOP = "agent_stop"
    """The instance finished, for whatever reason (``data.hangupRole``, ``data.reason``)."""
    ERROR = "error"
    """Something the customer should know failed (a speech that could not be said)."""
    CHAT_RECORD = "chat_record"
    """A line of the conversation: what the user said (``data.role`` user) or the LLM answered (agent)."""
    AUDIO_RECORD = "audio_record"
    """An utterance of the agent finished or was interrupted: what was heard of it."""
    TTS_DATA_RECEIVED = "tts_data_received"
    """An utterance's first audio went out (``data.firstAudioMs`` after it was accepted)."""


ALL_EVENTS: frozenset[str] = frozenset(e.value for e in EventName)


@dataclass(frozen=True)
class CallbackTarget:
    """Where an instance's events go: ``url`` (POST, JSON), ``token`` (``Authorization``), ``events``
    (only these names; empty: all)."""

    url: str
    token: str = ""
    events: frozenset[str] = frozenset()

    def wants(self, name: str) -> bool:
        return not self.events or name in self.events


@dataclass(frozen=True)
class AgentEvent:
    """One event, as the code that saw it reports it."""

    name: EventName
    owner: str
    instance_id: str
    agent_id: str
    at: datetime
    data: dict[str, Any] = field(default_factory=dict)
    user_data: str = ""
    code: int = 0
    message: str = ""
    callback: CallbackTarget | None = None
    event_id: str = field(default_factory=lambda: uuid.uuid4().hex)

    def payload(self) -> dict[str, Any]:
        """The callback body (``ice-wire.md``), plus ``eventId`` for de-duplication."""
        return {
            "eventId": self.event_id,
            "aiAgentId": self.agent_id,
            "instanceId": self.instance_id,
            "event": self.name.value,
            "code": self.code,
            "message": self.message,
            "timestamp": self.at.isoformat(timespec="milliseconds").replace("+00:00", "Z"),
            "data": self.data,
            "userData": self.user_data,
            "extendData": {},
        }
