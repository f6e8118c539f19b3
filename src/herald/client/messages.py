"""Data-channel messages as a client sees them: the envelope ``{type, data, seqId, senderId, receiverId}``.

The same envelope comes over the WebRTC data channel and as the WebSocket's text messages
(``docs/webrtc.md``). Types are ``herald.media.messages.MessageType``.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from herald.media.messages import MessageType

__all__ = ["Message", "MessageType", "encode", "parse"]


@dataclass(frozen=True, slots=True)
class Message:
    """One message received, with its arrival time (the session's clock, seconds)."""

    received_s: float
    type: int
    """The envelope's ``type``; ``-1`` for a message that is not a well-formed envelope (see ``error``)."""
    data: dict[str, Any]
    seq_id: Any
    sender_id: Any
    receiver_id: Any
    raw: str
    error: str = ""
    """Why the message is not a well-formed envelope; empty when it is one."""


def parse(raw: str | bytes, received_s: float) -> Message:
    """Read an envelope; a malformed one becomes a ``Message`` of type ``-1`` that says what is wrong."""
    text = raw.decode("utf-8", "replace") if isinstance(raw, bytes) else raw
    try:
        envelope = json.loads(text)
    except ValueError as exc:
        return Message(received_s, -1, {}, None, None, None, text, f"not JSON ({exc})")
    if not isinstance(envelope, dict):
        return Message(received_s, -1, {}, None, None, None, text, "not a JSON object")
    kind = envelope.get("type")
    data = envelope.get("data", {})
    if data is None:
        data = {}
    if not isinstance(kind, int) or isinstance(kind, bool):
        return Message(received_s, -1, {}, None, None, None, text, "no integer type")
    if not isinstance(data, dict):
        return Message(received_s, -1, {}, None, None, None, text, "data is not an object")
    return Message(
        received_s,
        kind,
        data,
        envelope.get("seqId"),
        envelope.get("senderId"),
        envelope.get("receiverId"),
        text,
    )


def encode(msg_type: int, data: dict[str, Any] | None = None) -> str:
    """A client -> agent envelope; the server fills in what it needs besides ``type`` and ``data``."""
    return json.dumps({"type": msg_type, "data": data or {}}, ensure_ascii=False, separators=(",", ":"))
