"""The console as a conversation UI: a real server that listens (PocketSphinx) and answers through a scripted
OpenAI-compatible LLM (``ScriptedLlm``), driven from Debian's Chromium.

* A text sent with "Say as the user" (``1111``) is answered: the agent thinks, then speaks the scripted
  answer, shown in the transcript after the typed line; the LLM got the text as the last user message.
  The "Voice can interrupt the agent" checkbox sends ``1102`` and shows the agent's ``1004``.
* The transcript's handling of the user's subtitles (``1003``: partials rewritten in place, the final
  settling them, an empty final removing them), fed to the page through its test hook
  ``window.heraldConsole.receive``.
* A real spoken question: this module's fake microphone plays a WAV file of Piper saying it (once, after
  some silence) instead of Chromium's usual beep, so the server's own ``1003`` subtitles and the answer show.

The first two join listening only, so the microphone cannot disturb them.
"""

from __future__ import annotations

import json
import re
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from playwright.sync_api import Locator, Page, expect

from herald.client.wav import write_wav
from herald.speech.piper_engine import PiperEngine
from herald.speech.tts import VoiceSettings
from herald.testing.llm_server import LlmRequest, Reply, ScriptedLlm
from herald.testing.server import HeraldServer

pytestmark = pytest.mark.e2e

ARTIFACTS = Path(__file__).parent / "artifacts"  # git-ignored (tests/console/.gitignore)

QUESTION = "What time is it?"  # PocketSphinx hears Piper say this right (docs/listening.md)
ANSWER = "It is three o'clock. Anything else?"
THINK_S = 1.5  # how long the scripted LLM waits before its first word: long enough to see "thinking"
MIC_RATE_HZ = 48_000
MIC_LEAD_S = 3.0  # silence before the question: the call is joined by then
WAIT_MS = 25_000  # any one step of a real conversation, on a busy 2-core machine


