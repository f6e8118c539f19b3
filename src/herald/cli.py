"""The ``herald`` command: ``serve`` runs the server, ``token`` mints a call token, ``say`` pushes a speech
and ``call`` joins a call from the terminal (the last two in ``herald.client.commands``); ``accounts``,
``users``, ``keys`` and ``policies`` manage who may call (``herald.admin.commands``)."""

from __future__ import annotations

import argparse
import asyncio
import dataclasses
import sys
from collections.abc import Sequence
from types import FrameType

from herald import __version__
from herald.config import ConfigError, Settings, ensure_token_secret, load_settings
from herald.observability.logs import LOG_FORMATS, configure_logging

DEFAULT_TOKEN_EXPIRE_S = 3600


def _serve(settings: Settings, args: argparse.Namespace) -> int:
    import uvicorn

    from herald.api.app import create_app
    from herald.client.credentials import http_url

    host = args.host or settings.host
    port = args.port if args.port is not None else settings.port
    settings = dataclasses.replace(settings, host=host, port=port)  # a cluster node advertises them
    app = create_app(settings)

    class Server(uvicorn.Server):
        draining: set[asyncio.Task[None]] | None = None

        def handle_exit(self, sig: int, frame: FrameType | None) -> None:
            runtime = getattr(app.state, "runtime", None)
            if self.draining is None and runtime is not None and runtime.cluster is not None:
                # A cluster node drains first: it takes no new instances and lets current speech end,
                # still serving its calls; then the usual shutdown. A second signal stops at once.
                self.draining = set()
                loop = asyncio.get_running_loop()  # a signal handler runs on the loop's thread
                loop.call_soon_threadsafe(self._start_drain, loop, sig, frame)
                return
            self._exit(sig, frame)

        def _start_drain(self, loop: asyncio.AbstractEventLoop, sig: int, frame: FrameType | None) -> None:
            assert self.draining is not None
            self.draining.add(loop.create_task(self._drain_then_exit(sig, frame), name="drain"))

        async def _drain_then_exit(self, sig: int, frame: FrameType | None) -> None:
            try:
                await app.state.runtime.drain()
            finally:
                self._exit(sig, frame)

        def _exit(self, sig: int, frame: FrameType | None) -> None:
            super().handle_exit(sig, frame)
            # uvicorn re-raises the signal after a graceful shutdown, so the process would end "killed by
            # SIGTERM" (143). For Herald SIGTERM/SIGINT *ask* for a clean stop: once it is done, exit 0.
            self._captured_signals.clear()

    configure_logging(args.log_level, args.log_format)
    config = uvicorn.Config(
        app,
        host=host,
        port=port,
        # uvloop and httptools: the fastest event loop and HTTP parser for uvicorn (docs/performance.md).
        loop="uvloop",
        http="httptools",
        ws="websockets-sansio",
        # Audio does not compress: deflating every 20 ms frame cost CPU for nothing.
        ws_per_message_deflate=False,
        lifespan="on",
        # uvicorn's loggers go to the handler configure_logging installed, in the same format and levels.
        log_config=None,
        log_level=None,
        access_log=False,
        timeout_graceful_shutdown=5,
    )
    server = Server(config)
    print(f"Herald {__version__} listening on http://{host}:{port} (data in {settings.data_dir})", flush=True)
    print(f"Console: {http_url(host, port)}/console/", flush=True)
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


def _say(settings: Settings, args: argparse.Namespace) -> int:
    from herald.client.commands import say

    return say(settings, args)


