"""Structured logs: one JSON object per line on stderr, each with the request and instance it concerns.

    with log_context(request_id=request_id):     # every record logged inside carries the request id
        set_log_context(instance_id=instance_id)  # ... and from here on the instance id too

The context lives in ``contextvars``, so it follows the code through ``await`` and into the tasks started
under it, and never leaks into another request's task. ``configure_logging`` installs the one handler of
the process: the JSON formatter (or a text one for humans) behind a filter that adds the context and a
filter that redacts secrets from whatever is logged, as a last line of defence: code must still never
log a secret, a call token or audio.
"""

from __future__ import annotations

import contextvars
import json
import logging
import re
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from typing import Final, Literal, TextIO

LogFormat = Literal["json", "text"]
LOG_FORMATS: Final[tuple[LogFormat, ...]] = ("json", "text")

_request_id: contextvars.ContextVar[str | None] = contextvars.ContextVar("herald_request_id", default=None)
_instance_id: contextvars.ContextVar[str | None] = contextvars.ContextVar("herald_instance_id", default=None)

REDACTED: Final = "[REDACTED]"
MAX_MESSAGE_CHARS: Final = 8192
"""Longer messages are cut: a log line is for reading, not for carrying payloads."""


# ---- the context ----


def current_request_id() -> str | None:
    return _request_id.get()


def current_instance_id() -> str | None:
    return _instance_id.get()


def set_log_context(*, request_id: str | None = None, instance_id: str | None = None) -> None:
    """Bind the given ids for the rest of the current context (the task, and tasks it starts later)."""
    if request_id is not None:
        _request_id.set(request_id)
    if instance_id is not None:
        _instance_id.set(instance_id)


@contextmanager
def log_context(*, request_id: str | None = None, instance_id: str | None = None) -> Iterator[None]:
    """Bind the given ids inside the block; on leaving, both ids are what they were before it (also
    undoing any ``set_log_context`` made inside)."""
    request_token = _request_id.set(request_id if request_id is not None else _request_id.get())
    instance_token = _instance_id.set(instance_id if instance_id is not None else _instance_id.get())
    try:
        yield
    finally:
        _instance_id.reset(instance_token)
        _request_id.reset(request_token)


# ---- redaction ----

_REDACTIONS: Final[tuple[tuple[re.Pattern[str], str], ...]] = (
    # A JSON Web Token (call tokens are JWTs), wherever it appears.
    (re.compile(r"\beyJ[A-Za-z0-9_-]{4,}\.[A-Za-z0-9_-]{4,}\.[A-Za-z0-9_-]*"), REDACTED),
    # The whole value of an Authorization header: "Authorization: ...", 'authorization': '...'.
    (
        re.compile(r"""(?i)(\bauthorization["']?\s*[:=]\s*)("[^"]*"|'[^']*'|[^\r\n"'}]*)"""),
        rf"\1{REDACTED}",
    ),
    (re.compile(r"""(?i)\b(bearer\s+)(?!\[REDACTED)[^\s"',;]+"""), rf"\1{REDACTED}"),
    # key=value and "key": "value" where the key names a token, signature, secret or password:
    # token=, access_token=, Signature=, AccessKeySecret=, HERALD_ACCESS_KEY_SECRET=, "Token": "...".
    (
        re.compile(
            r"""(?i)(\b[\w-]*?(?:token|signature|secret|password)["']?\s*[:=]\s*["']?)(?!\[REDACTED)"""
            r"""[^\s&,;"'}\])]+"""
        ),
        rf"\1{REDACTED}",
    ),
    # A long base64 run is a payload (audio, a key), never something to read in a log.
    (re.compile(r"[A-Za-z0-9+/]{200,}={0,2}"), "[REDACTED base64]"),
)


def redact(text: str) -> str:
    """``text`` with secrets replaced by ``[REDACTED]``."""
    for pattern, replacement in _REDACTIONS:
        text = pattern.sub(replacement, text)
    return text


