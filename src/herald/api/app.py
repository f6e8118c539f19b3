"""The ASGI application: routes, and a lifespan that owns the runtime."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, RedirectResponse, Response
from starlette.routing import Mount, Route, WebSocketRoute
from starlette.staticfiles import StaticFiles

from herald.api import webrtc
from herald.api.audio_ws import audio_socket
from herald.api.event_stream import instance_events
from herald.api.metrics import metrics_endpoint
from herald.api.rpc import handle_rpc
from herald.config import Settings
from herald.runtime import Runtime


async def health(request: Request) -> JSONResponse:
    runtime: Runtime = request.app.state.runtime
    return JSONResponse({"status": "ok", "liveInstances": runtime.instances.live_count})


async def get_root(request: Request) -> Response:
    """``GET /``: an RPC call when it names an action (RPC style allows GET), else the console."""
    if "Action" in request.query_params or "x-acs-action" in request.headers:
        return await handle_rpc(request)
    return RedirectResponse("/console/")


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
            Route("/", handle_rpc, methods=["POST"]),
            Route("/", get_root, methods=["GET"]),
            Route("/health", health, methods=["GET"]),
            Route("/metrics", metrics_endpoint, methods=["GET"]),
            Route("/v1/instances/{instance_id}/events", instance_events, methods=["GET"]),
            WebSocketRoute("/v1/calls/{channel_id}/audio", audio_socket),
            Route("/v1/calls/{channel_id}/webrtc", webrtc.offer, methods=["POST"]),
            Route("/v1/calls/{channel_id}/webrtc/{session_id}", webrtc.leave, methods=["DELETE"]),
            Route("/v1/calls/{channel_id}/webrtc/{session_id}", webrtc.describe, methods=["GET"]),
            # The web console: static files, no build step (docs/console.md).
            Mount("/console", StaticFiles(packages=[("herald", "console")], html=True), name="console"),
        ],
        lifespan=lifespan,
    )