def _call(settings: Settings, args: argparse.Namespace) -> int:
    from herald.client.commands import call

    if (args.channel_id is None) == (args.agent is None):
        print("herald call: give either CHANNEL_ID with --token, or --agent AGENT_ID", file=sys.stderr)
        return 2
    if args.channel_id is not None and not args.token:
        print("herald call: joining CHANNEL_ID needs --token (see `herald token`)", file=sys.stderr)
        return 2
    if args.agent is not None and args.token:
        print("herald call: --token is for joining CHANNEL_ID; --agent makes its own call", file=sys.stderr)
        return 2
    if args.seconds is not None and not args.seconds > 0:
        print("herald call: --seconds must be more than 0", file=sys.stderr)
        return 2
    return call(settings, args)


def _add_endpoint(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--endpoint",
        metavar="URL",
        help="the server's base URL (default: http://HOST:PORT of the configured server, 127.0.0.1:8080)",
    )


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="herald", description="Self-hosted runtime for real-time voice AI agents."
    )
    parser.add_argument("--version", action="version", version=f"herald {__version__}")
    commands = parser.add_subparsers(dest="command", required=True)

    serve = commands.add_parser("serve", help="run the server in the foreground")
    serve.add_argument("--host", help="address to listen on (default 127.0.0.1)")
    serve.add_argument("--port", type=int, help="port to listen on (default 8080)")
    serve.add_argument(
        "--log-level",
        default="info",
        choices=["debug", "info", "warning", "error"],
        help="Herald's own log level (libraries log at info at the most detailed)",
    )
    serve.add_argument(
        "--log-format",
        default="json",
        choices=LOG_FORMATS,
        help="json: one JSON object per line on stderr (the default); text: for a human at a terminal",
    )
    serve.set_defaults(run=_serve)

    token = commands.add_parser(
        "token", help="mint a call token for a channel (for StartAIAgentInstance calls)"
    )
    token.add_argument("--channel", required=True, help="the ChannelId the token admits to")
    token.add_argument("--user", required=True, help="the UserId the token is issued to")
    token.add_argument("--expire", type=int, default=DEFAULT_TOKEN_EXPIRE_S, help="lifetime in seconds")
    token.set_defaults(run=_token)

    say = commands.add_parser(
        "say",
        help="make a live agent say a text now (SendAIAgentSpeech); prints the RequestId",
        description="Push a speech to a live agent instance, signed with the configured key "
        "(HERALD_ACCESS_KEY_ID/HERALD_ACCESS_KEY_SECRET, else the development key in the data directory).",
    )
    say.add_argument("instance_id", metavar="INSTANCE_ID", help="the agent instance (InstanceId)")
    say.add_argument("text", metavar="TEXT", help="what to say (with --audio-url: the URL of an audio file)")
    say.add_argument("--append", action="store_true", help="play after what is queued instead of cutting it")
    say.add_argument(
        "--audio-url", action="store_true", help="TEXT is the URL of an audio file to play (Type=AudioUrl)"
    )
    _add_endpoint(say)
    say.set_defaults(run=_say)

    call = commands.add_parser(
        "call",
        help="join a call and listen: print its events, record it to a WAV file",
        description="Join CHANNEL_ID with --token, or start a new call of --agent (GenerateAIAgentCall "
        "with the configured key) and join it. Events are printed as they come; on leaving (Ctrl-C, "
        "--seconds, or the agent leaving) the audio is written to a WAV file.",
    )
    call.add_argument("channel_id", metavar="CHANNEL_ID", nargs="?", help="the channel to join")
    call.add_argument("--token", help="the call token for CHANNEL_ID")
    call.add_argument("--agent", metavar="AGENT_ID", help="start a new call of this agent and join it")
    call.add_argument(
        "--transport", choices=["webrtc", "websocket"], default="webrtc", help="how to join (default webrtc)"
    )
    call.add_argument("--out", metavar="FILE.wav", help="where to write the audio (default call-CHANNEL.wav)")
    call.add_argument(
        "--seconds",
        type=float,
        help="leave after this many seconds (default: on Ctrl-C or when the agent leaves)",
    )
    _add_endpoint(call)
    call.set_defaults(run=_call)

    from herald.admin.commands import register

    register(commands)
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
