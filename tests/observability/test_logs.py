"""Structured logs: the JSON line, the request/instance context, and redaction as a last line of defence."""

from __future__ import annotations

import asyncio
import io
import json
import logging
import re
import subprocess
import sys
import textwrap
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import pytest

from herald.cli import build_parser
from herald.observability.logs import (
    LogFormat,
    current_instance_id,
    current_request_id,
    log_context,
    make_handler,
    redact,
    set_log_context,
)

FIELDS = {"time", "level", "logger", "message", "request_id", "instance_id"}
JWT = (
    "eyJhbGciOiJIUzI1NiIsInR5cCI6IkpXVCJ9.eyJjaGFubmVsIjoiYWJjIiwidXNlciI6InUxIiwiZXhwIjoxNzAwMDAwMDAwfQ"
    ".q2bQ7d0mP3yJkSx6m5mH0tq8uVnZp0wq1Z3w2c4xYkA"
)


class Captured:
    """A logger whose records go through the production handler into a string."""

    def __init__(self, log_format: LogFormat) -> None:
        self.stream = io.StringIO()
        self.handler = make_handler(log_format, self.stream)
        self.logger = logging.getLogger(f"herald.test.{id(self)}")
        self.logger.propagate = False
        self.logger.setLevel(logging.DEBUG)
        self.logger.addHandler(self.handler)

    def lines(self) -> list[str]:
        return self.stream.getvalue().splitlines()

    def records(self) -> list[dict[str, object]]:
        return [json.loads(line) for line in self.lines()]

    def close(self) -> None:
        self.logger.removeHandler(self.handler)
        self.handler.close()


@pytest.fixture
def json_log() -> Iterator[Captured]:
    captured = Captured("json")
    yield captured
    captured.close()


@pytest.fixture
def text_log() -> Iterator[Captured]:
    captured = Captured("text")
    yield captured
    captured.close()


def test_a_json_line_has_every_field(json_log: Captured) -> None:
    json_log.logger.info("instance %s started", "abc")
    [line] = json_log.lines()
    record = json.loads(line)
    assert record.keys() == FIELDS
    assert record["level"] == "INFO"
    assert record["logger"] == json_log.logger.name
    assert record["message"] == "instance abc started"
    assert record["request_id"] is None
    assert record["instance_id"] is None
    assert str(record["time"]).endswith("Z")
    stamped = datetime.fromisoformat(str(record["time"]))
    assert stamped.utcoffset() == timedelta(0)
    assert abs((datetime.now(UTC) - stamped).total_seconds()) < 60


def test_an_exception_is_one_line_with_its_traceback(json_log: Captured) -> None:
    try:
        raise ValueError("the database went away")
    except ValueError:
        json_log.logger.exception("could not save")
    [line] = json_log.lines()
    record = json.loads(line)
    assert record["message"] == "could not save"
    assert record["level"] == "ERROR"
    exception = str(record["exception"])
    assert exception.startswith("Traceback (most recent call last):")
    assert "ValueError: the database went away" in exception


def test_line_separators_in_a_message_do_not_split_the_line(json_log: Captured) -> None:
    json_log.logger.warning("one\ntwo\u2028three\u2029four\x85five\r")
    [line] = json_log.lines()
    assert json.loads(line)["message"] == "one\ntwo\u2028three\u2029four\x85five\r"


def test_the_context_is_on_every_record_inside_the_block_only(json_log: Captured) -> None:
    with log_context(request_id="R1"):
        json_log.logger.info("a")
        set_log_context(instance_id="I1")
        json_log.logger.info("b")
        with log_context(request_id="R2"):
            json_log.logger.info("c")
        json_log.logger.info("d")
    json_log.logger.info("e")
    assert [(r["request_id"], r["instance_id"]) for r in json_log.records()] == [
        ("R1", None),
        ("R1", "I1"),
        ("R2", "I1"),
        ("R1", "I1"),
        (None, None),
    ]
    assert current_request_id() is None
    assert current_instance_id() is None


async def test_tasks_started_inside_a_context_keep_it_and_others_do_not_see_it(json_log: Captured) -> None:
    async def later(message: str) -> None:
        await asyncio.sleep(0)
        json_log.logger.info(message)

    async def request(request_id: str, instance_id: str) -> None:
        with log_context(request_id=request_id, instance_id=instance_id):
            background = asyncio.create_task(later(f"background of {request_id}"))
        await background

    await asyncio.gather(request("R1", "I1"), request("R2", "I2"))
    json_log.logger.info("outside")
    seen = {r["message"]: (r["request_id"], r["instance_id"]) for r in json_log.records()}
    assert seen == {
        "background of R1": ("R1", "I1"),
        "background of R2": ("R2", "I2"),
        "outside": (None, None),
    }


def test_extra_ids_win_over_the_context(json_log: Captured) -> None:
    with log_context(request_id="R1", instance_id="I1"):
        json_log.logger.info("about another instance", extra={"instance_id": "I2"})
    [record] = json_log.records()
    assert (record["request_id"], record["instance_id"]) == ("R1", "I2")


