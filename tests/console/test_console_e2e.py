"""The web console end to end: a real server, Debian's Chromium, a fake microphone, the agent heard.

Everything is asserted from the page: the level the WebAudio analyser measured on the remote track,
the subtitles and the utterance table as shown, and no console error along the way. The screenshot
(``artifacts/console.png``) is the one in docs/console.md.
"""

from __future__ import annotations

import re
import time
from pathlib import Path
from typing import Any

import httpx
import pytest
from alibabacloud_ice20201109.models import StopAIAgentInstanceRequest
from playwright.sync_api import Locator, Page, expect

from herald.testing.server import HeraldServer

pytestmark = pytest.mark.e2e

ARTIFACTS = Path(__file__).parent / "artifacts"  # git-ignored (tests/console/.gitignore)

ENERGY = 0.01  # call.js ENERGY_THRESHOLD: RMS on a full scale of 1.0
FIRST = "Hello from the Herald console."
SECOND = "This one is spoken by espeak."
LONG = (
    "This is a long announcement. It goes on for several sentences, so that there is time to cut it. "
    "The third sentence is here. A fourth one follows. And a fifth, which nobody should hear."
)


def _utterance_row(page: Page, n: int) -> Locator:
    """The utterance table's row of the ``n``-th speech pushed."""
    return page.locator(f"#utterances tbody tr[data-n='{n}']")


def _describe_session(page: Page) -> dict[str, Any]:
    """Press "Refresh status"; the session as the server described it in answer (not an older answer)."""
    before = page.evaluate("() => window.heraldConsole.session?.RequestId ?? null")
    page.click("#describe")
    newer = "(before) => (window.heraldConsole.session?.RequestId ?? null) !== before"
    page.wait_for_function(newer, arg=before)
    session: dict[str, Any] = page.evaluate("() => window.heraldConsole.session")
    return session


