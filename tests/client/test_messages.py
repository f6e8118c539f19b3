"""Reading and writing the data-channel envelope."""

from __future__ import annotations

import json

import pytest

from herald.client.messages import encode, parse


def test_an_envelope_is_read_with_its_arrival_time():
    raw = '{"type":1002,"data":{"text":"Hi","sentenceId":1},"seqId":4,"senderId":"a","receiverId":""}'
    message = parse(raw, 12.5)
    assert (message.type, message.data["text"], message.seq_id, message.sender_id) == (1002, "Hi", 4, "a")
    assert (message.received_s, message.raw, message.error) == (12.5, raw, "")


def test_bytes_and_a_missing_data_are_accepted():
    message = parse(b'{"type": 1119}', 0.0)
    assert (message.type, message.data, message.error) == (1119, {}, "")


@pytest.mark.parametrize(
    ("raw", "error"),
    [
        ("not json", "not JSON"),
        ("[1, 2]", "not a JSON object"),
        ('{"type": "1001"}', "no integer type"),
        ('{"type": true}', "no integer type"),
        ('{"type": 1001, "data": [1]}', "data is not an object"),
    ],
)
def test_a_malformed_message_is_kept_and_says_what_is_wrong(raw, error):
    message = parse(raw, 1.0)
    assert message.type == -1
    assert error in message.error
    assert message.raw == raw


def test_encode():
    assert json.loads(encode(1103, {"voiceId": "espeak-ng/de"})) == {
        "type": 1103,
        "data": {"voiceId": "espeak-ng/de"},
    }
    assert json.loads(encode(1101)) == {"type": 1101, "data": {}}
