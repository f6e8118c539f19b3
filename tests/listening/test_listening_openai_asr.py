"""The OpenAI-compatible transcriber against a real local HTTP server (Starlette on uvicorn, 127.0.0.2),
reached through Herald's ``SafeFetcher`` with 127.0.0.2 allowlisted."""

from __future__ import annotations

import asyncio
import io
import wave
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from email.parser import BytesParser
from email.policy import HTTP

import numpy as np
import pytest
import uvicorn
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from herald.listening.asr import RecognitionError, SpeechRecognizer, primary_language
from herald.listening.openai_asr import OpenAITranscriber, multipart_form, wav_bytes
from herald.media.fetch import FetchLimits, SafeFetcher
from herald.media.netguard import AddressPolicy

HOST = "127.0.0.2"
KEY = "sk-test-0123456789abcdef"


@dataclass
class Seen:
    headers: dict[str, str]
    fields: dict[str, str]
    files: dict[str, tuple[str | None, str, bytes]]  # name → (file name, content type, bytes)


@dataclass
class Service:
    """What the fake transcription service saw, and how it answers each mode (the first path segment)."""

    origin: str = ""
    seen: list[Seen] = field(default_factory=list)
    release: asyncio.Event = field(default_factory=asyncio.Event)

    def base_url(self, mode: str) -> str:
        return f"{self.origin}/{mode}/v1"


def parse_form(
    content_type: str, body: bytes
) -> tuple[dict[str, str], dict[str, tuple[str | None, str, bytes]]]:
    """A multipart/form-data body parsed by the standard library's MIME parser (not by Herald's code)."""
    message = BytesParser(policy=HTTP).parsebytes(f"Content-Type: {content_type}\r\n\r\n".encode() + body)
    assert message.is_multipart()
    fields: dict[str, str] = {}
    files: dict[str, tuple[str | None, str, bytes]] = {}
    for part in message.iter_parts():
        name = part.get_param("name", header="content-disposition")
        assert isinstance(name, str)
        payload = part.get_payload(decode=True)
        assert isinstance(payload, bytes)
        if part.get_filename() is None:
            fields[name] = payload.decode()
        else:
            files[name] = (part.get_filename(), part.get_content_type(), payload)
    return fields, files


def make_app(service: Service) -> Starlette:
    async def transcriptions(request: Request) -> Response:
        body = await request.body()
        fields, files = parse_form(request.headers["content-type"], body)
        service.seen.append(Seen(dict(request.headers), fields, files))
        mode = request.path_params["mode"]
        if mode == "ok":
            with wave.open(io.BytesIO(files["file"][2])) as wav:
                seconds = wav.getnframes() / wav.getframerate()
            return JSONResponse({"text": f" heard {seconds:.2f} s ", "extra": 1})
        if mode == "unauthorized":
            message = f"Incorrect API key provided: {KEY}. You can find your API key at https://x.example."
            return JSONResponse({"error": {"message": message, "type": "invalid_request_error"}}, 401)
        if mode == "html":
            return Response(
                "<html><body>" + "Bad gateway " * 100 + "</body></html>", 502, media_type="text/html"
            )
        if mode == "not-json":
            return Response("text: hello", 200, media_type="text/plain")
        if mode == "no-text":
            return JSONResponse({"transcript": "hello"})
        if mode == "slow":
            await service.release.wait()
            return JSONResponse({"text": "too late"})
        return Response(status_code=404)

    return Starlette(routes=[Route("/{mode}/v1/audio/transcriptions", transcriptions, methods=["POST"])])


@pytest.fixture
async def service() -> AsyncIterator[Service]:
    service = Service()
    config = uvicorn.Config(
        make_app(service), host=HOST, port=0, log_level="warning", lifespan="off", ws="none"
    )
    server = uvicorn.Server(config)
    serving = asyncio.create_task(server.serve())
    while not server.started:
        assert not serving.done(), "the server did not start"
        await asyncio.sleep(0.01)
    port = server.servers[0].sockets[0].getsockname()[1]
    service.origin = f"http://{HOST}:{port}"
    yield service
    service.release.set()
    server.should_exit = True
    await serving


@pytest.fixture
async def fetcher() -> AsyncIterator[SafeFetcher]:
    fetcher = SafeFetcher(
        AddressPolicy.from_setting(HOST),
        FetchLimits(connect_timeout_s=2.0, read_timeout_s=0.5, total_timeout_s=10.0),
    )
    yield fetcher
    await fetcher.aclose()


AUDIO = (np.sin(np.arange(24_000) / 16_000 * 2 * np.pi * 220) * 8000).astype(np.int16)  # 1.5 s at 16 kHz


async def test_posts_a_multipart_form_and_reads_the_text(service: Service, fetcher: SafeFetcher) -> None:
    transcriber: SpeechRecognizer = OpenAITranscriber(service.base_url("ok"), "whisper-1", KEY, fetcher)

    assert await transcriber.transcribe(AUDIO, language="en-US") == "heard 1.50 s"

    (seen,) = service.seen
    assert seen.headers["authorization"] == f"Bearer {KEY}"
    assert seen.headers["content-type"].startswith("multipart/form-data; boundary=")
    assert seen.headers["accept"] == "application/json"
    assert seen.fields == {"model": "whisper-1", "response_format": "json", "language": "en"}
    filename, content_type, data = seen.files["file"]
    assert (filename, content_type) == ("speech.wav", "audio/wav")
    with wave.open(io.BytesIO(data)) as wav:
        assert (wav.getnchannels(), wav.getsampwidth(), wav.getframerate()) == (1, 2, 16_000)
        assert np.array_equal(np.frombuffer(wav.readframes(wav.getnframes()), dtype="<i2"), AUDIO)


