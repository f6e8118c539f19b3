"""The data-channel envelope: UTF-8 JSON ``{type, data, seqId, senderId, receiverId}`` (see the wire doc)."""

from __future__ import annotations

import enum
import json
from typing import Any


class MessageType(enum.IntEnum):
    # agent → client
    ERROR = 1000
    AGENT_STATE = 1001
    AGENT_SUBTITLE = 1002
    USER_SUBTITLE = 1003
    VOICE_INTERRUPT_ENABLED = 1004
    VOICE_CHANGED = 1005
    AGENT_WILL_LEAVE = 1010
    CUSTOM_MESSAGE = 1011
    SPEAKING_INTERRUPTED = 1016
    LLM_REPLY_COMPLETED = 1017
    # Herald's extensions (ICE clients ignore types they do not know)
    SPEECH_OUTCOME = 1900
    """How a pushed utterance ended: ``{requestId, state, playedMs, heardText, reason}``."""
    # client → agent
    STOP_AGENT = 1100
    INTERRUPT_SPEAKING = 1101
    ENABLE_VOICE_INTERRUPT = 1102
    SWITCH_VOICE = 1103
    SEND_TEXT = 1111
    CUSTOM_TO_SERVER = 1112
    QUERY_STATE = 1119


class AgentState(enum.IntEnum):
    LISTENING = 1
    THINKING = 2
    SPEAKING = 3


class InterruptReason(enum.IntEnum):
    UNKNOWN = 0
    BY_WORDS = 1
    BY_VOICE = 2
    BY_CLIENT = 3
    BY_SPEECH_BROADCAST = 4
    BY_LLM_QUERY = 5


def encode(msg_type: int, data: dict[str, Any], *, seq_id: int, sender_id: str, receiver_id: str = "") -> str:
    return json.dumps(
        {"type": msg_type, "data": data, "seqId": seq_id, "senderId": sender_id, "receiverId": receiver_id},
        ensure_ascii=False,
        separators=(",", ":"),
    )
