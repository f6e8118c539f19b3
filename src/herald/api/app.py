"""The ASGI application: routes, and a lifespan that owns the runtime."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route, WebSocketRoute

from herald.api.audio_ws import audio_socket
from herald.api.rpc import handle_rpc
from herald.config import Settings
from herald.runtime import Runtime


async def health(request: Request) -> JSONResponse:
    runtime: Runtime = request.app.state.runtime
    return JSONResponse({"status": "ok", "liveInstances": runtime.instances.live_count})


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
            Route("/health", health, methods=["GET"]),
            WebSocketRoute("/v1/calls/{channel_id}/audio", audio_socket),
        ],
        lifespan=lifespan,
    )
