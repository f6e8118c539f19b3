"""The metrics registry of an application: the runtime's state read when scraped, the shared metrics."""

from __future__ import annotations

import asyncio
from types import SimpleNamespace
from typing import Any

from prometheus_client import generate_latest
from prometheus_client.parser import text_string_to_metric_families

from herald.api.metrics import ApiMetrics
from herald.media.frames import FRAME_NS
from herald.media.room import OPUS, Room
from herald.media.ticker import Ticker
from herald.observability import metrics as shared
from herald.testing.clock import VirtualClock


def scrape(metrics: ApiMetrics) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    """Every sample of the exposition, keyed by name and sorted labels."""
    text = generate_latest(metrics.registry).decode()
    return {
        (sample.name, tuple(sorted(sample.labels.items()))): sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
    }


class FakeRtc:
    def __init__(self, sessions: int) -> None:
        self.sessions = sessions

    def __len__(self) -> int:
        return self.sessions


def live_instance(room: Room, queued: int) -> Any:
    return SimpleNamespace(room=room, scheduler=SimpleNamespace(queued=queued))


def fake_runtime(ticker: Ticker, lives: list[Any], rtc_sessions: int) -> Any:
    instances = SimpleNamespace(live_instances=lambda: list(lives))
    return SimpleNamespace(instances=instances, rtc=FakeRtc(rtc_sessions), ticker=ticker)


async def test_runtime_state_is_read_at_scrape_time() -> None:
    clock = VirtualClock()
    ticker = Ticker(clock, max_catchup_frames=5)
    task = asyncio.create_task(ticker.run())
    await asyncio.sleep(0)
    busy, quiet = Room("c1", "agent-1"), Room("c2", "agent-2")
    busy.join("u1", 16_000)
    busy.join("u2", 48_000)
    busy.join("u3", OPUS)  # the WebRTC session's participant
    lives = [live_instance(busy, 2), live_instance(quiet, 1)]
    runtime = fake_runtime(ticker, lives, rtc_sessions=1)
    metrics = ApiMetrics(lambda: runtime)

    await clock.advance(10 * FRAME_NS)
    clock._now_ns += 3 * FRAME_NS  # a 60 ms stall: caught up
    await clock.advance(FRAME_NS)
    clock._now_ns += 20 * FRAME_NS  # a 400 ms stall: 5 frames caught up, the rest given up
    await clock.advance(FRAME_NS)
    task.cancel()

    values = scrape(metrics)
    assert values[("herald_instances_active", ())] == 2
    assert values[("herald_participants", (("transport", "websocket"),))] == 2
    assert values[("herald_participants", (("transport", "webrtc"),))] == 1
    assert values[("herald_rtc_sessions", ())] == 1
    assert values[("herald_speech_queue_depth", ())] == 3
    # The pacer's own counts (tests/media/test_ticker.py checks how it counts), exposed as they are.
    assert values[("herald_output_ticks_total", ())] == ticker.ticks > 10
    assert values[("herald_output_late_frames_total", ())] == ticker.late_ticks > 0
    assert values[("herald_output_skipped_frames_total", ())] == ticker.skipped_frames > 0

    # Nothing is cached: the next scrape sees the next state.
    lives.pop()
    busy.leave(busy.participants[0])
    values = scrape(metrics)
    assert values[("herald_instances_active", ())] == 1
    assert values[("herald_participants", (("transport", "websocket"),))] == 1
    assert values[("herald_speech_queue_depth", ())] == 2


def test_before_the_runtime_starts_only_the_request_and_process_metrics_show() -> None:
    names = {name for name, _ in scrape(ApiMetrics(lambda: None))}
    assert "herald_instances_active" not in names
    assert "process_cpu_seconds_total" in names
    assert "herald_speech_first_audio_seconds_count" in names


def test_each_application_counts_its_own_requests() -> None:
    first, second = ApiMetrics(lambda: None), ApiMetrics(lambda: None)
    first.record("SendAIAgentSpeech", "OK", 0.003)
    first.record("SendAIAgentSpeech", "InstanceNotFound", 0.001)
    second.record("SendAIAgentSpeech", "OK", 0.2)
    one, two = scrape(first), scrape(second)
    ok = ("herald_api_requests_total", (("action", "SendAIAgentSpeech"), ("code", "OK")))
    missing = ("herald_api_requests_total", (("action", "SendAIAgentSpeech"), ("code", "InstanceNotFound")))
    assert (one[ok], two[ok]) == (1, 1)
    assert (one[missing], missing in two) == (1, False)
    assert one[("herald_api_request_seconds_count", (("action", "SendAIAgentSpeech"),))] == 2
    assert one[("herald_api_request_seconds_bucket", (("action", "SendAIAgentSpeech"), ("le", "0.005")))] == 2
    assert two[("herald_api_request_seconds_bucket", (("action", "SendAIAgentSpeech"), ("le", "0.1")))] == 0


def test_the_shared_metrics_show_in_every_application() -> None:
    first, second = ApiMetrics(lambda: None), ApiMetrics(lambda: None)
    key = ("herald_speech_first_audio_seconds_count", ())
    before = scrape(first)[key]
    shared.FIRST_AUDIO_SECONDS.observe(0.08)
    shared.INTERRUPT_OLD_AUDIO_SECONDS.observe(0.004)
    shared.EVENTS_PUBLISHED.labels(event="agent_start").inc()
    assert scrape(first)[key] == scrape(second)[key] == before + 1
    values = scrape(first)
    assert values[("herald_interrupt_old_audio_seconds_bucket", (("le", "0.005"),))] >= 1
    assert values[("herald_events_total", (("event", "agent_start"),))] >= 1
    # Every delivery outcome is there from the start, so rate() works before the first failure.
    for outcome in ("delivered", "retried", "failed"):
        assert ("herald_callback_deliveries_total", (("outcome", outcome),)) in values