def test_console_joins_a_call_and_hears_the_agent(
    server: HeraldServer, page: Page, page_errors: list[str]
) -> None:
    started = time.monotonic()
    page.goto(server.url + "/")  # redirects to /console/
    expect(page).to_have_url(f"{server.url}/console/")
    expect(page).to_have_title("Herald console")
    expect(page.locator("body")).to_have_attribute("data-key-state", "none")
    expect(page.locator("#create-call")).to_be_disabled()
    expect(page.locator("#join")).to_be_disabled()

    # The key pair: the secret field is cleared, nothing secret is kept where a page could read it later.
    page.fill("#access-key-id", server.access_key_id)
    page.fill("#access-key-secret", server.access_key_secret)
    page.click("#use-key")
    expect(page.locator("body")).to_have_attribute("data-key-state", "ready")
    expect(page.locator("#access-key-secret")).to_have_value("")
    expect(page.locator("#key-badge")).to_have_text(server.access_key_id)
    stored = page.evaluate(
        "() => JSON.stringify([{...localStorage}, {...sessionStorage}, document.cookie, location.href])"
    )
    assert server.access_key_secret not in stored
    assert server.access_key_id in stored  # the AccessKeyId is remembered, by design

    # A call, joined over WebRTC with the (fake) microphone.
    page.click("#create-call")
    expect(page.locator("#instance-status")).to_have_text("Created")
    call = page.evaluate("() => window.heraldConsole.call")
    expect(page.locator("#instance-id")).to_have_text(call["InstanceId"])
    expect(page.locator("#channel-id")).to_have_text(call["ChannelId"])
    expect(page.locator("#create-call")).to_be_disabled()
    page.click("#join")
    expect(page.locator("body")).to_have_attribute("data-call-state", "joined")
    expect(page.locator("#session-state")).to_have_text("joined")
    expect(page.locator("#leave")).to_be_enabled()
    expect(page.locator("#join")).to_be_disabled()
    page.wait_for_function("() => window.heraldConsole.channelOpen")
    expect(page.locator("#agent-state")).to_have_text("listening")
    expect(page.locator("#instance-status")).to_have_text("Executing")

    # Push a speech: the agent is heard, its subtitle shown, and its outcome with the heard text.
    page.fill("#speech-text", FIRST)
    page.click("#send-speech")
    first = _utterance_row(page, 1)
    expect(first).to_have_attribute("data-outcome", "finished", timeout=20_000)
    expect(first.locator("td.heard")).to_contain_text("Hello from the Herald console")
    request_id = first.get_attribute("data-request-id")
    assert request_id
    expect(first.locator("td").nth(3)).to_contain_text(request_id)
    expect(first.locator("td").nth(4)).to_contain_text(re.compile(r"\+\d+ ms"))
    expect(page.locator("#subtitles")).to_contain_text(FIRST)
    max_level = page.evaluate("() => window.heraldConsole.maxLevel")
    assert max_level > ENERGY, f"no speech energy reached the page's analyser (max RMS {max_level})"
    utterance = page.evaluate("() => window.heraldConsole.utterances[0]")
    assert utterance["requestId"] == request_id
    assert utterance["outcome"] == "finished"
    assert utterance["playedMs"] > 500
    assert utterance["firstAudioAt"] is not None

    # What the server sees of this browser: connected, the data channel open, the fake microphone's audio.
    session = _describe_session(page)
    assert (session["ConnectionState"], session["DataChannel"]) == ("connected", "open"), session
    assert session["Microphone"]["Frames"] > 0, session
    expect(page.locator("#session-info")).to_contain_text("connected, data channel open, microphone")

    # Another voice (espeak-ng), confirmed by the agent's 1005, then an appended speech in it.
    page.fill("#voice-id", "espeak-ng/en-us")
    page.click("#update-voice")
    expect(page.locator("#voice-status")).to_contain_text("is now espeak-ng/en-us")
    page.fill("#speech-text", SECOND)
    page.check("input[name='speech-policy'][value='false']")
    page.click("#send-speech")
    second = _utterance_row(page, 2)
    expect(second).to_have_attribute("data-outcome", "finished", timeout=20_000)
    expect(second.locator("td").nth(2)).to_have_text("append")
    expect(second.locator("td.heard")).to_contain_text("espeak")
    expect(page.locator("#log")).to_contain_text("1001 agent state")
    expect(page.locator("#log")).to_contain_text("1900 speech outcome")

    # A long speech cut by "Interrupt now" (data-channel message 1101): interrupted, with what was heard.
    page.check("input[name='speech-policy'][value='true']")
    page.fill("#speech-text", LONG)
    page.click("#send-speech")
    page.wait_for_function("() => window.heraldConsole.utterances[2]?.firstAudioAt != null")
    page.wait_for_timeout(1200)
    page.click("#interrupt")
    third = _utterance_row(page, 3)
    expect(third).to_have_attribute("data-outcome", "interrupted")
    expect(page.locator("#log")).to_contain_text("1016 speech interrupted")
    cut = page.evaluate("() => window.heraldConsole.utterances[2]")
    assert 0 < len(cut["heardText"]) < len(LONG), cut
    assert cut["playedMs"] > 500, cut

    # An API error is shown with its envelope's Code and Message.
    page.check("input[name='speech-type'][value='AudioUrl']")
    page.fill("#speech-text", "not a url")
    page.click("#send-speech")
    expect(page.locator("#speech-error")).to_contain_text("InvalidParameter")
    expect(page.locator("#speech-error")).to_contain_text("Text")
    expect(_utterance_row(page, 4)).to_have_attribute("data-outcome", "rejected")
    page.check("input[name='speech-type'][value='Text']")
    page.fill("#speech-text", "")

    ARTIFACTS.mkdir(exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / "console.png"), full_page=True)

    # Leave (DELETE on the session), then stop the instance.
    page.click("#leave")
    expect(page.locator("body")).to_have_attribute("data-call-state", "left")
    expect(page.locator("#join")).to_be_enabled()
    page.click("#stop")
    expect(page.locator("#instance-status")).to_have_text("Finished")
    expect(page.locator("#stop")).to_be_disabled()
    expect(page.locator("#join")).to_be_disabled()
    expect(page.locator("#send-speech")).to_be_disabled()
    expect(page.locator("#create-call")).to_be_enabled()
    with httpx.Client(trust_env=False) as http:
        assert http.get(f"{server.url}/health").json()["liveInstances"] == 0

    # No script error; the one console error is Chromium's note of the refused speech's 400 above.
    assert len(page_errors) == 1, page_errors
    assert "the server responded with a status of 400" in page_errors[0], page_errors
    assert time.monotonic() - started < 40