class RedactingFilter(logging.Filter):
    """Redacts the formatted message and the traceback of every record (install it on the handler)."""

    _exceptions = logging.Formatter()

    def filter(self, record: logging.LogRecord) -> bool:
        try:
            message = record.getMessage()
        except Exception:  # a broken format string: leave it to the handler's error reporting
            return True
        if len(message) > MAX_MESSAGE_CHARS:
            message = f"{message[:MAX_MESSAGE_CHARS]}… ({len(message) - MAX_MESSAGE_CHARS} characters cut)"
        record.msg = redact(message)
        record.args = None
        if record.exc_info and not record.exc_text:
            record.exc_text = self._exceptions.formatException(record.exc_info)
        if record.exc_text:
            record.exc_text = redact(record.exc_text)
        if record.stack_info:
            record.stack_info = redact(record.stack_info)
        return True


# ---- formatting ----


class ContextFilter(logging.Filter):
    """Adds ``request_id`` and ``instance_id`` from the context (unless given with ``extra=``)."""

    def filter(self, record: logging.LogRecord) -> bool:
        if getattr(record, "request_id", None) is None:
            record.request_id = _request_id.get()
        if getattr(record, "instance_id", None) is None:
            record.instance_id = _instance_id.get()
        return True


def _utc_iso(created: float) -> str:
    return datetime.fromtimestamp(created, tz=UTC).strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z"


class JsonFormatter(logging.Formatter):
    """One JSON object per record: time, level, logger, message, request_id, instance_id[, exception]."""

    def format(self, record: logging.LogRecord) -> str:
        line: dict[str, object] = {
            "time": _utc_iso(record.created),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
            "request_id": getattr(record, "request_id", None),
            "instance_id": getattr(record, "instance_id", None),
        }
        if record.exc_info and not record.exc_text:
            record.exc_text = self.formatException(record.exc_info)
        if record.exc_text:
            line["exception"] = record.exc_text
        if record.stack_info:
            line["stack"] = self.formatStack(record.stack_info)
        text = json.dumps(line, ensure_ascii=False, default=str)
        # JSON leaves these unescaped, but line-splitting tools (and str.splitlines) break lines on them.
        return text.replace("\x85", "\\u0085").replace("\u2028", "\\u2028").replace("\u2029", "\\u2029")


class TextFormatter(logging.Formatter):
    """For a human at a terminal: ``time LEVEL logger: message [request=… instance=…]``."""

    def __init__(self) -> None:
        super().__init__("%(utc_time)s %(levelname)s %(name)s: %(message)s")

    def format(self, record: logging.LogRecord) -> str:
        record.utc_time = _utc_iso(record.created)
        text = super().format(record)
        context = [
            f"{name}={value}"
            for name in ("request", "instance")
            if (value := getattr(record, f"{name}_id", None)) is not None
        ]
        if not context:
            return text
        first, newline, rest = text.partition("\n")
        return f"{first} [{' '.join(context)}]{newline}{rest}"


def make_handler(log_format: LogFormat, stream: TextIO | None = None) -> logging.Handler:
    """A stream handler (stderr by default) with the context and redaction filters and the formatter."""
    handler = logging.StreamHandler(stream if stream is not None else sys.stderr)
    handler.addFilter(ContextFilter())
    handler.addFilter(RedactingFilter())
    handler.setFormatter(JsonFormatter() if log_format == "json" else TextFormatter())
    return handler


UVICORN_LOGGERS: Final = ("uvicorn", "uvicorn.error", "uvicorn.access", "uvicorn.asgi")


def configure_logging(level: str, log_format: LogFormat, stream: TextIO | None = None) -> None:
    """Make ``make_handler(log_format)`` the process's only handler, on the root logger.

    ``level`` applies to Herald's own loggers; libraries log at ``info`` at the most detailed, since
    their debug output carries payloads (uvicorn dumps every WebSocket frame, audio included; aiosqlite
    every statement with its parameters). uvicorn's loggers lose their own handlers and propagate here
    (start uvicorn with ``log_config=None`` and ``log_level=None`` so it leaves them so), and ``warnings``
    are logged, so every line is in the one format.
    """
    herald_level = logging.getLevelNamesMapping().get(level.upper())
    if herald_level is None:
        raise ValueError(f"unknown log level {level!r}")
    root = logging.getLogger()
    for old in list(root.handlers):
        root.removeHandler(old)
    root.addHandler(make_handler(log_format, stream))
    root.setLevel(max(herald_level, logging.INFO))
    logging.getLogger("herald").setLevel(herald_level)
    for name in UVICORN_LOGGERS:
        logger = logging.getLogger(name)
        logger.handlers.clear()
        logger.setLevel(logging.NOTSET)
        logger.propagate = True
    logging.captureWarnings(True)
