"""The decoding child process: one audio file in on stdin, canonical PCM out on stdout, then exit.

Run by ``herald.media.decoder.DecoderPool`` as ``python -m herald.media.decode_worker LIMITS_JSON``. FFmpeg
parses hostile bytes here, under CPU and memory limits, so a crash costs one utterance and never the server.

Protocol. The worker writes ``READY`` once it is warm (PyAV imported, limits set), then blocks on stdin. The
parent writes the file's bytes as they arrive and closes stdin at the end. The worker answers with ``PCM``
messages (48 kHz mono int16, native byte order, 100 ms each but the last), then one ``DONE`` or one ``ERROR``
(a short UTF-8 reason fit for the caller), and exits. Every message is a type byte, a big-endian u32 payload
length and the payload. A worker that dies without ``DONE`` or ``ERROR`` crashed.

Seeking. Most formats stream: the worker hands FFmpeg a non-seekable reader over stdin, so decoding starts
with the first few kilobytes and no input is kept. An MP4/M4A whose index (``moov``) comes after the audio
(``mdat``) cannot be decoded that way; for those, and only those, the whole input is read first.
"""

from __future__ import annotations

import contextlib
import io
import json
import logging
import math
import os
import resource
import signal
import struct
import sys
import time
import traceback
from collections.abc import Iterator
from dataclasses import dataclass
from fractions import Fraction
from typing import Final

import av  # imported at start-up, before READY, so that a spare worker is warm
import av.filter

MSG_READY: Final = b"R"
MSG_PCM: Final = b"P"
MSG_ERROR: Final = b"E"
MSG_DONE: Final = b"D"
HEADER: Final = struct.Struct(">cI")
MAX_PAYLOAD_BYTES: Final = 64 * 1024

OUTPUT_RATE_HZ: Final = 48_000  # herald.media.frames.SAMPLE_RATE_HZ; not imported, it would pull in numpy
CHUNK_SAMPLES: Final = OUTPUT_RATE_HZ // 10
CHUNK_BYTES: Final = CHUNK_SAMPLES * 2
FIRST_CHUNK_BYTES: Final = OUTPUT_RATE_HZ // 50 * 2

TEST_HOOK_ENV: Final = "HERALD_DECODE_WORKER_TEST_HOOK"
"""Tests only: ``abort``, ``spin`` or ``hang`` when the first input bytes arrive."""

_READ_BYTES = 64 * 1024
_CODEC_PREFIXES = ("pcm_", "mp1", "mp2", "mp3", "opus", "libopus", "vorbis", "flac", "alac", "adpcm_ima_wav")
_CODECS = frozenset({"aac", "adpcm_ms", "gsm_ms"})


def _codec_allowed(name: str) -> bool:
    """Whether Herald decodes this FFmpeg decoder's streams: the audio codecs of common files only."""
    return name in _CODECS or name.startswith(_CODEC_PREFIXES)


_PROBE_OPTIONS = {
    # Small probes so that decoding starts after a few kilobytes, not after FFmpeg's default 5 MB / 5 s.
    "probesize": "65536",
    "analyzeduration": "100000",
    # Only well-known demuxers and decoders parse hostile input; the rest of FFmpeg's zoo is out of reach.
    "format_whitelist": "wav,mp3,ogg,flac,aac,mov,mp4,m4a,matroska,webm,aiff",
    "codec_whitelist": ",".join(sorted(filter(_codec_allowed, av.codecs_available))),
    "protocol_whitelist": "none",  # bytes only: FFmpeg must never open a URL or a file
}
_MAX_BAD_PACKETS = 50  # consecutive undecodable packets before the file counts as corrupt
_ISO_BMFF_FIRST = frozenset({b"ftyp", b"moov", b"mdat", b"free", b"skip", b"wide", b"pnot", b"uuid"})
_ISO_BMFF_SCAN_BYTES = 4 * 1024 * 1024


class DecodeFailure(Exception):
    """The input cannot be decoded; the message is the reason sent to the parent."""


@dataclass(frozen=True)
class WorkerLimits:
    max_duration_s: float
    max_sample_rate_hz: int
    max_channels: int
    cpu_s: int
    memory_bytes: int


