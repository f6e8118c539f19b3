"""``herald say`` and ``herald call`` arguments, and failures found before any call is made."""

from __future__ import annotations

import socket

import pytest

from herald.cli import build_parser, main


@pytest.fixture(autouse=True)
def empty_settings(tmp_path, monkeypatch):
    """No configured key, no config file: a fresh data directory."""
    for name in ("HERALD_ACCESS_KEY_ID", "HERALD_ACCESS_KEY_SECRET", "HERALD_CONFIG"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("HERALD_DATA_DIR", str(tmp_path))


def closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
    return port


def test_say_arguments():
    args = build_parser().parse_args(["say", "inst", "Hello there", "--append", "--endpoint", "http://h:1"])
    assert (args.instance_id, args.text, args.append, args.audio_url, args.endpoint) == (
        "inst",
        "Hello there",
        True,
        False,
        "http://h:1",
    )


def test_call_defaults():
    args = build_parser().parse_args(["call", "--agent", "default"])
    assert (args.transport, args.out, args.seconds, args.channel_id) == ("webrtc", None, None, None)


@pytest.mark.parametrize(
    ("argv", "says"),
    [
        (["call"], "either CHANNEL_ID with --token, or --agent"),
        (["call", "chan", "--agent", "default"], "either CHANNEL_ID with --token, or --agent"),
        (["call", "chan"], "needs --token"),
        (["call", "--agent", "default", "--token", "t"], "--token is for joining CHANNEL_ID"),
        (["call", "--agent", "default", "--seconds", "0"], "--seconds must be more than 0"),
    ],
)
def test_call_usage_errors(capsys, argv, says):
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert says in err
    assert len(err.strip().splitlines()) == 1


def test_an_unknown_transport_is_a_usage_error(capsys):
    with pytest.raises(SystemExit) as exited:
        main(["call", "--agent", "default", "--transport", "carrier-pigeon"])
    assert exited.value.code == 2
    assert "invalid choice" in capsys.readouterr().err


def test_say_without_any_key_says_how_to_get_one(capsys):
    assert main(["say", "inst", "Hello"]) == 1
    captured = capsys.readouterr()
    assert captured.err.startswith("herald say: no access key: set HERALD_ACCESS_KEY_ID")
    assert captured.out == ""


def test_say_to_a_server_that_is_down(capsys, monkeypatch):
    monkeypatch.setenv("HERALD_ACCESS_KEY_ID", "id")
    monkeypatch.setenv("HERALD_ACCESS_KEY_SECRET", "secret")
    endpoint = f"http://127.0.0.1:{closed_port()}"
    assert main(["say", "inst", "Hello", "--endpoint", endpoint]) == 1
    assert capsys.readouterr().err == f"herald say: cannot reach Herald at {endpoint}: connection refused\n"


@pytest.mark.parametrize("transport", ["webrtc", "websocket"])
def test_call_to_a_server_that_is_down_writes_no_file(capsys, tmp_path, transport):
    endpoint = f"http://127.0.0.1:{closed_port()}"
    out = tmp_path / "x.wav"
    argv = [
        "call",
        "chan",
        "--token",
        "t",
        "--transport",
        transport,
        "--out",
        str(out),
        "--endpoint",
        endpoint,
    ]
    assert main(argv) == 1
    assert capsys.readouterr().err == f"herald call: cannot reach Herald at {endpoint}: connection refused\n"
    assert not out.exists()


def test_call_with_an_unwritable_output_says_so_before_joining(capsys, tmp_path):
    out = tmp_path / "no-such-dir" / "x.wav"
    assert main(["call", "chan", "--token", "t", "--out", str(out), "--endpoint", "http://127.0.0.1:9"]) == 1
    assert capsys.readouterr().err == f"herald call: cannot write {out}: No such file or directory\n"
