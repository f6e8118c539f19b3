"""The client commands: ``herald say`` pushes a speech, ``herald call`` joins a call and listens.

Each returns the process's exit code and reports every failure as one line on stderr
(``herald say: ...``): the ICE ``Code`` and ``Message`` when the server answered, what could not be
reached otherwise. Nothing here prints a traceback.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import signal
import sys
import time
from collections.abc import Callable, Coroutine
from pathlib import Path
from typing import Any, TextIO

from herald.client import events
from herald.client.audio import AudioChunk
from herald.client.credentials import configured_key, default_endpoint
from herald.client.errors import ClientError, Refused
from herald.client.messages import Message, MessageType
from herald.client.rpc import RpcClient
from herald.client.rtc import RtcCall
from herald.client.session import CallSession
from herald.client.wav import WavWriter
from herald.client.ws import WsCall
from herald.config import Settings

EXIT_OK = 0
EXIT_FAILED = 1
LEAVING_GRACE_S = 3.0
"""After the agent says it leaves (1010), how long to wait for the server to close the call."""
POLL_S = 0.1
SAMPLE_RATE_HZ = 48_000
"""The WAV's rate: WebRTC's own, and asked of the WebSocket so both transports record alike."""


def say(settings: Settings, args: argparse.Namespace) -> int:
    """``herald say INSTANCE_ID TEXT``: print the speech's RequestId."""
    return _run("herald say", _say(settings, args))


def call(settings: Settings, args: argparse.Namespace) -> int:
    """``herald call``: join (a new call with ``--agent``), print events, write the WAV on leaving."""
    return _run("herald call", _call(settings, args, sys.stdout))


def _run(prog: str, command: Coroutine[Any, Any, int]) -> int:
    try:
        return asyncio.run(command)
    except ClientError as exc:
        print(f"{prog}: {_explain(exc)}", file=sys.stderr)
    except OSError as exc:  # a file we could not write, say
        print(f"{prog}: {exc}", file=sys.stderr)
    except KeyboardInterrupt:  # Ctrl-C before the command could take over the signal
        print(f"{prog}: interrupted", file=sys.stderr)
    except Exception as exc:  # a bug: still one line, never a traceback (the user can do nothing with it)
        print(f"{prog}: unexpected error: {type(exc).__name__}: {exc}", file=sys.stderr)
    return EXIT_FAILED


def _explain(exc: ClientError) -> str:
    if isinstance(exc, Refused):
        return f"the server refused: {exc}"
    return str(exc)


# -- say ------------------------------------------------------------------------------------------------


async def _say(settings: Settings, args: argparse.Namespace) -> int:
    key = configured_key(settings)
    extra: dict[str, str] = {}
    if args.append:
        extra["EnableInterrupt"] = "false"
    if args.audio_url:
        extra["Type"] = "AudioUrl"
    async with RpcClient(args.endpoint or default_endpoint(settings), key.access_key_id, key.secret) as rpc:
        request_id = await rpc.speak(args.instance_id, args.text, **extra)
    print(request_id, flush=True)
    return EXIT_OK


# -- call -----------------------------------------------------------------------------------------------


class _Recording:
    """The WAV file being written, how much speech went into it, and whether the agent said it leaves."""

    def __init__(self, path: Path, sample_rate_hz: int) -> None:
        self.path = path
        try:
            self.writer = WavWriter(path, sample_rate_hz)
        except OSError as exc:
            raise ClientError(f"cannot write {path}: {exc.strerror or exc}") from None
        self.speech_s = 0.0
        self.agent_leaving_s: float | None = None
        """When the agent announced that it leaves (1010)."""

    def add(self, chunk: AudioChunk) -> None:
        self.writer.write(chunk.pcm)
        if chunk.is_speech:
            self.speech_s += chunk.duration_s

    def finish(self) -> float:
        """Close the file; return the seconds of audio written."""
        self.writer.close()
        return self.writer.seconds

    def discard(self) -> None:
        """Close and remove the file (the call never happened)."""
        self.writer.close()
        self.path.unlink(missing_ok=True)


