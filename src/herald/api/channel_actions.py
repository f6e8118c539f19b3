"""Actions on the call's data channel: ``SendAIAgentDataChannelMessage``."""

from __future__ import annotations

import json
from typing import Any

from herald.api.context import ActionContext
from herald.api.params import Params
from herald.errors import InvalidParameter

MAX_MESSAGE_CHARS = 8192


async def send_data_channel_message(ctx: ActionContext, p: Params) -> dict[str, Any]:
    """``1011 {message}`` to every participant of the instance's call; ``Message`` is a JSON string."""
    instance_id = p.required_str("InstanceId", max_len=64)
    message = p.required_str("Message", max_len=MAX_MESSAGE_CHARS)
    try:
        json.loads(message)
    except ValueError:
        raise InvalidParameter("Message", "must be a JSON string (it did not parse as JSON).") from None
    await ctx.instances.send_data_channel_message(ctx.owner, instance_id, message)
    return {"RequestId": ctx.request_id}
