"""The PocketSphinx child process: utterances in on stdin, their text out on stdout, one at a time.

Run by ``pocketsphinx_asr.PocketSphinxRecognizer`` as ``python -m herald.listening.pocketsphinx_worker
NICENESS``. It loads one decoder (the ``en-us`` model shipped in the ``pocketsphinx`` package), writes
``READY``, then serves requests until stdin closes.

Protocol. Every message either way is a type byte, a big-endian u32 payload length and the payload; audio
is 16 kHz mono int16 PCM (native byte order). From the worker: one ``READY`` (empty) at start, then the
answers below. Requests:

* ``UTTERANCE`` (the whole utterance's audio): decoded at once, answered by ``TEXT`` or ``ERROR``.
* ``BEGIN`` (empty), then any number of ``AUDIO`` (the next part of the utterance, answered by ``PARTIAL``:
  the hypothesis so far, or ``ERROR``), then ``FINISH`` (empty, answered by ``TEXT`` or ``ERROR``): an
  utterance decoded while it is spoken, so that little is left to do when it ends.

``TEXT`` and ``PARTIAL`` carry UTF-8 ("" for none), ``ERROR`` a short reason. A request out of order is
answered by ``ERROR`` and changes nothing. Imports nothing of Herald's but this package's docstring-only
``__init__``.
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
MSG_PARTIAL: Final = b"P"
MSG_ERROR: Final = b"E"
REQ_UTTERANCE: Final = b"U"
REQ_BEGIN: Final = b"B"
REQ_AUDIO: Final = b"A"
REQ_FINISH: Final = b"F"
HEADER: Final = struct.Struct(">cI")
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
    return hypothesis(decoder)


def hypothesis(decoder: pocketsphinx.Decoder) -> str:
    found = decoder.hyp()
    return "" if found is None else str(found.hypstr)


class Session:
    """The decoder and whether an utterance is open on it (``BEGIN`` .. ``FINISH``)."""

    def __init__(self, decoder: pocketsphinx.Decoder) -> None:
        self.decoder = decoder
        self.open = False

    def handle(self, kind: bytes, payload: bytes) -> tuple[bytes, bytes] | None:
        """The answer to one request (``None``: it has none); raises on a decoder failure."""
        if kind == REQ_UTTERANCE:
            self.close()
            return MSG_TEXT, transcribe(self.decoder, payload).encode()
        if kind == REQ_BEGIN:
            self.close()
            self.decoder.start_utt()
            self.open = True
            return None
        if not self.open:
            return MSG_ERROR, b"no utterance is open"
        if kind == REQ_AUDIO:
            self.decoder.process_raw(payload, full_utt=False)
            return MSG_PARTIAL, hypothesis(self.decoder).encode()
        if kind == REQ_FINISH:
            self.close()
            return MSG_TEXT, hypothesis(self.decoder).encode()
        return MSG_ERROR, b"unknown request"

    def close(self) -> None:
        if self.open:
            self.open = False
            self.decoder.end_utt()


def serve(decoder: pocketsphinx.Decoder, requests: int, replies: int) -> None:
    session = Session(decoder)
    while (header := read_exactly(requests, HEADER.size)) is not None:
        kind, length = HEADER.unpack(header)
        if length > MAX_REQUEST_BYTES:
            send(replies, MSG_ERROR, b"the request is too long")
            return
        payload = read_exactly(requests, length)
        if payload is None:
            return
        try:
            answer = session.handle(kind, payload)
        except Exception as exc:
            traceback.print_exc()
            with contextlib.suppress(Exception):
                session.close()  # the next BEGIN or UTTERANCE starts afresh
            session.open = False
            answer = MSG_ERROR, f"PocketSphinx failed: {type(exc).__name__}".encode()
        if answer is not None:
            send(replies, *answer)


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
