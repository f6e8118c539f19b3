"""The client's errors (the tree is drawn in ``herald.client``), and reading the server's error envelope."""

from __future__ import annotations

import json
import os


class ClientError(Exception):
    """Anything that kept the client from doing what was asked; the message is one readable line."""


class Unreachable(ClientError):
    """No answer from the server: nothing listens at the address, the network failed, or it timed out."""


class CallFailed(ClientError):
    """The call could not be set up, or broke: an unusable answer, ICE or DTLS failure, a timeout."""


class Refused(ClientError):
    """The server answered with an error, in ICE's envelope ``{RequestId, Code, Message, ...}``."""

    def __init__(self, status_code: int, code: str, message: str, request_id: str = "") -> None:
        super().__init__(
            f"{code}: {message} (HTTP {status_code})" if code else f"HTTP {status_code}: {message}"
        )
        self.status_code = status_code
        self.code = code
        """The ICE error code (``InvalidToken``, ``ChannelNotFound``, ...); empty if the body had none."""
        self.message = message
        self.request_id = request_id

    @classmethod
    def from_response(cls, status_code: int, body: bytes) -> Refused:
        """The error an HTTP answer carries; a body that is not the envelope is quoted as the message."""
        try:
            doc = json.loads(body)
        except ValueError:
            doc = None
        if isinstance(doc, dict) and isinstance(doc.get("Code"), str):
            return cls(status_code, doc["Code"], str(doc.get("Message", "")), str(doc.get("RequestId", "")))
        text = body.decode("utf-8", "replace").strip()
        return cls(status_code, "", _shorten(text) if text else "(empty body)")


def _shorten(text: str, limit: int = 200) -> str:
    line = " ".join(text.split())
    return line if len(line) <= limit else line[: limit - 3] + "..."


def unreachable(endpoint: str, exc: BaseException, timeout_s: float) -> Unreachable:
    """The ``Unreachable`` for a failed HTTP or WebSocket exchange with ``endpoint``."""
    if isinstance(exc, TimeoutError) or "timeout" in type(exc).__name__.lower():
        return Unreachable(f"no answer from Herald at {endpoint} within {timeout_s:g} s")
    # The operating system's reason ("Connection refused") says most; HTTP libraries wrap it.
    reason = str(exc) or type(exc).__name__
    cause: BaseException | None = exc
    while cause is not None:
        if isinstance(cause, OSError) and (cause.errno or cause.strerror):
            # asyncio words a refusal "Connect call failed (...)"; the errno's own text is plainer.
            reason = os.strerror(cause.errno) if cause.errno else str(cause.strerror)
            break
        cause = cause.__cause__ or cause.__context__
    return Unreachable(f"cannot reach Herald at {endpoint}: {reason[:1].lower()}{reason[1:]}")
