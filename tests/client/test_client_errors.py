"""The client's errors: the server's envelope read into one line, and unreachable servers named plainly."""

from __future__ import annotations

import errno
import json

import httpx

from herald.client.errors import Refused, unreachable


def test_the_ice_envelope_gives_status_code_and_message():
    body = json.dumps(
        {"RequestId": "R1", "HostId": "h", "Code": "InvalidToken", "Message": "The token expired."}
    )
    refused = Refused.from_response(401, body.encode())
    assert (refused.status_code, refused.code, refused.message, refused.request_id) == (
        401,
        "InvalidToken",
        "The token expired.",
        "R1",
    )
    assert str(refused) == "InvalidToken: The token expired. (HTTP 401)"


def test_a_body_that_is_not_the_envelope_is_quoted_on_one_line():
    refused = Refused.from_response(502, b"<html>\n  Bad   gateway\n</html>")
    assert refused.code == ""
    assert str(refused) == "HTTP 502: <html> Bad gateway </html>"
    assert str(Refused.from_response(500, b"")) == "HTTP 500: (empty body)"
    long = Refused.from_response(500, b"x" * 1000)
    assert len(long.message) == 200


def test_a_refused_connection_is_named_plainly():
    # asyncio words it "Connect call failed"; httpx wraps it twice.
    try:
        try:
            raise ConnectionRefusedError(errno.ECONNREFUSED, "Connect call failed ('127.0.0.1', 9)")
        except OSError as cause:
            raise httpx.ConnectError("All connection attempts failed") from cause
    except httpx.ConnectError as exc:
        error = unreachable("http://127.0.0.1:9", exc, 10)
    assert str(error) == "cannot reach Herald at http://127.0.0.1:9: connection refused"


def test_a_timeout_says_how_long_it_waited():
    error = unreachable("http://h:1", httpx.ReadTimeout("timed out"), 2.5)
    assert str(error) == "no answer from Herald at http://h:1 within 2.5 s"
    assert "within 10 s" in str(unreachable("http://h:1", TimeoutError(), 10))
