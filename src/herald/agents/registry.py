"""Agent definitions: an ``AIAgentId`` and its default ``AgentConfig``, from the config file."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from herald.errors import AgentNotFound

DEFAULT_AGENT_ID = "default"


@dataclass(frozen=True, slots=True)
class AgentDefinition:
    agent_id: str
    agent_config: Mapping[str, Any] = field(default_factory=dict)


class AgentRegistry:
    """The agents this server knows. ``default`` always exists unless the config redefines it."""

    def __init__(self, agents: Iterable[AgentDefinition]) -> None:
        self._agents = {DEFAULT_AGENT_ID: AgentDefinition(DEFAULT_AGENT_ID)}
        self._agents.update({a.agent_id: a for a in agents})

    def get(self, agent_id: str) -> AgentDefinition:
        try:
            return self._agents[agent_id]
        except KeyError:
            raise AgentNotFound(f"The agent {agent_id!r} does not exist.") from None