class Messenger:
    """Writes framed messages on a file descriptor."""

    def __init__(self, fd: int) -> None:
        self._fd = fd

    def send(self, kind: bytes, payload: bytes | bytearray = b"") -> None:
        data = HEADER.pack(kind, len(payload)) + payload
        view = memoryview(data)
        while view:
            view = view[os.write(self._fd, view) :]


class PipeReader:
    """A non-seekable file over a pipe, after a prefix already read from it; ``read`` blocks until data."""

    def __init__(self, fd: int, prefix: bytes) -> None:
        self._fd = fd
        self._prefix = prefix

    def read(self, n: int) -> bytes:
        if self._prefix:
            out, self._prefix = self._prefix[:n], self._prefix[n:]
            return out
        return os.read(self._fd, n)

    def seekable(self) -> bool:
        return False


def open_input(fd: int) -> PipeReader | io.BytesIO:
    """The input as FFmpeg should see it: streamed, or whole and seekable for an MP4 indexed at the end."""
    head = _Head(fd)
    if not head.want(1):
        raise DecodeFailure("not an audio file (the input is empty)")
    _run_test_hook()
    if not _index_after_audio(head):
        return PipeReader(fd, bytes(head.data))
    whole = io.BytesIO()
    whole.write(head.data)
    while chunk := os.read(fd, _READ_BYTES):
        whole.write(chunk)
    whole.seek(0)
    return whole


class _Head:
    """The first bytes of the input, read on demand and kept to be handed on to FFmpeg."""

    def __init__(self, fd: int) -> None:
        self._fd = fd
        self.data = bytearray()
        self.eof = False

    def want(self, n: int) -> bool:
        """Read until ``n`` bytes are held (or the input ends); whether there are."""
        while len(self.data) < n and not self.eof:
            chunk = os.read(self._fd, _READ_BYTES)
            self.eof = not chunk
            self.data += chunk
        return len(self.data) >= n


def _index_after_audio(head: _Head) -> bool:
    """Whether this is an MP4 whose ``mdat`` (audio) comes before its ``moov`` (index)."""
    offset = 0
    while offset < _ISO_BMFF_SCAN_BYTES and head.want(offset + 8):
        size, kind = struct.unpack_from(">I4s", head.data, offset)
        if offset == 0 and kind not in _ISO_BMFF_FIRST:
            return False  # not MP4
        if kind == b"moov":
            return False
        if kind == b"mdat" or size == 0:  # size 0: the box runs to the end of the file
            return True
        if size == 1 and head.want(offset + 16):
            size = struct.unpack_from(">Q", head.data, offset + 8)[0]
        if size < 8:
            return False  # not a valid box: let FFmpeg judge
        offset += size
    return offset >= _ISO_BMFF_SCAN_BYTES  # a huge box before either: play safe


class ToCanonical:
    """Converts decoded frames of any rate, layout and sample format to 48 kHz mono s16 bytes.

    Rebuilds its filter graph when the input's parameters change mid-stream (chained Ogg, odd MP3s).
    """

    def __init__(self) -> None:
        self._graph: av.filter.Graph | None = None
        self._key: tuple[int, str, str] | None = None
        self._next_pts = 0

    def push(self, frame: av.AudioFrame) -> bytes:
        key = (frame.sample_rate, frame.format.name, frame.layout.name)
        out = b""
        if key != self._key:
            out = self.flush()
            self._graph = _build_graph(frame)
            self._key = key
        assert self._graph is not None
        # Contiguous timestamps: a hostile pts jump must not turn into hours of inserted silence.
        frame.pts = self._next_pts
        frame.time_base = Fraction(1, frame.sample_rate)
        self._next_pts += frame.samples
        self._graph.push(frame)
        return out + _drain(self._graph)

    def flush(self) -> bytes:
        if self._graph is None:
            return b""
        self._graph.push(None)
        out = _drain(self._graph)
        self._graph, self._key, self._next_pts = None, None, 0
        return out