def test_console_refuses_a_wrong_key_and_follows_the_agent_leaving(
    server: HeraldServer, page: Page, page_errors: list[str]
) -> None:
    page.goto(server.url + "/console/")
    body = page.locator("body")

    # A wrong secret: refused with the server's reason, and nothing can be done with it.
    page.fill("#access-key-id", server.access_key_id)
    page.fill("#access-key-secret", server.access_key_secret + "-wrong")
    page.click("#use-key")
    expect(page.locator("#key-error")).to_contain_text("SignatureDoesNotMatch")
    expect(body).to_have_attribute("data-key-state", "none")
    expect(page.locator("#access-key-secret")).to_have_value("")
    expect(page.locator("#create-call")).to_be_disabled()

    page.fill("#access-key-secret", server.access_key_secret)
    page.click("#use-key")
    expect(body).to_have_attribute("data-key-state", "ready")
    expect(page.locator("#key-error")).to_be_hidden()

    # Listen only: no microphone is asked for, the offer receives only.
    page.click("#create-call")
    expect(page.locator("#instance-status")).to_have_text("Created")
    expect(page.locator("#send-user-text")).to_be_disabled()
    expect(page.locator("#voice-interrupt")).to_be_disabled()
    page.uncheck("#use-mic")
    page.click("#join")
    expect(body).to_have_attribute("data-call-state", "joined")
    expect(page.locator("#call-status")).to_contain_text("listening only")
    assert _describe_session(page)["Microphone"]["Frames"] == 0
    expect(page.locator("#session-info")).to_contain_text("connected, data channel open, listening only")

    # This server's agents neither think (no LLM) nor listen ([asr] off): a text said as the user (1111)
    # and switching voice interruption (1102) are refused with a 1000, shown with its code.
    page.fill("#user-text", "What time is it?")
    page.click("#send-user-text")
    expect(page.locator("#call-error")).to_contain_text("InvalidParameter.NoLlm")
    expect(page.locator("#subtitles li[data-who='user']")).to_contain_text("What time is it?")
    expect(page.locator("#log")).to_contain_text("1000 error")
    page.click("#voice-interrupt")
    expect(page.locator("#call-error")).to_contain_text("IncorrectInstanceStatus.NotListening")
    expect(page.locator("#voice-interrupt")).to_be_checked()  # what holds: unchanged
    expect(page.locator("#voice-interrupt-note")).to_have_text("as configured")

    # The instance is stopped from elsewhere: the agent says so (1010) and the page leaves the call.
    call = page.evaluate("() => window.heraldConsole.call")
    server.sdk_client().stop_aiagent_instance(StopAIAgentInstanceRequest(instance_id=call["InstanceId"]))
    expect(body).to_have_attribute("data-call-state", "left")
    expect(page.locator("#instance-status")).to_have_text("Finished")
    expect(page.locator("#log")).to_contain_text("1010 agent leaving")
    expect(page.locator("#join")).to_be_disabled()
    expect(page.locator("#create-call")).to_be_enabled()
    expect(page.locator("#send-user-text")).to_be_disabled()

    assert len(page_errors) == 1, page_errors  # Chromium's note of the wrong key's 400
    assert "the server responded with a status of 400" in page_errors[0], page_errors
