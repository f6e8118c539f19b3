"""Speech recognition by any OpenAI-compatible service: ``POST {base_url}/audio/transcriptions``.

OpenAI itself, Groq, a local faster-whisper or whisper.cpp server, vLLM: they take the same multipart form
(``file`` = the utterance as a 16 kHz WAV, ``model``, optional ``language``, ``response_format=json``) and
answer ``{"text": "..."}``. The request goes through ``herald.media.fetch.SafeFetcher``, so the
operator's address policy applies to this URL as to every other one (an on-premises server must be
allowlisted with ``HERALD_FETCH_ALLOW``).

    transcriber = OpenAITranscriber("https://api.openai.com/v1", "whisper-1", api_key, fetcher)
    text = await transcriber.transcribe(ended.audio, language="en")
"""

from __future__ import annotations

import asyncio
import io
import json
import re
import secrets
import wave
from collections.abc import Callable, Mapping, Sequence
from contextlib import aclosing
from typing import Final

import numpy as np

from herald.listening.asr import SAMPLE_RATE_HZ, Pcm16k, RecognitionError, primary_language
from herald.media.fetch import FetchError, HttpExchange, check_url

MAX_ANSWER_BYTES: Final = 1_000_000
"""A transcription is a few kilobytes; a bigger answer is not one."""
EXCERPT_CHARS: Final = 200


class OpenAITranscriber:
    """A ``SpeechRecognizer`` on an OpenAI-compatible transcription endpoint.

    ``base_url`` ends before ``/audio/transcriptions`` (``https://api.openai.com/v1``); ``api_key`` is sent
    as a bearer token ("" for a server that wants none); ``exchange`` is a ``SafeFetcher`` (or a
    fake). A transcription that takes more than ``timeout_s`` in all fails.
    """

    def __init__(
        self, base_url: str, model: str, api_key: str, exchange: HttpExchange, *, timeout_s: float = 30.0
    ) -> None:
        self._url = base_url.rstrip("/") + "/audio/transcriptions"
        violation = check_url(self._url)
        if violation is not None:
            raise ValueError(f"the transcription service's base URL is not usable: {violation}")
        if not model:
            raise ValueError("a transcription model is required")
        if timeout_s <= 0:
            raise ValueError(f"timeout_s must be positive (got {timeout_s})")
        self._model = model
        self._api_key = api_key
        self._exchange = exchange
        self._timeout_s = timeout_s

    @property
    def languages(self) -> None:
        """Any: the service itself refuses a language it does not know."""
        return None

    def stream(self, *, language: str | None = None, on_partial: Callable[[str], None] | None = None) -> None:
        """Whole utterances only: the transcription endpoint takes a complete file."""
        return None

    async def transcribe(self, audio: Pcm16k, *, language: str | None = None) -> str:
        """The text the service hears in ``audio`` (16 kHz mono int16); "" if it heard none."""
        fields = [("model", self._model), ("response_format", "json")]
        language = primary_language(language)  # Whisper-style services take ISO 639-1: "en", not "en-US"
        if language is not None:
            fields.append(("language", language[:8]))
        body, content_type = multipart_form(fields, ("file", "speech.wav", "audio/wav", wav_bytes(audio)))
        headers = {"Content-Type": content_type, "Accept": "application/json"}
        if self._api_key:
            headers["Authorization"] = f"Bearer {self._api_key}"
        try:
            async with asyncio.timeout(self._timeout_s):
                status, answer = await self._post(body, headers)
        except TimeoutError:
            raise RecognitionError(
                f"the transcription service did not answer within {self._timeout_s:g} s"
            ) from None
        except FetchError as exc:
            raise RecognitionError(f"the transcription service could not be reached: {exc.reason}") from exc
        if not 200 <= status < 300:
            raise RecognitionError(
                f"the transcription service answered HTTP {status}: {self._excerpt(answer)}"
            )
        return _text_of(answer)

    async def _post(self, body: bytes, headers: Mapping[str, str]) -> tuple[int, bytes]:
        async with (
            self._exchange.exchange(self._url, body, headers) as reply,
            aclosing(reply.chunks()) as chunks,
        ):
            answer = bytearray()
            async for chunk in chunks:
                answer += chunk
                if len(answer) > MAX_ANSWER_BYTES:
                    break  # enough to tell an error apart; a success this big is refused by _text_of
            return reply.status_code, bytes(answer)

    def _excerpt(self, answer: bytes) -> str:
        """The gist of an error answer: OpenAI's ``{"error": {"message": ...}}`` and the like, or its start,
        on one line, short, and without the API key even if the server echoed it."""
        message = _error_message(answer)
        if message is None:
            message = answer[: EXCERPT_CHARS * 4].decode("utf-8", errors="replace")
        message = " ".join(message.split())
        if self._api_key:
            message = message.replace(self._api_key, "***")
        message = _CONTROL.sub("", message)
        if len(message) > EXCERPT_CHARS:
            message = message[: EXCERPT_CHARS - 1] + "…"
        return message or "(no details)"


_CONTROL = re.compile(r"[\x00-\x1f\x7f]")


def _error_message(answer: bytes) -> str | None:
    try:
        document = json.loads(answer)
    except (ValueError, RecursionError):
        return None
    if not isinstance(document, dict):
        return None
    error = document.get("error", document.get("detail", document.get("message")))
    if isinstance(error, dict):
        error = error.get("message")
    return error if isinstance(error, str) else None


def _text_of(answer: bytes) -> str:
    try:
        document = json.loads(answer)
    except (ValueError, RecursionError):
        document = None
    text = document.get("text") if isinstance(document, dict) else None
    if not isinstance(text, str):
        raise RecognitionError('the transcription service\'s answer is not JSON with a "text" string')
    return text.strip()


def wav_bytes(audio: Pcm16k) -> bytes:
    """``audio`` (16 kHz mono int16) as a WAV file."""
    buffer = io.BytesIO()
    with wave.open(buffer, "wb") as wav:
        wav.setnchannels(1)
        wav.setsampwidth(2)
        wav.setframerate(SAMPLE_RATE_HZ)
        wav.writeframes(np.ascontiguousarray(audio, dtype="<i2").tobytes())
    return buffer.getvalue()


def multipart_form(fields: Sequence[tuple[str, str]], file: tuple[str, str, str, bytes]) -> tuple[bytes, str]:
    """A ``multipart/form-data`` body (RFC 7578) of text ``fields`` and one ``file`` (field name, file name,
    content type, bytes); the body and its ``Content-Type`` header. Names are Herald's own constants, so
    they are not escaped; a random boundary cannot occur in the WAV by more than chance (2^-128)."""
    boundary = f"herald-{secrets.token_hex(16)}"
    parts: list[bytes] = []
    for name, value in fields:
        parts.append(f'--{boundary}\r\nContent-Disposition: form-data; name="{name}"\r\n\r\n'.encode())
        parts.append(value.encode() + b"\r\n")
    name, filename, content_type, data = file
    parts.append(
        f"--{boundary}\r\n"
        f'Content-Disposition: form-data; name="{name}"; filename="{filename}"\r\n'
        f"Content-Type: {content_type}\r\n\r\n".encode()
    )
    parts.append(data + b"\r\n")
    parts.append(f"--{boundary}--\r\n".encode())
    return b"".join(parts), f"multipart/form-data; boundary={boundary}"