def _build_graph(frame: av.AudioFrame) -> av.filter.Graph:
    try:
        return _graph(frame, average=False)
    except (av.FFmpegError, ValueError):
        # FFmpeg downmixes only layouts it knows; for an unnamed layout (say 32 channels) take the mean.
        return _graph(frame, average=True)


def _graph(frame: av.AudioFrame, *, average: bool) -> av.filter.Graph:
    graph = av.filter.Graph()
    nodes = [
        graph.add(
            "abuffer",
            sample_rate=str(frame.sample_rate),
            sample_fmt=frame.format.name,
            channel_layout=frame.layout.name,
            time_base=str(Fraction(1, frame.sample_rate)),
        )
    ]
    channels = frame.layout.nb_channels
    if average and channels > 1:
        mean = "+".join(f"{1 / channels:.8f}*c{i}" for i in range(channels))
        nodes.append(graph.add("pan", f"mono|c0={mean}"))
    nodes.append(
        graph.add("aformat", sample_rates=str(OUTPUT_RATE_HZ), sample_fmts="s16", channel_layouts="mono")
    )
    nodes.append(graph.add("abuffersink"))
    graph.link_nodes(*nodes)
    graph.configure()
    return graph


def _drain(graph: av.filter.Graph) -> bytes:
    out = bytearray()
    while True:
        try:
            frame = graph.pull()
        except (av.error.BlockingIOError, av.error.EOFError):
            return bytes(out)
        assert isinstance(frame, av.AudioFrame)
        out += memoryview(frame.planes[0])[: frame.samples * 2]  # the plane may carry alignment padding


def decode(source: PipeReader | io.BytesIO, limits: WorkerLimits) -> Iterator[bytes]:
    """Decode ``source`` and yield canonical PCM bytes as they come; raise ``DecodeFailure`` with a reason."""
    try:
        container = av.open(source, "r", container_options=_PROBE_OPTIONS)
    except MemoryError:
        raise
    except av.error.EOFError as exc:
        raise DecodeFailure(f"the file is truncated: {_detail(exc)}") from exc
    except av.FFmpegError as exc:
        raise DecodeFailure(_open_failure(exc)) from exc
    with container:
        if not container.streams.audio:
            raise DecodeFailure("not an audio file (no audio stream)")
        stream = container.streams.audio[0]
        codec = stream.codec_context
        if not _codec_allowed(codec.name):
            raise DecodeFailure(f"unsupported audio codec: {codec.name}")
        _check_params(codec.sample_rate, codec.channels, limits)
        codec.thread_count = 1  # one core per job, and no thread stacks eating the address-space limit
        yield from _decode_stream(container, stream, limits)


def _decode_stream(
    container: av.container.InputContainer, stream: av.AudioStream, limits: WorkerLimits
) -> Iterator[bytes]:
    convert = ToCanonical()
    seconds = 0.0
    bad_packets = 0
    last_error = ""
    decoded_any = False
    packets = container.demux(stream)
    while True:
        try:
            packet = next(packets)
        except StopIteration:
            break
        except MemoryError:
            raise
        except av.FFmpegError as exc:
            if decoded_any:
                break  # a read error after some audio: a truncated file ends where it was cut
            raise DecodeFailure(f"the file is truncated or corrupt: {_detail(exc)}") from exc
        try:
            frames = packet.decode()
        except MemoryError:
            raise
        except av.FFmpegError as exc:
            # Decoders resynchronise after a damaged packet; only a long run of them means a corrupt file.
            bad_packets += 1
            last_error = _detail(exc)
            if bad_packets > _MAX_BAD_PACKETS:
                raise DecodeFailure(f"the file is corrupt: {last_error}") from exc
            continue
        bad_packets = 0
        for frame in frames:
            _check_params(frame.sample_rate, frame.layout.nb_channels, limits)
            seconds += frame.samples / frame.sample_rate
            if seconds > limits.max_duration_s:
                raise DecodeFailure(f"the audio is longer than {limits.max_duration_s:g} s")
            decoded_any = True
            yield convert.push(frame)
    yield convert.flush()
    if not decoded_any:
        raise DecodeFailure(f"the file is corrupt: {last_error}" if last_error else "the file holds no audio")


