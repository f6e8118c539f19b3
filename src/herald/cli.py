"""The ``herald`` command: ``serve`` runs the server, ``token`` mints a call token."""

from __future__ import annotations

import argparse
import logging
import sys
from collections.abc import Sequence
from types import FrameType

from herald import __version__
from herald.config import ConfigError, Settings, ensure_token_secret, load_settings

DEFAULT_TOKEN_EXPIRE_S = 3600


def _serve(settings: Settings, args: argparse.Namespace) -> int:
    import uvicorn

    class Server(uvicorn.Server):
        def handle_exit(self, sig: int, frame: FrameType | None) -> None:
            super().handle_exit(sig, frame)
            # uvicorn re-raises the signal after a graceful shutdown, so the process would end "killed by
            # SIGTERM" (143). For Herald SIGTERM/SIGINT *ask* for a clean stop: once it is done, exit 0.
            self._captured_signals.clear()

    from herald.api.app import create_app

    host = args.host or settings.host
    port = args.port if args.port is not None else settings.port
    logging.basicConfig(
        level=getattr(logging, args.log_level.upper()),
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
        stream=sys.stderr,
    )
    config = uvicorn.Config(
        create_app(settings),
        host=host,
        port=port,
        # uvloop and httptools: the fastest event loop and HTTP parser for uvicorn (docs/performance.md).
        loop="uvloop",
        http="httptools",
        ws="websockets-sansio",
        # Audio does not compress: deflating every 20 ms frame cost CPU for nothing.
        ws_per_message_deflate=False,
        lifespan="on",
        log_level=args.log_level,
        access_log=False,
        timeout_graceful_shutdown=5,
    )
    server = Server(config)
    print(f"Herald {__version__} listening on http://{host}:{port} (data in {settings.data_dir})", flush=True)
    server.run()
    return 0 if server.started else 1


def _token(settings: Settings, args: argparse.Namespace) -> int:
    from herald.auth.tokens import CallTokens
    from herald.clock import SystemClock

    if not 1 <= args.expire <= 604_800:
        print("herald token: --expire must be between 1 and 604800 seconds", file=sys.stderr)
        return 2
    tokens = CallTokens(ensure_token_secret(settings))
    print(tokens.mint(args.channel, args.user, now=SystemClock().now(), expire_s=args.expire))
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="herald", description="Self-hosted runtime for real-time voice AI agents."
    )
    parser.add_argument("--version", action="version", version=f"herald {__version__}")
    commands = parser.add_subparsers(dest="command", required=True)

    serve = commands.add_parser("serve", help="run the server in the foreground")
    serve.add_argument("--host", help="address to listen on (default 127.0.0.1)")
    serve.add_argument("--port", type=int, help="port to listen on (default 8080)")
    serve.add_argument("--log-level", default="info", choices=["debug", "info", "warning", "error"])
    serve.set_defaults(run=_serve)

    token = commands.add_parser(
        "token", help="mint a call token for a channel (for StartAIAgentInstance calls)"
    )
    token.add_argument("--channel", required=True, help="the ChannelId the token admits to")
    token.add_argument("--user", required=True, help="the UserId the token is issued to")
    token.add_argument("--expire", type=int, default=DEFAULT_TOKEN_EXPIRE_S, help="lifetime in seconds")
    token.set_defaults(run=_token)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        settings = load_settings()
    except ConfigError as exc:
        print(f"herald: configuration error: {exc}", file=sys.stderr)
        return 2
    result: int = args.run(settings, args)
    return result
