"""Fixtures of the console suite: a real Herald server and Debian's Chromium driven by Playwright."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from playwright.sync_api import BrowserContext, ConsoleMessage, Error, Page, Playwright, sync_playwright

from herald.testing.server import HeraldServer

CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--use-fake-ui-for-media-stream",
    "--use-fake-device-for-media-stream",
    "--autoplay-policy=no-user-gesture-required",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    # Without these Chromium reaches for Google's hosts, which this closed network refuses.
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]


@pytest.fixture(scope="module")
def server() -> Iterator[HeraldServer]:
    # Chromium's fake microphone beeps once a second: a listening agent may take a beep for the user
    # talking over it and stop (barge-in). These tests are about the console's audio, not listening.
    with HeraldServer(check_exit=False, env={"HERALD_ASR_ENGINE": "off"}) as running:
        yield running


@pytest.fixture(scope="module")
def playwright() -> Iterator[Playwright]:
    if not CHROMIUM.exists():
        pytest.fail(
            f"{CHROMIUM} is missing: the console tests drive Debian's Chromium; run scripts/setup --dev "
            "(never `playwright install`: it downloads browsers)."
        )
    with sync_playwright() as running:
        yield running


@pytest.fixture(scope="module")
def chromium_args() -> list[str]:
    """Chromium's command line; a module may override it (another fake microphone, say)."""
    return list(CHROMIUM_ARGS)


@pytest.fixture(scope="module")
def browser(
    playwright: Playwright, tmp_path_factory: pytest.TempPathFactory, chromium_args: list[str]
) -> Iterator[BrowserContext]:
    """Headless Chromium with a fresh profile, a fake microphone and autoplay allowed."""
    context = playwright.chromium.launch_persistent_context(
        tmp_path_factory.mktemp("chromium-profile"),
        executable_path=str(CHROMIUM),
        headless=True,
        args=chromium_args,
        viewport={"width": 1360, "height": 900},
    )
    try:
        yield context
    finally:
        context.close()


@pytest.fixture
def page_errors() -> list[str]:
    """Console errors and uncaught exceptions of the test's page (``page``), as they happen."""
    return []


@pytest.fixture
def page(browser: BrowserContext, page_errors: list[str]) -> Iterator[Page]:
    """A fresh tab; its console errors and uncaught exceptions go to ``page_errors``."""
    tab = browser.new_page()

    def on_console(message: ConsoleMessage) -> None:
        if message.type in ("error", "assert"):
            page_errors.append(f"console.{message.type}: {message.text} ({message.location})")

    def on_page_error(error: Error) -> None:
        page_errors.append(f"uncaught: {error}")

    tab.on("console", on_console)
    tab.on("pageerror", on_page_error)
    tab.set_default_timeout(15_000)
    try:
        yield tab
    finally:
        tab.close()