async def _call(settings: Settings, args: argparse.Namespace, out: TextIO) -> int:
    def show(text: str) -> None:
        print(text, file=out, flush=True)

    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)

    endpoint = args.endpoint or default_endpoint(settings)
    rpc: RpcClient | None = None
    instance_id: str | None = None
    try:
        if args.agent is not None:
            key = configured_key(settings)
            rpc = RpcClient(endpoint, key.access_key_id, key.secret)
            generated = await rpc.generate_call(args.agent)
            instance_id, channel_id, token = generated.instance_id, generated.channel_id, generated.token
            show(f"InstanceId: {instance_id}")
            show(f"ChannelId:  {channel_id}")
            show(f'Make it speak:  herald say {instance_id} "Hello there"')
        else:
            channel_id, token = args.channel_id, args.token
        return await _listen(args, endpoint, channel_id, token, stop, show)
    finally:
        if rpc is not None:
            if instance_id is not None:
                with contextlib.suppress(ClientError):  # it may have ended already
                    await rpc.stop(instance_id)
                    show(f"stopped instance {instance_id}")
            await rpc.close()


async def _listen(
    args: argparse.Namespace,
    endpoint: str,
    channel_id: str,
    token: str,
    stop: asyncio.Event,
    show: Callable[[str], None],
) -> int:
    clock = time.monotonic  # the sessions' clock too: message times and ours compare
    start_s = clock()
    transport: str = args.transport
    recording = _Recording(Path(args.out or f"call-{channel_id}.wav"), SAMPLE_RATE_HZ)

    def on_message(message: Message) -> None:
        show(events.line(message, start_s))
        if message.type == MessageType.AGENT_WILL_LEAVE and recording.agent_leaving_s is None:
            recording.agent_leaving_s = message.received_s

    session: CallSession
    if transport == "webrtc":
        session = RtcCall(
            endpoint,
            channel_id,
            token,
            clock=clock,
            keep_audio=False,
            on_audio=recording.add,
            on_message=on_message,
        )
    else:
        session = WsCall(
            endpoint,
            channel_id,
            token,
            sample_rate_hz=SAMPLE_RATE_HZ,
            clock=clock,
            keep_audio=False,
            on_audio=recording.add,
            on_message=on_message,
        )
    show(f"connecting to {channel_id} over {transport}...")
    joining = asyncio.ensure_future(session.join())
    try:
        await _first(joining, stop)
        if not joining.done():
            joining.cancel()
            with contextlib.suppress(asyncio.CancelledError, ClientError):
                await joining
            show("left before the call was joined")
            recording.discard()
            return EXIT_OK
        joining.result()
    except BaseException:
        await _quietly_leave(session)
        recording.discard()
        raise
    show("joined, listening; Ctrl-C to leave")

    why = await _wait_for_end(session, stop, args.seconds, recording, clock)
    show(why)
    try:
        await session.leave()
    finally:
        seconds = recording.finish()
        show(f"wrote {recording.path}: {seconds:.1f} s of audio, {recording.speech_s:.1f} s of speech")
    return EXIT_OK


async def _first(task: asyncio.Future[Any], stop: asyncio.Event) -> None:
    """Wait until ``task`` is done or ``stop`` is set."""
    stopping: asyncio.Future[Any] = asyncio.ensure_future(stop.wait())
    try:
        await asyncio.wait({task, stopping}, return_when=asyncio.FIRST_COMPLETED)
    finally:
        stopping.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await stopping


async def _wait_for_end(
    session: CallSession,
    stop: asyncio.Event,
    seconds: float | None,
    recording: _Recording,
    clock: Callable[[], float],
) -> str:
    """Wait until Ctrl-C, ``seconds``, or the end of the call; say which."""
    joined_s = clock()
    while True:
        now = clock()
        if stop.is_set():
            return "leaving (interrupted)"
        if recording.agent_leaving_s is not None and (
            session.ended or now - recording.agent_leaving_s >= LEAVING_GRACE_S
        ):
            return "the agent left the call"
        if session.ended:
            return f"the call ended: {session.end_reason}"
        if seconds is not None and now - joined_s >= seconds:
            return f"leaving after {seconds:g} s"
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(stop.wait(), POLL_S)


async def _quietly_leave(session: CallSession) -> None:
    with contextlib.suppress(ClientError):
        await session.leave()
