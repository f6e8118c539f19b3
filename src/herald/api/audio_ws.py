"""``GET /v1/calls/{ChannelId}/audio?token=…&sample_rate=…``: the agent's audio and messages over a WebSocket.

Binary messages from the server carry 20 ms of 16-bit little-endian mono PCM each, paced in real time;
binary messages from the client are the user's microphone, the same format at the same rate, in any sizes
up to a second (``media/upstream.py``). Text messages carry the data-channel envelope, both ways (the
client may send the client → agent messages, ``docs/webrtc.md``).
A bad token, rate or channel is refused before the upgrade, with the envelope.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging

from starlette.websockets import WebSocket, WebSocketDisconnect

from herald import ids
from herald.agents.client_messages import ClientMessages
from herald.agents.live import LiveInstance
from herald.api.call_auth import call_grant
from herald.api.envelope import error_response
from herald.cluster.proxy import proxy_websocket
from herald.errors import ChannelNotFound, HeraldError, InternalError, InvalidParameter
from herald.media.frames import CLIENT_SAMPLE_RATES_HZ
from herald.media.inbound import InboundAudio
from herald.media.room import Participant
from herald.media.upstream import PcmUpstream, UpstreamError
from herald.observability.logs import set_log_context
from herald.runtime import Runtime

_log = logging.getLogger(__name__)

DEFAULT_SAMPLE_RATE_HZ = 16_000


def _sample_rate(websocket: WebSocket) -> int:
    raw = websocket.query_params.get("sample_rate")
    if raw is None or raw == "":
        return DEFAULT_SAMPLE_RATE_HZ
    if not raw.isdigit() or int(raw) not in CLIENT_SAMPLE_RATES_HZ:
        allowed = ", ".join(str(r) for r in CLIENT_SAMPLE_RATES_HZ)
        raise InvalidParameter("sample_rate", f"must be one of {allowed} (got {raw!r}).")
    return int(raw)


async def audio_socket(websocket: WebSocket) -> None:
    runtime: Runtime = websocket.app.state.runtime
    channel_id = websocket.path_params["channel_id"]
    try:
        grant = call_grant(runtime, websocket.headers, websocket.query_params, channel_id)
        if runtime.cluster is not None and not runtime.instances.has_channel(channel_id):
            node_url = await runtime.cluster.channel_url(channel_id)
            if node_url is not None:  # the call runs on another node: relay to it
                await proxy_websocket(websocket, node_url)
                return
        with contextlib.suppress(ChannelNotFound):  # join() says so, in its turn
            set_log_context(instance_id=runtime.instances.live_in_channel(channel_id).instance_id)
        sample_rate_hz = _sample_rate(websocket)
        live, participant = await runtime.instances.join(channel_id, grant.user_id, sample_rate_hz)
    except HeraldError as exc:
        await websocket.send_denial_response(error_response(exc, ids.request_id()))
        return
    except Exception:
        request_id = ids.request_id()
        _log.exception("joining channel %s failed (request %s)", channel_id, request_id)
        error = InternalError("An internal error occurred; it has been logged.")
        await websocket.send_denial_response(error_response(error, request_id))
        return

    await websocket.accept()
    _log.info("user %s joined channel %s at %d Hz", grant.user_id, channel_id, sample_rate_hz)
    microphone = InboundAudio(grant.user_id)
    live.attach_microphone(participant, microphone)
    upstream = PcmUpstream(sample_rate_hz, microphone, runtime.clock)
    reader = asyncio.create_task(
        _read_incoming(websocket, runtime.client_messages, live, participant, upstream),
        name=f"ws-read-{channel_id}",
    )
    try:
        while not reader.done():
            item = await participant.get()
            if item is None:  # the instance stopped
                break
            if isinstance(item, bytes):
                await websocket.send_bytes(item)
            else:
                await websocket.send_text(item)
    except (WebSocketDisconnect, RuntimeError, OSError):
        pass  # the client went away mid-send
    finally:
        reader.cancel()
        with contextlib.suppress(asyncio.CancelledError, Exception):
            await reader
        runtime.instances.leave(live, participant)
        with contextlib.suppress(Exception):
            await websocket.close()
        _log.info("user %s left channel %s", grant.user_id, channel_id)


async def _read_incoming(
    websocket: WebSocket,
    messages: ClientMessages,
    live: LiveInstance,
    participant: Participant,
    upstream: PcmUpstream,
) -> None:
    """Act on the client's text messages (the data-channel messages, in order) until it disconnects;
    binary messages are the user's microphone (16-bit PCM at the socket's rate). Leaving does not cut an
    action short (``1100`` stops the instance)."""
    with contextlib.suppress(WebSocketDisconnect):
        while True:
            message = await websocket.receive()
            if message["type"] == "websocket.disconnect":
                return
            text = message.get("text")
            if text is not None:
                await asyncio.shield(messages.handle(live, participant, text))
                continue
            data = message.get("bytes")
            if data:
                try:
                    upstream.push(data)
                except UpstreamError as exc:
                    live.send_error(participant, "InvalidAudio", str(exc))
