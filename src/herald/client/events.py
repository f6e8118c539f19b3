"""One readable line per data-channel message, for ``herald call``.

[  2.34] speaking
[  2.36] subtitle #1: "Hello, welcome to use our service"
[  4.80] speech 1F2E... finished: heard "Hello, welcome to use our service"
"""

from __future__ import annotations

import json
from typing import Any, Final

from herald.client.messages import Message, MessageType

STATES: Final = {1: "listening", 2: "thinking", 3: "speaking"}
INTERRUPT_REASONS: Final = {
    0: "for an unknown reason",
    1: "by the user's words",
    2: "by the user's voice",
    3: "by a client request",
    4: "by a pushed speech",
    5: "by a question to the LLM",
}
_TEXT_LIMIT: Final = 200


def describe(message: Message) -> str:
    """What ``message`` says, in one line (no timestamp)."""
    if message.error:
        return f"malformed message ({message.error}): {_clip(message.raw)}"
    data = message.data
    match message.type:
        case MessageType.ERROR:
            request = f" (speech {data['requestId']})" if data.get("requestId") else ""
            return f"error {data.get('code', '?')}: {_text(data.get('message'))}{request}"
        case MessageType.AGENT_STATE:
            state = data.get("state")
            return f"agent {STATES.get(_int(state), f'in state {state!r}')}"
        case MessageType.AGENT_SUBTITLE:
            played = " played" if data.get("end") else ""
            return f"subtitle #{data.get('sentenceId', '?')}{played}: {_quote(data.get('text'))}"
        case MessageType.USER_SUBTITLE:
            said = "you said" if data.get("end", True) else "you are saying"
            return f"{said}: {_quote(data.get('text'))}"
        case MessageType.VOICE_CHANGED:
            return f"voice changed to {data.get('voiceId', '?')}"
        case MessageType.AGENT_WILL_LEAVE:
            why = _text(data.get("message")) or f"reason {data.get('reason', '?')}"
            return f"the agent is leaving: {why}"
        case MessageType.CUSTOM_MESSAGE:
            return f"message: {_text(data.get('message'))}"
        case MessageType.SPEAKING_INTERRUPTED:
            reason = data.get("reason")
            return f"interrupted {INTERRUPT_REASONS.get(_int(reason), f'(reason {reason!r})')}"
        case MessageType.SPEECH_OUTCOME:
            return _outcome(data)
    return f"message {message.type}: {_clip(json.dumps(data, ensure_ascii=False))}"


def line(message: Message, start_s: float) -> str:
    """``[seconds since start_s] description``."""
    return f"[{message.received_s - start_s:7.2f}] {describe(message)}"


def _outcome(data: dict[str, Any]) -> str:
    state = str(data.get("state", "?"))
    head = f"speech {data.get('requestId', '?')} {state}"
    heard = _quote(data.get("heardText")) if data.get("heardText") else "nothing"
    reason = _text(data.get("reason"))
    if state == "finished":
        return f"{head}: heard {heard}"
    if state == "interrupted":
        played_s = max(_int(data.get("playedMs")), 0) / 1000
        return f"{head} after {played_s:.1f} s: heard {heard}"
    return f"{head}: {reason}" if reason else head


def _int(value: Any) -> int:
    return value if isinstance(value, int) and not isinstance(value, bool) else -1


def _text(value: Any) -> str:
    return _clip(" ".join(str(value).split())) if value is not None else ""


def _quote(value: Any) -> str:
    return json.dumps(_text(value), ensure_ascii=False)


def _clip(text: str) -> str:
    return text if len(text) <= _TEXT_LIMIT else text[: _TEXT_LIMIT - 3] + "..."
