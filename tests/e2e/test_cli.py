"""``herald say`` and ``herald call`` as a user runs them: subprocesses against a real server.

The server runs without a configured key, so it makes its development key, and the commands (given the
same ``HERALD_DATA_DIR``) find it there, as they would on a developer's machine.
"""

from __future__ import annotations

import queue
import re
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import numpy as np
import pytest

from herald.client.audio import SILENCE_RMS
from herald.client.wav import read_wav
from herald.testing.audio_client import MSG_AGENT_STATE, AudioRecorder
from herald.testing.server import HeraldServer
from herald.testing.transcript import is_listening, words

pytestmark = pytest.mark.e2e

MSG_OUTCOME = 1900
GREETING = "Hello from the terminal."
CONFIG = f"""
[agents.greeter.AgentConfig]
Greeting = "{GREETING}"
"""
REQUEST_ID = re.compile(r"[0-9A-F]{8}-[0-9A-F]{4}-[0-9A-F]{4}-[0-9A-F]{4}-[0-9A-F]{12}")


@pytest.fixture(scope="module")
def server() -> Iterator[HeraldServer]:
    with HeraldServer(access_key=None, config=CONFIG, check_exit=False) as running:
        yield running


def herald(
    server: HeraldServer, *args: str, timeout_s: float = 60.0, **env: str
) -> subprocess.CompletedProcess[str]:
    """``python -m herald ARGS`` with the server's environment (plus ``env``); ``--endpoint`` is added."""
    return subprocess.run(
        [sys.executable, "-m", "herald", *args, "--endpoint", env.pop("endpoint", server.url)],
        env={**server.environment(), **env},
        capture_output=True,
        text=True,
        timeout=timeout_s,
        check=False,
    )


def assert_one_clear_error(result: subprocess.CompletedProcess[str], *expected: str) -> None:
    assert result.returncode != 0, result
    assert "Traceback" not in result.stderr, result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    for text in expected:
        assert text in lines[0], result.stderr