async def test_no_language_and_no_key_are_left_out(service: Service, fetcher: SafeFetcher) -> None:
    transcriber = OpenAITranscriber(service.base_url("ok") + "/", "small", "", fetcher)

    assert await transcriber.transcribe(AUDIO) == "heard 1.50 s"
    assert await transcriber.transcribe(AUDIO, language="") == "heard 1.50 s"

    for seen in service.seen:
        assert "authorization" not in seen.headers
        assert seen.fields == {"model": "small", "response_format": "json"}


async def test_an_error_status_gives_the_services_message_without_the_key(
    service: Service, fetcher: SafeFetcher
) -> None:
    transcriber = OpenAITranscriber(service.base_url("unauthorized"), "whisper-1", KEY, fetcher)

    with pytest.raises(RecognitionError) as caught:
        await transcriber.transcribe(AUDIO)

    reason = caught.value.reason
    print("\n" + reason)
    assert reason.startswith("the transcription service answered HTTP 401: Incorrect API key provided: ***.")
    assert KEY not in reason
    assert KEY not in str(caught.value)


async def test_an_error_page_is_cut_to_an_excerpt(service: Service, fetcher: SafeFetcher) -> None:
    transcriber = OpenAITranscriber(service.base_url("html"), "whisper-1", KEY, fetcher)

    with pytest.raises(RecognitionError) as caught:
        await transcriber.transcribe(AUDIO)

    reason = caught.value.reason
    assert reason.startswith("the transcription service answered HTTP 502: <html><body>Bad gateway Bad")
    assert reason.endswith("…")
    assert len(reason) < 260


@pytest.mark.parametrize("mode", ["not-json", "no-text"])
async def test_an_answer_without_text_is_an_error(service: Service, fetcher: SafeFetcher, mode: str) -> None:
    transcriber = OpenAITranscriber(service.base_url(mode), "whisper-1", KEY, fetcher)

    with pytest.raises(RecognitionError, match='not JSON with a "text" string'):
        await transcriber.transcribe(AUDIO)


async def test_a_service_that_does_not_answer_times_out(service: Service, fetcher: SafeFetcher) -> None:
    # The fetcher's read timeout (0.5 s) comes first...
    transcriber = OpenAITranscriber(service.base_url("slow"), "whisper-1", KEY, fetcher)
    with pytest.raises(RecognitionError) as caught:
        await transcriber.transcribe(AUDIO)
    assert caught.value.reason == "the transcription service could not be reached: no data for 0.5 s"

    # ...unless the transcriber's own limit is shorter.
    hurried = OpenAITranscriber(service.base_url("slow"), "whisper-1", KEY, fetcher, timeout_s=0.2)
    with pytest.raises(RecognitionError) as caught:
        await hurried.transcribe(AUDIO)
    assert caught.value.reason == "the transcription service did not answer within 0.2 s"


async def test_the_address_policy_applies(service: Service) -> None:
    strict = SafeFetcher(AddressPolicy())  # the default: no loopback, no private networks
    try:
        transcriber = OpenAITranscriber(service.base_url("ok"), "whisper-1", KEY, strict)
        with pytest.raises(RecognitionError) as caught:
            await transcriber.transcribe(AUDIO)
    finally:
        await strict.aclose()

    assert caught.value.reason == (
        f"the transcription service could not be reached: the address {HOST} is loopback"
    )
    assert service.seen == []


async def test_a_refused_connection_is_an_error(fetcher: SafeFetcher) -> None:
    transcriber = OpenAITranscriber(f"http://{HOST}:9/v1", "whisper-1", KEY, fetcher)

    with pytest.raises(RecognitionError, match=f"could not be reached: could not connect to {HOST}"):
        await transcriber.transcribe(AUDIO)


@pytest.mark.parametrize(
    ("url", "problem"),
    [
        ("ftp://example.com/v1", "must use http or https"),
        ("https://user:secret@example.com/v1", "must not contain a user name or password"),
    ],
)
async def test_a_bad_base_url_is_refused_without_repeating_it(
    fetcher: SafeFetcher, url: str, problem: str
) -> None:
    with pytest.raises(ValueError, match=problem) as caught:
        OpenAITranscriber(url, "whisper-1", KEY, fetcher)
    assert "secret" not in str(caught.value)


def test_multipart_form_parses_back() -> None:
    body, content_type = multipart_form(
        [("model", "m"), ("note", "two\r\nlines")], ("file", "a.wav", "audio/wav", b"RIFF\r\n--x")
    )
    fields, files = parse_form(content_type, body)

    assert fields == {"model": "m", "note": "two\r\nlines"}
    assert files == {"file": ("a.wav", "audio/wav", b"RIFF\r\n--x")}


def test_wav_bytes() -> None:
    with wave.open(io.BytesIO(wav_bytes(AUDIO[:100]))) as wav:
        assert wav.getframerate() == 16_000
        assert wav.getnframes() == 100


@pytest.mark.parametrize(
    ("tag", "language"),
    [(None, None), ("", None), ("en", "en"), ("en-US", "en"), ("en_us", "en"), ("ZH_CN", "zh"), ("-", None)],
)
def test_primary_language(tag: str | None, language: str | None) -> None:
    assert primary_language(tag) == language
