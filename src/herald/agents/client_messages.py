"""What a person in the call may ask of the agent over the data channel (or the WebSocket's text frames).

``1101`` interrupt, ``1102`` voice interrupt on/off, ``1103`` switch voice, ``1111`` a user turn as text,
``1119`` query state, ``1100`` stop. A message is untrusted
input: one that is not a JSON object with an integer ``type``, or asks for something that cannot be
done, gets a ``1000`` back to its sender and changes nothing; types Herald does not act on yet are
ignored, as ICE clients expect of a peer that does not know them.
"""

from __future__ import annotations

import json
import logging
from typing import Any

from herald.agents.live import LiveInstance
from herald.agents.manager import InstanceManager
from herald.agents.state import HangupRole
from herald.errors import HeraldError
from herald.media.messages import InterruptReason, MessageType
from herald.media.room import Participant

_log = logging.getLogger(__name__)

MAX_MESSAGE_BYTES = 8192
INVALID_MESSAGE = "InvalidMessage"
NOT_LISTENING = "IncorrectInstanceStatus.NotListening"


class ClientMessages:
    """Acts on messages from the participants of live instances."""

    def __init__(self, instances: InstanceManager) -> None:
        self._instances = instances

    async def handle(self, live: LiveInstance, sender: Participant, raw: str | bytes) -> None:
        """Act on one message from ``sender``; never raises for bad input (the sender gets a ``1000``)."""
        try:
            msg_type, data = _parse(raw)
        except ValueError as exc:
            live.send_error(sender, INVALID_MESSAGE, str(exc))
            return
        try:
            await self._act(live, sender, msg_type, data)
        except HeraldError as exc:
            live.send_error(sender, exc.code, exc.message)

    async def _act(
        self, live: LiveInstance, sender: Participant, msg_type: int, data: dict[str, Any]
    ) -> None:
        who = f"user {sender.user_id}"
        match msg_type:
            case MessageType.INTERRUPT_SPEAKING:
                live.interrupt(InterruptReason.BY_CLIENT, by=f"{who} (1101)")
            case MessageType.QUERY_STATE:
                live.send_state(sender)
            case MessageType.SWITCH_VOICE:
                voice_id = data.get("voiceId")
                if not isinstance(voice_id, str) or not voice_id:
                    live.send_error(sender, "InvalidParameter", "1103 needs data.voiceId, a voice name.")
                    return
                await self._instances.update(
                    live.owner,
                    live.instance_id,
                    agent_config={"TtsConfig": {"VoiceId": voice_id}},
                    template_config=None,
                    user_data=None,
                )
            case MessageType.SEND_TEXT:
                text = data.get("text")
                if not isinstance(text, str) or not text.strip():
                    live.send_error(sender, "InvalidParameter", "1111 needs data.text, what the user says.")
                    return
                await self._instances.send_text(live.owner, live.instance_id, text.strip())
            case MessageType.ENABLE_VOICE_INTERRUPT:
                enable = data.get("enable")
                if not isinstance(enable, bool):
                    live.send_error(sender, "InvalidParameter", "1102 needs data.enable, true or false.")
                    return
                if live.conversation is None or not live.conversation.listens:
                    live.send_error(sender, NOT_LISTENING, "The agent does not listen: [asr] is off.")
                    return
                live.conversation.voice_interrupt_enabled = enable
                live.send_message(MessageType.VOICE_INTERRUPT_ENABLED, {"enable": enable})
            case MessageType.STOP_AGENT:
                _log.info("%s asked instance %s to stop (1100)", who, live.instance_id)
                await self._instances.stop(live.owner, live.instance_id, hangup_role=HangupRole.USER)
            case _:
                _log.debug("ignoring message type %d from %s", msg_type, who)


def _parse(raw: str | bytes) -> tuple[int, dict[str, Any]]:
    """The message's ``type`` and ``data``; ``ValueError`` with a reason fit for the sender."""
    if isinstance(raw, bytes):
        raise ValueError("Messages are UTF-8 JSON text, not binary.")
    if len(raw.encode()) > MAX_MESSAGE_BYTES:
        raise ValueError(f"A message may be at most {MAX_MESSAGE_BYTES} bytes.")
    try:
        message = json.loads(raw)
    except ValueError:
        raise ValueError("The message is not JSON.") from None
    if not isinstance(message, dict):
        raise ValueError("The message must be a JSON object (the envelope {type, data, ...}).")
    msg_type = message.get("type")
    if not isinstance(msg_type, int) or isinstance(msg_type, bool):
        raise ValueError("The message needs an integer type.")
    data = message.get("data")
    if data is None:
        data = {}
    if not isinstance(data, dict):
        raise ValueError("The message's data must be a JSON object.")
    return msg_type, data