def _check_params(rate_hz: int, channels: int, limits: WorkerLimits) -> None:
    # FFmpeg reports 0 for values it refuses itself (more than 512 channels, say).
    if not rate_hz:
        raise DecodeFailure("the file gives no usable sample rate")
    if rate_hz > limits.max_sample_rate_hz:
        raise DecodeFailure(f"sample rate {rate_hz} Hz is over the limit of {limits.max_sample_rate_hz} Hz")
    if not channels:
        raise DecodeFailure("the file gives no usable channel count")
    if channels > limits.max_channels:
        raise DecodeFailure(f"{channels} channels is over the limit of {limits.max_channels}")


def _open_failure(exc: av.FFmpegError) -> str:
    detail = _detail(exc)
    if "moov atom not found" in detail:
        return "the file is truncated: the MP4 index (moov) is missing"
    if "not on whitelist" in detail:
        return "not an audio file (unsupported container format)"
    return f"not an audio file ({detail})"


def _detail(exc: av.FFmpegError) -> str:
    """FFmpeg's own words, short: its last error log line if it logged one, else the error's strerror."""
    log: object = exc.log  # (level, context name, message) at run time, whatever the stub says
    message = log[2] if isinstance(log, tuple) and len(log) == 3 and isinstance(log[2], str) else ""
    return (message.strip() or exc.strerror or type(exc).__name__)[:160]


def _run_test_hook() -> None:
    hook = os.environ.get(TEST_HOOK_ENV)
    if hook == "abort":
        os.abort()
    elif hook == "spin":
        while True:
            pass
    elif hook == "hang":
        while True:
            time.sleep(3600)


def _set_limits(limits: WorkerLimits) -> None:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    soft_cpu_s = math.ceil(usage.ru_utime + usage.ru_stime) + limits.cpu_s
    # Past the soft limit the kernel sends SIGXCPU (which kills); the hard limit a moment later is SIGKILL.
    resource.setrlimit(resource.RLIMIT_CPU, (soft_cpu_s, soft_cpu_s + 2))
    resource.setrlimit(resource.RLIMIT_AS, (limits.memory_bytes, limits.memory_bytes))
    resource.setrlimit(resource.RLIMIT_CORE, (0, 0))  # a crash on hostile input must not write a core file


def _job(out: Messenger, limits: WorkerLimits) -> None:
    pending = bytearray()
    # The first chunk is one 20 ms frame, so playback can start as soon as anything is decoded; later
    # chunks are 100 ms, fewer messages for the same audio.
    size = FIRST_CHUNK_BYTES
    for pcm in decode(open_input(0), limits):
        pending += pcm
        while len(pending) >= size:
            out.send(MSG_PCM, pending[:size])
            del pending[:size]
            size = CHUNK_BYTES
    if pending:
        out.send(MSG_PCM, pending)


def main() -> None:
    limits = WorkerLimits(**json.loads(sys.argv[1]))
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C is for the server, which stops us itself
    out = Messenger(os.dup(1))
    os.dup2(2, 1)  # stray prints go to stderr and cannot corrupt the protocol
    # FFmpeg's complaints about hostile input are kept by PyAV to explain failures, not printed.
    av.logging.set_level(av.logging.ERROR)
    logging.getLogger("libav").addHandler(logging.NullHandler())
    logging.getLogger("libav").propagate = False
    _set_limits(limits)
    with contextlib.suppress(OSError):
        os.nice(10)  # decoding may run late on a busy machine; the server's 20 ms pacer must not
    try:
        out.send(MSG_READY)
        try:
            _job(out, limits)
        except DecodeFailure as exc:
            out.send(MSG_ERROR, str(exc).encode())
        except MemoryError:
            mb = limits.memory_bytes // 1_000_000
            out.send(MSG_ERROR, f"the decoder ran out of memory (limit {mb} MB)".encode())
        except Exception as exc:
            traceback.print_exc()  # a bug in Herald, not bad input: leave a trace in the server's log
            out.send(MSG_ERROR, f"the decoder failed: {type(exc).__name__}".encode())
        else:
            out.send(MSG_DONE)
    except BrokenPipeError:
        pass  # the parent stopped listening: nobody to tell


if __name__ == "__main__":
    main()
