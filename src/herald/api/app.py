"""The ASGI application: routes, and a lifespan that owns the runtime."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import JSONResponse, RedirectResponse, Response
from starlette.routing import Mount, Route, WebSocketRoute
from starlette.staticfiles import StaticFiles

from herald import ids
from herald.api import webrtc
from herald.api.audio_ws import audio_socket
from herald.api.envelope import error_response
from herald.api.event_stream import instance_events
from herald.api.metrics import metrics_endpoint
from herald.api.openapi import openapi_endpoint
from herald.api.rpc import handle_rpc
from herald.config import Settings
from herald.errors import BadRequest, HeraldError, MethodNotAllowed, NotFound
from herald.runtime import Runtime


async def health(request: Request) -> JSONResponse:
    runtime: Runtime = request.app.state.runtime
    body: dict[str, object] = {"status": "ok", "liveInstances": runtime.instances.live_count}
    if runtime.cluster is not None:
        body.update(node=runtime.cluster.identity.node_id, draining=runtime.cluster.draining)
    return JSONResponse(body)


async def root(request: Request) -> Response:
    """``POST /`` is the RPC API; ``GET /`` too when it names an action (RPC style allows GET), else it
    leads to the console."""
    if (
        request.method == "GET"
        and "Action" not in request.query_params
        and "x-acs-action" not in request.headers
    ):
        return RedirectResponse("/console/")
    return await handle_rpc(request)


async def http_error(request: Request, exc: Exception) -> Response:
    """Routing's own refusals (no such path, a method the path does not take) in the ICE envelope too."""
    assert isinstance(exc, HTTPException)
    error: HeraldError
    if exc.status_code == 405:
        allowed = (exc.headers or {}).get("Allow", "")
        error = MethodNotAllowed(f"{request.method} is not supported on {request.url.path}; use {allowed}.")
    elif exc.status_code == 404:
        error = NotFound(f"There is nothing at {request.url.path[:200]}.")
    else:
        error = BadRequest(exc.detail, code="InvalidRequest")
    response = error_response(error, ids.request_id())
    response.status_code = exc.status_code
    for name, value in (exc.headers or {}).items():
        response.headers[name] = value
    return response


def create_app(settings: Settings, *, runtime_factory: type[Runtime] = Runtime) -> Starlette:
    @asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        runtime = await runtime_factory.start(settings)
        app.state.runtime = runtime
        try:
            yield
        finally:
            await runtime.close()

    return Starlette(
        routes=[
            Route("/", root, methods=["GET", "POST"]),
            Route("/health", health, methods=["GET"]),
            Route("/metrics", metrics_endpoint, methods=["GET"]),
            Route("/openapi.json", openapi_endpoint, methods=["GET"]),
            Route("/v1/instances/{instance_id}/events", instance_events, methods=["GET"]),
            WebSocketRoute("/v1/calls/{channel_id}/audio", audio_socket),
            Route("/v1/calls/{channel_id}/webrtc", webrtc.offer, methods=["POST"]),
            Route("/v1/calls/{channel_id}/webrtc/{session_id}", webrtc.leave, methods=["DELETE"]),
            Route("/v1/calls/{channel_id}/webrtc/{session_id}", webrtc.describe, methods=["GET"]),
            # The web console: static files, no build step (docs/console.md).
            Mount("/console", StaticFiles(packages=[("herald", "console")], html=True), name="console"),
        ],
        lifespan=lifespan,
        exception_handlers={HTTPException: http_error},
    )
