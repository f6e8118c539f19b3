"""The PocketSphinx child process: utterances in on stdin, their text out on stdout, one at a time.

Run by ``pocketsphinx_asr.PocketSphinxRecognizer`` as ``python -m herald.listening.pocketsphinx_worker
NICENESS``. It loads one decoder (the ``en-us`` model shipped in the ``pocketsphinx`` package), writes
``READY``, then serves requests until stdin closes.

Protocol. A request is a big-endian u32 byte length and that many bytes of 16 kHz mono int16 PCM (native
byte order). Every message from the worker is a type byte, a big-endian u32 payload length and the payload:
one ``READY`` (empty) at start, then per request one ``TEXT`` (the hypothesis, UTF-8, "" for none) or one
``ERROR`` (a short reason). Imports nothing of Herald's but this package's docstring-only ``__init__``.
"""

from __future__ import annotations

import contextlib
import os
import signal
import struct
import sys
import traceback
from typing import Final

import pocketsphinx

MSG_READY: Final = b"R"
MSG_TEXT: Final = b"T"
MSG_ERROR: Final = b"E"
HEADER: Final = struct.Struct(">cI")
REQUEST: Final = struct.Struct(">I")
MAX_REQUEST_BYTES: Final = 64 * 1024 * 1024
"""Over half an hour of audio: a longer request means the stream is corrupt."""


def read_exactly(fd: int, n: int) -> bytes | None:
    """``n`` bytes from ``fd``; ``None`` if it ends first."""
    parts: list[bytes] = []
    while n:
        chunk = os.read(fd, min(n, 1 << 20))
        if not chunk:
            return None
        parts.append(chunk)
        n -= len(chunk)
    return b"".join(parts)


def send(fd: int, kind: bytes, payload: bytes = b"") -> None:
    view = memoryview(HEADER.pack(kind, len(payload)) + payload)
    while view:
        view = view[os.write(fd, view) :]


def transcribe(decoder: pocketsphinx.Decoder, pcm: bytes) -> str:
    """The best hypothesis for one whole utterance; "" if none."""
    decoder.start_utt()
    try:
        decoder.process_raw(pcm, full_utt=True)
    finally:
        decoder.end_utt()
    hypothesis = decoder.hyp()
    return "" if hypothesis is None else str(hypothesis.hypstr)


def serve(decoder: pocketsphinx.Decoder, requests: int, replies: int) -> None:
    while (header := read_exactly(requests, REQUEST.size)) is not None:
        (length,) = REQUEST.unpack(header)
        if length > MAX_REQUEST_BYTES:
            send(replies, MSG_ERROR, b"the request is too long")
            return
        pcm = read_exactly(requests, length)
        if pcm is None:
            return
        try:
            text = transcribe(decoder, pcm)
        except Exception as exc:
            traceback.print_exc()
            send(replies, MSG_ERROR, f"PocketSphinx failed: {type(exc).__name__}".encode())
        else:
            send(replies, MSG_TEXT, text.encode())


def main() -> None:
    niceness = int(sys.argv[1]) if len(sys.argv) > 1 else 0
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C is for the server, which stops us itself
    replies = os.dup(1)
    os.dup2(2, 1)  # stray prints go to stderr and cannot corrupt the protocol
    if niceness:
        with contextlib.suppress(OSError):
            os.nice(niceness)  # recognition may run late on a busy machine; the server's 20 ms pacer must not
    # FATAL: at its default level PocketSphinx logs to stderr on every load, and "errors" such as an
    # utterance too short to align, which reach the caller as an empty hypothesis anyway.
    decoder = pocketsphinx.Decoder(loglevel="FATAL")
    try:
        send(replies, MSG_READY)
        serve(decoder, sys.stdin.fileno(), replies)
    except BrokenPipeError:
        pass  # the parent stopped listening: nobody to tell


if __name__ == "__main__":
    main()