@pytest.mark.parametrize(
    ("text", "secret", "kept"),
    [
        ("Authorization: Bearer abc.DEF-123_x", "abc.DEF-123_x", "Authorization"),
        (
            "headers {'authorization': 'ACS3-HMAC-SHA256 Credential=AK1,SignedHeaders=host,"
            "Signature=9f86d081884c7d659a2feaa0c55ad015', 'host': 'h'}",
            "9f86d081884c7d659a2feaa0c55ad015",
            "'host': 'h'",
        ),
        ("sent Bearer s3cr3tT0ken to the peer", "s3cr3tT0ken", "to the peer"),
        ("GET /v1/calls/c1/audio?token=tok-123&sample_rate=16000", "tok-123", "sample_rate=16000"),
        ("callback https://h/cb?access_token=abc123&x=1", "abc123", "x=1"),
        ("?Signature=Yz%2Bab%3D&SignatureMethod=HMAC-SHA1", "Yz%2Bab%3D", "SignatureMethod=HMAC-SHA1"),
        ("AccessKeySecret: sk-very-secret, AccessKeyId: AKID", "sk-very-secret", "AccessKeyId: AKID"),
        ("Config(access_key_secret='sk2', endpoint='e')", "sk2", "endpoint='e'"),
        ("HERALD_ACCESS_KEY_SECRET=sk3 HERALD_PORT=8080", "sk3", "HERALD_PORT=8080"),
        ('{"Token": "opaque-token-value", "ChannelId": "c1"}', "opaque-token-value", '"ChannelId": "c1"'),
        (f"joined with {JWT} just now", JWT.split(".")[1], "just now"),
        ("pcm " + "QUJD" * 100 + " end", "QUJD" * 60, " end"),
    ],
)
def test_secrets_are_redacted(text: str, secret: str, kept: str) -> None:
    redacted = redact(text)
    assert secret not in redacted
    assert "[REDACTED" in redacted
    assert kept in redacted


@pytest.mark.parametrize(
    "text",
    [
        "request 1C2D: SendAIAgentSpeech by HERALDTESTAB12",
        "instance 6faa7c85c6bb4d2eae68dbab2e6e55e0 finished: the user left (hangup role 1)",
        "request R refused: SignatureDoesNotMatch The signature of the request does not match.",
        "SignatureNonce=abc SignatureVersion=1.0 tokens: 12",
    ],
)
def test_ordinary_messages_are_left_alone(text: str) -> None:
    assert redact(text) == text


def test_a_secret_in_an_exception_is_redacted_from_the_record(json_log: Captured) -> None:
    try:
        raise RuntimeError(f"could not fetch https://h/a.wav?token=tok-999 with Authorization: Bearer {JWT}")
    except RuntimeError:
        json_log.logger.exception("fetching %s failed", "https://h/a.wav?token=tok-999")
    [line] = json_log.lines()
    assert "tok-999" not in line
    assert JWT.split(".")[1] not in line
    assert "RuntimeError: could not fetch" in json.loads(line)["exception"]


def test_a_huge_message_is_cut(json_log: Captured) -> None:
    json_log.logger.info("payload %s", "x" * 100_000)
    [record] = json_log.records()
    assert len(str(record["message"])) < 10_000
    assert "characters cut" in str(record["message"])


def test_the_text_format_is_one_readable_line_with_the_context(text_log: Captured) -> None:
    with log_context(request_id="R1", instance_id="I1"):
        text_log.logger.warning("speech %s dropped, token=abc", "X")
    text_log.logger.info("no context")
    first, second = text_log.lines()
    name = text_log.logger.name
    assert first.endswith(f"WARNING {name}: speech X dropped, token=[REDACTED] [request=R1 instance=I1]")
    assert second.endswith(f"INFO {name}: no context")
    assert re.match(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z WARNING ", first), first


CONFIGURE = textwrap.dedent(
    """
    import logging, sys, warnings
    from herald.observability.logs import configure_logging

    configure_logging(sys.argv[1], sys.argv[2])
    logging.getLogger("herald.api.rpc").debug("herald debug")
    logging.getLogger("herald.api.rpc").info("herald info")
    logging.getLogger("uvicorn.error").info("uvicorn info")
    logging.getLogger("uvicorn.error").debug("> BINARY 00 01 02 [640 bytes]")
    logging.getLogger("aiosqlite").debug("executing INSERT with params")
    warnings.warn("something old", DeprecationWarning, stacklevel=1)
    """
)


def run_configured(level: str, log_format: str) -> list[str]:
    done = subprocess.run(
        [sys.executable, "-W", "always", "-c", CONFIGURE, level, log_format],
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    assert done.stdout == ""
    return done.stderr.splitlines()


def test_configured_process_writes_only_json_lines_with_library_debug_held_back() -> None:
    lines = run_configured("debug", "json")
    records = [json.loads(line) for line in lines]
    assert all(r.keys() >= FIELDS for r in records), lines
    assert [(r["logger"], r["level"], r["message"]) for r in records[:3]] == [
        ("herald.api.rpc", "DEBUG", "herald debug"),
        ("herald.api.rpc", "INFO", "herald info"),
        ("uvicorn.error", "INFO", "uvicorn info"),
    ]
    assert records[3]["logger"] == "py.warnings"
    assert "something old" in str(records[3]["message"])
    assert len(records) == 4  # uvicorn's frame dumps and aiosqlite's statements stay out


def test_configured_text_format_and_level() -> None:
    lines = run_configured("info", "text")
    assert len(lines) >= 3
    assert lines[0].endswith("INFO herald.api.rpc: herald info")
    assert lines[1].endswith("INFO uvicorn.error: uvicorn info")
    assert not any(line.startswith("{") for line in lines)


def test_serve_logs_json_unless_told_otherwise(capsys: pytest.CaptureFixture[str]) -> None:
    parser = build_parser()
    assert parser.parse_args(["serve"]).log_format == "json"
    assert parser.parse_args(["serve", "--log-format", "text"]).log_format == "text"
    with pytest.raises(SystemExit):
        parser.parse_args(["serve", "--log-format", "xml"])
    assert "invalid choice: 'xml'" in capsys.readouterr().err