def wav_speech_s(path: Path) -> tuple[float, float, float]:
    """(seconds of audio, seconds of 20 ms frames above silence, loudest frame's RMS) of a WAV file."""
    pcm, rate = read_wav(path)
    frame = rate // 50
    frames = pcm[: len(pcm) // frame * frame].astype(np.float64).reshape(-1, frame)
    rms = np.sqrt(np.mean(np.square(frames), axis=1)) if len(frames) else np.zeros(1)
    return len(pcm) / rate, float(np.sum(rms > SILENCE_RMS)) / 50, float(rms.max())


class Running:
    """A ``herald`` subprocess whose output lines are read as they come."""

    def __init__(self, server: HeraldServer, *args: str) -> None:
        self.process = subprocess.Popen(
            [sys.executable, "-m", "herald", *args, "--endpoint", server.url],
            env=server.environment(),
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        self.lines: list[str] = []
        self._queue: queue.Queue[str | None] = queue.Queue()
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _read(self) -> None:
        assert self.process.stdout is not None
        for line in self.process.stdout:
            self._queue.put(line.rstrip("\n"))
        self._queue.put(None)

    def wait_for(self, pattern: str, timeout_s: float = 30.0) -> re.Match[str]:
        """The first line (from now on) matching ``pattern``."""
        deadline = time.monotonic() + timeout_s
        while True:
            try:
                line = self._queue.get(timeout=max(deadline - time.monotonic(), 0.01))
            except queue.Empty:
                raise AssertionError(
                    f"no line matching {pattern!r} in {timeout_s} s:\n{self.output}"
                ) from None
            if line is None:
                raise AssertionError(f"the command ended before {pattern!r}:\n{self.output}")
            self.lines.append(line)
            if match := re.search(pattern, line):
                return match

    def finish(self, timeout_s: float = 20.0) -> tuple[int, str]:
        """Wait for the exit; (exit code, stderr). Every output line is in ``lines`` afterwards."""
        code = self.process.wait(timeout=timeout_s)
        self._reader.join(timeout_s)
        while not self._queue.empty():
            line = self._queue.get_nowait()
            if line is not None:
                self.lines.append(line)
        assert self.process.stdout is not None
        assert self.process.stderr is not None
        stderr = self.process.stderr.read()
        self.process.stdout.close()
        self.process.stderr.close()
        return code, stderr

    @property
    def output(self) -> str:
        return "\n".join(self.lines)

    def kill(self) -> None:
        """End the command if a failed test left it running."""
        if self.process.poll() is None:
            self.process.kill()
            self.finish()


# -- herald serve ---------------------------------------------------------------------------------------


def test_serve_prints_the_console_address(server):
    console = re.search(r"Console: (\S+)", server.logs())
    assert console, server.logs()
    assert console.group(1) == f"{server.url}/console/"
    page = httpx.get(console.group(1), trust_env=False, timeout=10)
    assert page.status_code == 200
    assert "text/html" in page.headers["content-type"]


# -- herald say ----------------------------------------------------------------------------------------


async def test_say_speaks_into_a_live_call_and_prints_the_request_id(server):
    call = server.call("GenerateAIAgentCall", {"AIAgentId": "default"})
    first, second = "The first thing to say.", "And the second, after it."
    async with AudioRecorder(server.audio_url(call["ChannelId"], call["Token"])) as rec:
        await rec.wait_for_message(MSG_AGENT_STATE, is_listening, timeout_s=10)
        said = herald(server, "say", call["InstanceId"], first)
        appended = herald(server, "say", "--append", call["InstanceId"], second)

        for result in (said, appended):
            assert result.returncode == 0, result
            assert REQUEST_ID.fullmatch(result.stdout.strip()), result.stdout
            assert result.stderr == "", result.stderr
        first_id, second_id = said.stdout.strip(), appended.stdout.strip()
        outcomes = [
            await rec.wait_for_message(MSG_OUTCOME, lambda m, i=i: m.data["requestId"] == i, timeout_s=40)
            for i in (first_id, second_id)
        ]
    transcript = rec.describe()
    assert [o.data["state"] for o in outcomes] == ["finished", "finished"], (
        "--append cut the first\n" + transcript
    )
    assert outcomes[0].index < outcomes[1].index, transcript
    assert words(outcomes[1].data["heardText"]) == words(second), transcript
    server.call("StopAIAgentInstance", {"InstanceId": call["InstanceId"]})


@pytest.mark.parametrize(
    ("case", "expected"),
    [
        ("unknown-instance", ["InstanceNotFound", "does not exist"]),
        ("empty-text", ["Text"]),
        ("bad-key", ["InvalidAccessKeyId.NotFound"]),
        ("server-down", ["cannot reach Herald at http://127.0.0.1:9", "connection refused"]),
        ("private-audio-url", ["InvalidParameter", "Text"]),  # so --audio-url did send Type=AudioUrl
    ],
)
def test_say_failures_are_one_clear_line(server, case, expected):
    instance_id = "0" * 32
    args = ["Hello"]
    env: dict[str, str] = {}
    if case in ("empty-text", "private-audio-url"):
        instance_id = server.call("GenerateAIAgentCall", {"AIAgentId": "default"})["InstanceId"]
        args = [""] if case == "empty-text" else ["--audio-url", "http://127.0.0.1/hello.wav"]
    elif case == "bad-key":
        env = {"HERALD_ACCESS_KEY_ID": "LTAI-nobody", "HERALD_ACCESS_KEY_SECRET": "wrong"}
    elif case == "server-down":
        env = {"endpoint": "http://127.0.0.1:9"}
    result = herald(server, "say", instance_id, *args, **env)
    assert_one_clear_error(result, "herald say:", *expected)
    assert result.stdout == ""


# -- herald call ---------------------------------------------------------------------------------------


@pytest.mark.parametrize("transport", ["webrtc", "websocket"])
def test_call_an_agent_hears_its_greeting_and_writes_the_wav(server, tmp_path, transport):
    out = tmp_path / "call.wav"
    result = herald(
        server, "call", "--agent", "greeter", "--seconds", "3", "--transport", transport, "--out", str(out)
    )

    assert result.returncode == 0, result
    assert result.stderr == "", result.stderr
    stdout = result.stdout
    instance_id = re.search(r"InstanceId: +(\w+)", stdout)
    assert instance_id, stdout
    assert re.search(r"ChannelId: +\w+", stdout), stdout
    assert "joined, listening" in stdout, stdout
    assert f'subtitle #1: "{GREETING}"' in stdout, stdout
    assert re.search(r"speech \S+ finished: heard \"Hello from the terminal\.\"", stdout), stdout
    wrote = re.search(r"wrote (.+): ([\d.]+) s of audio, ([\d.]+) s of speech", stdout)
    assert wrote, stdout
    assert Path(wrote.group(1)) == out

    seconds, speech_s, loudest = wav_speech_s(out)
    assert 2.5 <= seconds <= 4.0, stdout
    assert abs(seconds - float(wrote.group(2))) < 0.1, stdout
    assert speech_s >= 0.5, f"only {speech_s} s of speech in the WAV"
    assert abs(speech_s - float(wrote.group(3))) < 0.1, stdout
    assert loudest > 1000, "the speech has no real energy"

    status = server.call("DescribeAIAgentInstance", {"InstanceId": instance_id.group(1)})["Instance"][
        "Status"
    ]
    assert status == "Finished", "the call's instance was left running"


def test_say_into_a_call_joined_from_the_terminal_then_ctrl_c(server, tmp_path):
    out = tmp_path / "listened.wav"
    running = Running(server, "call", "--agent", "default", "--out", str(out))
    try:
        instance_id = running.wait_for(r"InstanceId: +(\w+)").group(1)
        running.wait_for(r"joined, listening")

        said = herald(server, "say", instance_id, "Can you hear me?")
        assert said.returncode == 0, said
        request_id = said.stdout.strip()
        running.wait_for(rf"speech {request_id} finished: heard \"Can you hear me\?\"")
        running.wait_for(r"agent listening")

        running.process.send_signal(signal.SIGINT)
        code, stderr = running.finish()
    finally:
        running.kill()

    assert code == 0, f"{stderr}\n{running.output}"
    assert "Traceback" not in stderr, stderr
    assert "leaving (interrupted)" in running.output, running.output
    assert f"stopped instance {instance_id}" in running.output, running.output
    seconds, speech_s, _ = wav_speech_s(out)
    assert seconds > 0.5, running.output
    assert speech_s >= 0.5, running.output
    status = server.call("DescribeAIAgentInstance", {"InstanceId": instance_id})["Instance"]["Status"]
    assert status == "Finished"


@pytest.mark.parametrize("transport", ["webrtc", "websocket"])
def test_call_ends_when_the_agent_leaves(server, tmp_path, transport):
    out = tmp_path / "short.wav"
    running = Running(server, "call", "--agent", "default", "--transport", transport, "--out", str(out))
    try:
        instance_id = running.wait_for(r"InstanceId: +(\w+)").group(1)
        running.wait_for(r"joined, listening")
        server.call("StopAIAgentInstance", {"InstanceId": instance_id})
        running.wait_for(r"the agent is leaving", timeout_s=10)
        code, stderr = running.finish(timeout_s=10)
    finally:
        running.kill()
    assert code == 0, f"{stderr}\n{running.output}"
    assert "the agent left the call" in running.output, running.output
    assert re.search(r"wrote .+: [\d.]+ s of audio", running.output), running.output
    assert out.exists()


@pytest.mark.parametrize(
    ("case", "transport", "expected"),
    [
        ("bad-token", "webrtc", ["InvalidToken", "HTTP 401"]),
        ("bad-token", "websocket", ["InvalidToken", "HTTP 401"]),
        ("unknown-channel", "webrtc", ["ChannelNotFound", "HTTP 404"]),
        ("server-down", "webrtc", ["cannot reach Herald", "connection refused"]),
        ("unknown-agent", "webrtc", ["AgentNotFound"]),
    ],
)
def test_call_failures_are_one_clear_line(server, tmp_path, case, transport, expected):
    out = tmp_path / "never.wav"
    env: dict[str, str] = {}
    if case == "unknown-agent":
        target = ["--agent", "no-such-agent"]
    else:
        call = server.call("GenerateAIAgentCall", {"AIAgentId": "default"})
        channel_id, token = call["ChannelId"], call["Token"]
        if case == "bad-token":
            token += "x"
        elif case == "unknown-channel":
            channel_id = "no-such-channel"
            token = server.token(channel_id, "someone")
        elif case == "server-down":
            env = {"endpoint": "http://127.0.0.1:9"}
        target = [channel_id, "--token", token]
    result = herald(server, "call", *target, "--transport", transport, "--out", str(out), **env)
    assert_one_clear_error(result, "herald call:", *expected)
    assert not out.exists(), "a WAV file was left behind by a call that never happened"
