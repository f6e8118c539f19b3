"""What the LLM is told: the system prompt, the seeded history, and the turns of this call as they were heard.

An agent turn holds what the user actually heard of it, not what the LLM wrote: a reply cut by the user
keeps only its heard part, marked ``<ims_agent_interrupted>`` where it was cut when ``HistorySyncWithTTS``
is on (ICE's convention). A turn the user heard nothing of is left out. Only the last ``limit`` rounds (a
round starts with a user message) are sent; the system prompt always is.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from herald.thinking.llm import ChatMessage

INTERRUPTED_MARK = "<ims_agent_interrupted>"
DEFAULT_HISTORY_LIMIT = 10
MAX_KEPT_MESSAGES = 400
"""However long the call, no more messages than this are kept in memory."""


@dataclass(frozen=True, slots=True)
class HistorySettings:
    system_prompt: str = ""
    seed: tuple[ChatMessage, ...] = ()
    limit: int = DEFAULT_HISTORY_LIMIT
    """Rounds sent to the LLM (0: none but the new user message)."""
    sync_with_tts: bool = False


class History:
    def __init__(self, settings: HistorySettings) -> None:
        self.settings = settings
        self._messages: list[ChatMessage] = list(settings.seed)

    def reconfigure(self, settings: HistorySettings) -> None:
        """New prompt, limit and marking from the next turn; the turns so far are kept."""
        self.settings = settings

    @property
    def messages(self) -> list[ChatMessage]:
        """Every turn kept, oldest first (without the system prompt)."""
        return list(self._messages)

    def add_user(self, text: str) -> None:
        self._append(ChatMessage("user", text))

    def add_agent(self, heard_text: str, *, interrupted: bool) -> None:
        """An utterance of the agent as heard; ``interrupted``: the user cut it (not a natural end)."""
        text = heard_text.strip()
        if interrupted and self.settings.sync_with_tts:
            text = f"{text}{INTERRUPTED_MARK}"
        if not text:
            return
        if self._messages and self._messages[-1].role == "assistant":
            # Two utterances in a row (a pushed speech, then the answer): one turn, in the order heard.
            last = self._messages.pop()
            text = f"{last.content} {text}"
        self._append(ChatMessage("assistant", text))

    def for_request(self) -> list[ChatMessage]:
        """The messages to send: the system prompt, then the last ``limit`` rounds."""
        prompt = [ChatMessage("system", self.settings.system_prompt)] if self.settings.system_prompt else []
        return prompt + _last_rounds(self._messages, self.settings.limit)

    def _append(self, message: ChatMessage) -> None:
        self._messages.append(message)
        if len(self._messages) > MAX_KEPT_MESSAGES:
            del self._messages[: len(self._messages) - MAX_KEPT_MESSAGES]


def _last_rounds(messages: Sequence[ChatMessage], limit: int) -> list[ChatMessage]:
    """The messages from the ``limit + 1``-th last user message on (the newest round is the request's own)."""
    users_seen = 0
    for index in range(len(messages) - 1, -1, -1):
        if messages[index].role == "user":
            users_seen += 1
            if users_seen > limit:
                return list(messages[index:])
    return list(messages)
