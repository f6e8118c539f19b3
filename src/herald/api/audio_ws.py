"""``GET /v1/calls/{ChannelId}/audio?token=…&sample_rate=…``: the agent's audio and messages over a WebSocket.

Binary messages carry 20 ms of 16-bit little-endian mono PCM each, paced in real time; text messages carry
the data-channel envelope. A bad token, rate or channel is refused before the upgrade, with the envelope.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging

from starlette.websockets import WebSocket, WebSocketDisconnect

from herald import ids
from herald.api.envelope import error_response
from herald.errors import HeraldError, InternalError, InvalidParameter, MissingParameter
from herald.media.frames import CLIENT_SAMPLE_RATES_HZ
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


def _token(websocket: WebSocket) -> str:
    """The call token: ``Authorization: Bearer …`` (kept out of URLs and logs) or the ``token`` parameter."""
    scheme, _, credentials = websocket.headers.get("authorization", "").partition(" ")
    if scheme.lower() == "bearer" and credentials.strip():
        return credentials.strip()
    token = websocket.query_params.get("token")
    if not token:
        raise MissingParameter("token")
    return token


async def audio_socket(websocket: WebSocket) -> None:
    runtime: Runtime = websocket.app.state.runtime
    channel_id = websocket.path_params["channel_id"]
    try:
        token = _token(websocket)
        sample_rate_hz = _sample_rate(websocket)
        grant = runtime.tokens.verify(token, channel_id=channel_id, now=runtime.clock.now())
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
    reader = asyncio.create_task(_drain_incoming(websocket), name=f"ws-read-{channel_id}")
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


async def _drain_incoming(websocket: WebSocket) -> None:
    """Read (and for now ignore) what the client sends, so a disconnect is noticed at once."""
    with contextlib.suppress(WebSocketDisconnect):
        while True:
            message = await websocket.receive()
            if message["type"] == "websocket.disconnect":
                return