# ---- fixtures ------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def microphone_wav(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Piper (Herald's own voice) saying ``QUESTION`` after ``MIC_LEAD_S`` of silence, 48 kHz."""
    engine = PiperEngine.load()
    clip = engine.synthesize(QUESTION, VoiceSettings(voice_id=engine.voice_ids[0]))
    silence = np.zeros(int(MIC_LEAD_S * MIC_RATE_HZ), dtype=np.int16)
    path = tmp_path_factory.mktemp("microphone") / "question.wav"
    write_wav(path, np.concatenate([silence, clip, silence[: MIC_RATE_HZ // 2]]), MIC_RATE_HZ)
    return path


@pytest.fixture(scope="module")
def chromium_args(chromium_args: list[str], microphone_wav: Path) -> list[str]:
    # `%noloop`: the file plays once, then the microphone is silent (a loop would ask again and again).
    return [*chromium_args, f"--use-file-for-fake-audio-capture={microphone_wav}%noloop"]


@pytest.fixture(scope="module")
def llm() -> Iterator[ScriptedLlm]:
    with ScriptedLlm(default=Reply(ANSWER)) as scripted:
        yield scripted


@pytest.fixture(scope="module")
def server(llm: ScriptedLlm) -> Iterator[HeraldServer]:
    env = {
        "HERALD_ASR_ENGINE": "pocketsphinx"
    }  # listening on (the console suite's default server has it off)
    with HeraldServer(check_exit=False, config=llm.server_config(), env=env) as running:
        yield running


# ---- helpers -------------------------------------------------------------------------------------------


def _join(page: Page, server: HeraldServer, *, microphone: bool) -> None:
    """Enter the key, create a call and join it (with the fake microphone, or listening only)."""
    page.goto(server.url + "/console/")
    page.fill("#access-key-id", server.access_key_id)
    page.fill("#access-key-secret", server.access_key_secret)
    page.click("#use-key")
    expect(page.locator("body")).to_have_attribute("data-key-state", "ready")
    page.click("#create-call")
    expect(page.locator("#instance-status")).to_have_text("Created")
    expect(page.locator("#send-user-text")).to_be_disabled()
    expect(page.locator("#voice-interrupt")).to_be_disabled()
    page.set_checked("#use-mic", microphone)
    page.click("#join")
    expect(page.locator("body")).to_have_attribute("data-call-state", "joined")
    page.wait_for_function("() => window.heraldConsole.channelOpen")
    expect(page.locator("#agent-state")).to_have_text("listening")


def _lines(page: Page, who: str) -> Locator:
    return page.locator(f"#subtitles li[data-who='{who}']")


def _transcript(page: Page) -> list[dict[str, Any]]:
    transcript: list[dict[str, Any]] = page.evaluate("() => window.heraldConsole.transcript")
    return transcript


def _receive(page: Page, msg_type: int, data: dict[str, Any]) -> None:
    """Hand the page a data-channel message as if the agent had sent it (the console's test hook)."""
    page.evaluate("(message) => window.heraldConsole.receive(message)", {"type": msg_type, "data": data})


def _user_subtitle(page: Page, sentence_id: str, text: str, *, end: bool) -> None:
    _receive(page, 1003, {"text": text, "sentenceId": sentence_id, "end": end})


def _last_request(llm: ScriptedLlm, first: int) -> LlmRequest:
    """This test's one LLM request (the first after index ``first``), once answered."""
    request = llm.wait_for_request(first, timeout_s=WAIT_MS / 1000)
    assert len(llm.requests) == first + 1, [r.messages for r in llm.requests[first:]]
    return request


def _stop(page: Page) -> None:
    page.click("#stop")
    expect(page.locator("#instance-status")).to_have_text("Finished")
    expect(page.locator("#send-user-text")).to_be_disabled()
    expect(page.locator("#voice-interrupt")).to_be_disabled()


# ---- tests ---------------------------------------------------------------------------------------------


def test_a_text_said_as_the_user_is_answered_and_voice_interruption_switches(
    server: HeraldServer, llm: ScriptedLlm, page: Page, page_errors: list[str]
) -> None:
    started = time.monotonic()
    _join(page, server, microphone=False)
    # The checkbox shows what the instance's config says until the agent says otherwise.
    checkbox = page.locator("#voice-interrupt")
    expect(checkbox).to_be_enabled()
    expect(checkbox).to_be_checked()
    expect(page.locator("#voice-interrupt-note")).to_have_text("as configured")

    # "Say as the user" (1111): the agent thinks (the LLM waits THINK_S before its first word), then
    # speaks the scripted answer, shown after the typed line.
    first = len(llm.requests)
    llm.script(Reply(ANSWER, delay_first_s=THINK_S))
    page.fill("#user-text", QUESTION)
    page.click("#send-user-text")
    expect(page.locator("#user-text")).to_have_value("")
    typed = _lines(page, "user")
    expect(typed).to_have_count(1)
    expect(typed).to_contain_text(QUESTION)
    expect(typed.locator(".tag")).to_have_text("typed")
    expect(page.locator("#agent-state")).to_have_text("thinking")
    expect(page.locator("#agent-state")).to_have_text("speaking", timeout=WAIT_MS)
    expect(page.locator("#subtitle-now")).to_contain_text("Agent")
    expect(page.locator("#log")).to_contain_text("1017 reply complete", timeout=WAIT_MS)
    expect(page.locator("#agent-state")).to_have_text("listening", timeout=WAIT_MS)
    agent = _lines(page, "agent")
    expect(agent.first).to_contain_text("three o'clock")
    expect(agent.last).to_contain_text("Anything else?")
    expect(agent.last).to_have_attribute("data-state", "done")
    transcript = _transcript(page)
    assert [line["who"] for line in transcript][:2] == ["user", "agent"], transcript
    assert all(line["who"] == "agent" and line["done"] and not line["cut"] for line in transcript[1:]), (
        transcript
    )
    assert " ".join(line["text"] for line in transcript[1:]) == ANSWER, transcript
    states = page.locator("#log li", has_text="1001 agent state")
    expect(states.filter(has_text='{"state":2}')).not_to_have_count(0)  # thinking
    expect(states.filter(has_text='{"state":3}')).not_to_have_count(0)  # speaking
    expect(page.locator("#log")).to_contain_text("1111 user text sent")
    request = _last_request(llm, first)
    assert request.messages[-1] == {"role": "user", "content": QUESTION}, request.messages

    # Voice interruption off and on again (1102): the agent confirms each with 1004, to everyone.
    confirmed = page.locator("#log li", has_text="1004 voice interrupt")
    page.click("#voice-interrupt")
    expect(checkbox).not_to_be_checked()
    expect(confirmed.filter(has_text='"enable":false')).to_have_count(1)
    expect(page.locator("#voice-interrupt-note")).to_have_text("confirmed by the agent")
    assert page.evaluate("() => window.heraldConsole.voiceInterrupt") is False
    page.click("#voice-interrupt")
    expect(confirmed.filter(has_text='"enable":true')).to_have_count(1)
    expect(checkbox).to_be_checked()
    assert page.evaluate("() => window.heraldConsole.voiceInterrupt") is True
    expect(page.locator("#call-error")).to_be_hidden()

    _stop(page)
    assert page_errors == []
    assert time.monotonic() - started < 40


def test_the_users_subtitles_show_as_they_grow_and_settle(
    page: Page, server: HeraldServer, page_errors: list[str]
) -> None:
    page.goto(server.url + "/console/")
    user = _lines(page, "user")

    # Partials rewrite one line in place, shown in progress (also as the line said now); the final settles it.
    _user_subtitle(page, "u1", "what", end=False)
    expect(user).to_have_count(1)
    expect(user).to_have_attribute("data-state", "partial")
    expect(page.locator("#subtitle-now .who")).to_have_text("You")
    expect(page.locator("#subtitle-now .partial")).to_have_text("what")
    _user_subtitle(page, "u1", "what time", end=False)
    expect(user).to_have_count(1)
    expect(user.locator(".partial")).to_have_text("what time")
    _user_subtitle(page, "u1", "what time is it", end=True)
    expect(user).to_have_count(1)
    expect(user).to_have_attribute("data-state", "done")
    expect(user).to_contain_text("You")
    expect(user.locator(".done")).to_have_text("what time is it")

    # The agent answers; the user talks over it: the cut (1016) marks the agent's sentence, not the user's.
    _receive(page, 1002, {"text": "It is three.", "sentenceId": "a1", "end": False})
    expect(page.locator("#subtitle-now .who")).to_have_text("Agent")
    expect(page.locator("#subtitle-now .speaking")).to_have_text("It is three.")
    _user_subtitle(page, "u2", "stop", end=False)
    _receive(page, 1016, {"reason": 2})
    agent = _lines(page, "agent")
    expect(agent).to_have_attribute("data-state", "cut")
    expect(agent).to_contain_text("(cut)")
    expect(user.nth(1)).to_have_attribute("data-state", "partial")

    # An empty final closes partials that came to nothing: their line goes. One without partials adds nothing.
    _user_subtitle(page, "u2", "", end=True)
    expect(user).to_have_count(1)
    _user_subtitle(page, "u3", "", end=True)
    _user_subtitle(page, "u4", "thank you", end=True)  # a final without partials before it
    expect(user).to_have_count(2)
    expect(user.last).to_have_attribute("data-state", "done")
    assert [(s["who"], s["text"], s["done"], s["cut"]) for s in _transcript(page)] == [
        ("user", "what time is it", True, False),
        ("agent", "It is three.", True, True),
        ("user", "thank you", True, False),
    ]
    subtitles = page.evaluate("() => window.heraldConsole.subtitles")  # the agent's only, as before
    assert [s["text"] for s in subtitles] == ["It is three."]
    expect(page.locator("#log")).to_contain_text("1003 user subtitle")

    # The transcript keeps its last 50 lines (SUBTITLE_LIMIT), oldest first, whoever said them.
    for n in range(60):
        _user_subtitle(page, f"many-{n}", f"line {n}", end=True)
    expect(page.locator("#subtitles li")).to_have_count(50)
    expect(page.locator("#subtitles li").first).to_contain_text("line 10")
    expect(page.locator("#subtitles li").last).to_contain_text("line 59")
    assert page_errors == []


def test_a_spoken_question_is_transcribed_and_answered(
    server: HeraldServer, llm: ScriptedLlm, page: Page, page_errors: list[str]
) -> None:
    first = len(llm.requests)
    llm.script(Reply(ANSWER))
    _join(page, server, microphone=True)  # the microphone's file starts playing now: silence, then QUESTION

    # The server's own 1003s: the user's line settles with what PocketSphinx heard, then the agent answers.
    heard = page.locator("#subtitles li[data-who='user'][data-state='done']")
    expect(heard).to_have_count(1, timeout=WAIT_MS)
    expect(heard).to_contain_text("what time is it")
    expect(heard.locator(".tag")).to_have_count(0)  # spoken, not typed
    expect(_lines(page, "agent").last).to_contain_text("Anything else?", timeout=WAIT_MS)
    expect(page.locator("#agent-state")).to_have_text("listening", timeout=WAIT_MS)
    transcript = _transcript(page)
    assert [line["who"] for line in transcript] == ["user"] + ["agent"] * (len(transcript) - 1), transcript
    request = _last_request(llm, first)
    assert request.messages[-1]["role"] == "user", request.messages
    assert "what time is it" in request.messages[-1]["content"].lower(), request.messages
    # While the question was spoken, partial subtitles of its sentence came first (the log, oldest first).
    logged = page.locator("#log li", has_text="1003 user subtitle").locator("code").all_text_contents()
    *partials, final = [json.loads(text) for text in reversed(logged)]
    assert partials, "no partial subtitle before the final one"
    assert all(not p["end"] and p["text"] for p in partials), partials
    assert {p["sentenceId"] for p in partials} == {final["sentenceId"]}, (partials, final)
    assert final["end"], final
    # The server received the microphone (the file Chromium played).
    page.click("#describe")
    expect(page.locator("#session-info")).to_contain_text(re.compile(r"microphone \d+ frames"))

    ARTIFACTS.mkdir(exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / "console-conversation.png"), full_page=True)
    _stop(page)
    assert page_errors == []
