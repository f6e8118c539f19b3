"""WHIP/WHEP-style signalling: ``POST /v1/calls/{ChannelId}/webrtc`` with an SDP offer joins the call.

``201`` answers with the SDP answer and ``Location`` of the session; ``DELETE`` on it leaves, ``GET`` on
it describes the session. Every refusal is the ICE envelope (``docs/webrtc.md`` lists them).
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Awaitable, Callable

from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from herald import ids
from herald.api.body import read_body
from herald.api.call_auth import call_grant
from herald.api.envelope import error_response
from herald.cluster.proxy import proxy_http
from herald.errors import ChannelNotFound, HeraldError, InternalError, InvalidParameter, UnsupportedMediaType
from herald.observability.logs import set_log_context
from herald.runtime import Runtime

_log = logging.getLogger(__name__)

MAX_OFFER_BYTES = 64 * 1024
SDP_TYPE = "application/sdp"


def _enveloped(
    handler: Callable[[Request, Runtime, str], Awaitable[Response]],
) -> Callable[[Request], Awaitable[Response]]:
    """Run ``handler``; any refusal becomes the envelope, any bug a logged ``InternalError``."""

    async def endpoint(request: Request) -> Response:
        request_id = ids.request_id()
        set_log_context(request_id=request_id)  # this request's task, and the session tasks it starts
        try:
            return await handler(request, request.app.state.runtime, request_id)
        except HeraldError as exc:
            _log.info("WebRTC request %s refused: %s %s", request_id, exc.code, exc.message)
            return error_response(exc, request_id)
        except Exception:
            _log.exception("WebRTC request %s failed", request_id)
            error = InternalError("An internal error occurred; it has been logged.")
            return error_response(error, request_id)

    return endpoint


async def _offer(request: Request, runtime: Runtime, request_id: str) -> Response:
    channel_id = request.path_params["channel_id"]
    grant = call_grant(runtime, request.headers, request.query_params, channel_id)
    relayed = await _relay(request, runtime, channel_id, MAX_OFFER_BYTES)
    if relayed is not None:
        return relayed
    _bind_instance(runtime, channel_id)
    content_type = request.headers.get("content-type", "").partition(";")[0].strip().lower()
    if content_type != SDP_TYPE:
        raise UnsupportedMediaType(
            f"The offer must be sent with Content-Type: {SDP_TYPE} (got {content_type or 'none'!r})."
        )
    body = await read_body(request, MAX_OFFER_BYTES)
    try:
        offer = body.decode("utf-8")
    except UnicodeDecodeError:
        raise InvalidParameter("SDP", "the offer must be UTF-8 text.") from None
    session, answer = await runtime.rtc.open(channel_id, grant.user_id, offer)
    return Response(
        answer,
        status_code=201,
        media_type=SDP_TYPE,
        headers={
            "Location": f"/v1/calls/{channel_id}/webrtc/{session.session_id}",
            "X-Herald-Session-Id": session.session_id,
            "x-acs-request-id": request_id,
        },
    )


async def _leave(request: Request, runtime: Runtime, request_id: str) -> Response:
    channel_id = request.path_params["channel_id"]
    grant = call_grant(runtime, request.headers, request.query_params, channel_id)
    relayed = await _relay(request, runtime, channel_id, 0)
    if relayed is not None:
        return relayed
    _bind_instance(runtime, channel_id)
    session = runtime.rtc.get(request.path_params["session_id"], channel_id=channel_id, user_id=grant.user_id)
    await runtime.rtc.close(session, "the user left (DELETE)")
    return JSONResponse({"RequestId": request_id})


async def _describe(request: Request, runtime: Runtime, request_id: str) -> Response:
    channel_id = request.path_params["channel_id"]
    grant = call_grant(runtime, request.headers, request.query_params, channel_id)
    relayed = await _relay(request, runtime, channel_id, 0)
    if relayed is not None:
        return relayed
    _bind_instance(runtime, channel_id)
    session = runtime.rtc.get(request.path_params["session_id"], channel_id=channel_id, user_id=grant.user_id)
    return JSONResponse({"RequestId": request_id, **session.describe()})


async def _relay(request: Request, runtime: Runtime, channel_id: str, max_body: int) -> Response | None:
    """In a cluster, a call running on another node: its answer to this request, relayed (else ``None``)."""
    if runtime.cluster is None or runtime.instances.has_channel(channel_id):
        return None
    node_url = await runtime.cluster.channel_url(channel_id)
    if node_url is None:
        return None
    body = await read_body(request, max_body) if max_body else b""
    return await proxy_http(request, body, node_url, runtime.cluster.http)


def _bind_instance(runtime: Runtime, channel_id: str) -> None:
    """Log the rest of the request (and the session's tasks) with the channel's instance, if it has one."""
    with contextlib.suppress(ChannelNotFound):  # the handler says so, in its turn
        set_log_context(instance_id=runtime.instances.live_in_channel(channel_id).instance_id)


offer = _enveloped(_offer)
leave = _enveloped(_leave)
describe = _enveloped(_describe)
