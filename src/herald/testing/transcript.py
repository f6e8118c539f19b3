"""Reading what a listener was shown: subtitle words and predicates over data-channel messages."""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any

from herald.testing.audio_client import STATE_LISTENING, DataMessage


def words(text: str) -> list[str]:
    """Lower-case words, punctuation dropped: how subtitles are compared with the text that was sent."""
    return re.findall(r"[\w']+", text.lower())


def spoken_words(subtitles: list[DataMessage]) -> list[str]:
    """The words the subtitles showed: the latest text of each sentence, in order."""
    latest: dict[Any, str] = {}
    for message in subtitles:
        latest[message.data.get("sentenceId")] = message.data.get("text", "")
    return words(" ".join(latest.values()))


def shows(text: str) -> Callable[[DataMessage], bool]:
    """A predicate: a ``1002`` subtitle whose text belongs to ``text``."""
    whole = " ".join(words(text))
    return lambda m: bool(words(m.data.get("text", ""))) and " ".join(words(m.data["text"])) in whole


def is_listening(message: DataMessage) -> bool:
    return bool(message.data.get("state") == STATE_LISTENING)
