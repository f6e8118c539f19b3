"""Joining a call on any node: the node that does not run the channel's instance proxies to the one that does.

Proxying (rather than redirecting) keeps every client working unchanged behind a load balancer: browsers
do not follow redirects of WebSocket upgrades, and a WebRTC offer answered elsewhere would need the client
to know the node. The WebSocket's frames take one more hop (node to node); WebRTC's media does not — only
its signalling is proxied, and the answer's candidates are the owner's, so media flows to it directly.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging

import httpx
from starlette.requests import Request
from starlette.responses import Response
from starlette.websockets import WebSocket, WebSocketDisconnect
from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed, InvalidStatus

from herald import ids
from herald.api.envelope import error_response
from herald.errors import ServiceUnavailable

_log = logging.getLogger(__name__)

_FORWARDED_REQUEST_HEADERS = ("authorization", "content-type", "accept")
_FORWARDED_RESPONSE_HEADERS = ("content-type", "location", "x-herald-session-id", "x-acs-request-id")
OPEN_TIMEOUT_S = 5.0
MAX_MESSAGE_BYTES = 1 << 20


def _ws_url(node_url: str, path: str, query: str) -> str:
    base = "ws" + node_url.removeprefix("http")  # http → ws, https → wss
    return f"{base}{path}" + (f"?{query}" if query else "")


async def proxy_websocket(websocket: WebSocket, node_url: str) -> None:
    """Relay ``websocket`` to the same path on ``node_url``: its refusal as the refusal, then every message
    both ways until either side closes."""
    url = _ws_url(node_url, websocket.url.path, websocket.url.query)
    headers = {k: v for k, v in websocket.headers.items() if k.lower() == "authorization"}
    try:
        upstream = await connect(
            url,
            additional_headers=headers,
            compression=None,
            proxy=None,
            open_timeout=OPEN_TIMEOUT_S,
            ping_interval=None,
            max_size=MAX_MESSAGE_BYTES,
        )
    except InvalidStatus as exc:  # the owner refused (bad token, rate, ...): the client gets its answer
        answer = exc.response
        media_type = answer.headers.get("Content-Type", "application/json")
        await websocket.send_denial_response(
            Response(answer.body or b"", status_code=answer.status_code, media_type=media_type)
        )
        return
    except (OSError, TimeoutError, ConnectionClosed) as exc:
        _log.warning("could not reach the node at %s for channel audio: %s", node_url, exc)
        error = ServiceUnavailable("The node running this call does not answer; retry shortly.")
        await websocket.send_denial_response(error_response(error, ids.request_id()))
        return
    await websocket.accept()
    async with upstream:
        down = asyncio.create_task(_downstream(upstream, websocket))
        up = asyncio.create_task(_upstream(websocket, upstream))
        await asyncio.wait({down, up}, return_when=asyncio.FIRST_COMPLETED)
        for task in (down, up):
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task
    with contextlib.suppress(Exception):
        await websocket.close()


async def _downstream(upstream: ClientConnection, websocket: WebSocket) -> None:
    with contextlib.suppress(ConnectionClosed, WebSocketDisconnect, RuntimeError, OSError):
        async for message in upstream:
            if isinstance(message, bytes):
                await websocket.send_bytes(message)
            else:
                await websocket.send_text(message)


async def _upstream(websocket: WebSocket, upstream: ClientConnection) -> None:
    with contextlib.suppress(ConnectionClosed, WebSocketDisconnect, RuntimeError, OSError):
        while True:
            message = await websocket.receive()
            if message["type"] == "websocket.disconnect":
                return
            if message.get("bytes") is not None:
                await upstream.send(message["bytes"])
            elif message.get("text") is not None:
                await upstream.send(message["text"])


async def proxy_http(request: Request, body: bytes, node_url: str, http: httpx.AsyncClient) -> Response:
    """Forward a signalling request (WebRTC offer, leave, describe) to ``node_url`` and relay its answer."""
    url = f"{node_url}{request.url.path}" + (f"?{request.url.query}" if request.url.query else "")
    headers = {k: v for k, v in request.headers.items() if k.lower() in _FORWARDED_REQUEST_HEADERS}
    try:
        answer = await http.request(request.method, url, headers=headers, content=body)
    except httpx.TransportError as exc:
        _log.warning("could not reach the node at %s for signalling: %s", node_url, exc)
        raise ServiceUnavailable("The node running this call does not answer; retry shortly.") from None
    relayed = {k: v for k, v in answer.headers.items() if k.lower() in _FORWARDED_RESPONSE_HEADERS}
    return Response(answer.content, status_code=answer.status_code, headers=relayed)
