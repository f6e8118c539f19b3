"""One readable line per data-channel message (what ``herald call`` prints)."""

from __future__ import annotations

import json
from typing import Any

import pytest

from herald.client.events import describe, line
from herald.client.messages import parse


def message(msg_type: int, data: Any, received_s: float = 0.0) -> str:
    raw = json.dumps({"type": msg_type, "data": data, "seqId": 1, "senderId": "agent", "receiverId": ""})
    return describe(parse(raw, received_s))


@pytest.mark.parametrize(
    ("msg_type", "data", "expected"),
    [
        (1001, {"state": 1}, "agent listening"),
        (1001, {"state": 3}, "agent speaking"),
        (1001, {"state": 9}, "agent in state 9"),
        (1002, {"text": "Hello there.", "sentenceId": 2, "end": False}, 'subtitle #2: "Hello there."'),
        (1002, {"text": "Hello there.", "sentenceId": 2, "end": True}, 'subtitle #2 played: "Hello there."'),
        (1005, {"voiceId": "espeak-ng/de"}, "voice changed to espeak-ng/de"),
        (
            1010,
            {"reason": 1, "message": "The user ended the call."},
            "the agent is leaving: The user ended the call.",
        ),
        (1010, {"reason": 2}, "the agent is leaving: reason 2"),
        (1011, {"message": '{"order": 42}'}, 'message: {"order": 42}'),
        (1016, {"reason": 3}, "interrupted by a client request"),
        (1016, {"reason": 4}, "interrupted by a pushed speech"),
        (1016, {"reason": 77}, "interrupted (reason 77)"),
        (
            1000,
            {"code": "SpeechFailed", "message": "fetch failed: HTTP 404", "requestId": "R9"},
            "error SpeechFailed: fetch failed: HTTP 404 (speech R9)",
        ),
        (1000, {"code": "InvalidMessage", "message": "not JSON"}, "error InvalidMessage: not JSON"),
        (
            1900,
            {"requestId": "R1", "state": "finished", "playedMs": 1200, "heardText": "Hi.", "reason": ""},
            'speech R1 finished: heard "Hi."',
        ),
        (
            1900,
            {
                "requestId": "R2",
                "state": "interrupted",
                "playedMs": 1680,
                "heardText": "This is",
                "reason": "",
            },
            'speech R2 interrupted after 1.7 s: heard "This is"',
        ),
        (
            1900,
            {"requestId": "R3", "state": "dropped", "playedMs": 0, "heardText": "", "reason": "replaced"},
            "speech R3 dropped: replaced",
        ),
        (
            1900,
            {"requestId": "R4", "state": "failed", "playedMs": 0, "heardText": "", "reason": "synthesis"},
            "speech R4 failed: synthesis",
        ),
        (1234, {"x": 1}, 'message 1234: {"x": 1}'),
    ],
)
def test_each_message_is_one_readable_line(msg_type, data, expected):
    assert message(msg_type, data) == expected


def test_long_and_multi_line_texts_stay_on_one_short_line():
    text = describe(parse(json.dumps({"type": 1002, "data": {"text": "word\n" * 200, "sentenceId": 1}}), 0))
    assert "\n" not in text
    assert len(text) < 240
    assert text.endswith('..."')


def test_a_malformed_message_is_shown_as_such():
    assert describe(parse("{oops", 0)).startswith("malformed message (not JSON")


def test_lines_carry_the_seconds_since_the_start():
    raw = json.dumps({"type": 1001, "data": {"state": 1}})
    assert line(parse(raw, 103.456), 100.0) == "[   3.46] agent listening"
