"""``RateLimiter``: a token bucket per account and action, on a virtual clock."""

from __future__ import annotations

import re

import pytest

from herald.auth.throttle import Rate, RateLimiter, ThrottleSettings
from herald.errors import Throttled
from herald.testing.clock import VirtualClock

MS = 1_000_000


def limiter(settings: ThrottleSettings) -> tuple[RateLimiter, VirtualClock]:
    clock = VirtualClock()
    return RateLimiter(settings, clock), clock


async def test_a_burst_passes_then_the_next_request_is_told_when_to_retry() -> None:
    rates, clock = limiter(ThrottleSettings(Rate(rate=10, burst=3)))
    for _ in range(3):
        rates.take("acme", "SendAIAgentSpeech")
    with pytest.raises(Throttled) as caught:
        rates.take("acme", "SendAIAgentSpeech")
    assert caught.value.code == "Throttling.User"
    assert caught.value.retry_after_ms == 100  # one token at 10 per second
    assert caught.value.headers() == {"x-acs-retry-after": "100"}
    assert "10 per second" in caught.value.message
    await clock.advance(60 * MS)
    with pytest.raises(Throttled) as caught:
        rates.take("acme", "SendAIAgentSpeech")
    assert caught.value.retry_after_ms == 40
    await clock.advance(40 * MS)
    rates.take("acme", "SendAIAgentSpeech")


async def test_the_sustained_rate_is_the_configured_one() -> None:
    rates, clock = limiter(ThrottleSettings(Rate(rate=5, burst=1)))
    passed = 0
    for _ in range(200):  # 2 s in 10 ms steps
        try:
            rates.take("acme", "DescribeAIAgentInstance")
            passed += 1
        except Throttled:
            pass
        await clock.advance(10 * MS)
    assert passed == 10


async def test_a_quiet_spell_refills_no_more_than_the_burst() -> None:
    rates, clock = limiter(ThrottleSettings(Rate(rate=100, burst=2)))
    await clock.advance(3600 * 1000 * MS)
    rates.take("acme", "A")
    rates.take("acme", "A")
    with pytest.raises(Throttled):
        rates.take("acme", "A")


def test_accounts_and_actions_have_their_own_buckets() -> None:
    rates, _ = limiter(ThrottleSettings(Rate(rate=1, burst=1)))
    rates.take("acme", "A")
    rates.take("globex", "A")
    rates.take("acme", "B")
    with pytest.raises(Throttled):
        rates.take("acme", "A")


def test_rate_zero_is_no_limit_and_actions_override_the_default() -> None:
    settings = ThrottleSettings.from_table(
        {"rate": 0, "actions": {"SendAIAgentSpeech": {"rate": 1, "burst": 1}}}
    )
    rates, _ = limiter(settings)
    for _ in range(10_000):
        rates.take("acme", "DescribeAIAgentInstance")
    rates.take("acme", "SendAIAgentSpeech")
    with pytest.raises(Throttled):
        rates.take("acme", "SendAIAgentSpeech")


def test_from_table_defaults_the_burst_to_twice_the_rate() -> None:
    assert ThrottleSettings.from_table({}).default == ThrottleSettings().default
    assert ThrottleSettings.from_table({"rate": 50}).default == Rate(50, 100)
    settings = ThrottleSettings.from_table({"rate": 50, "burst": 60, "actions": {"A": {"burst": 5}}})
    assert settings.for_action("A") == Rate(50, 5)
    assert settings.for_action("B") == Rate(50, 60)


@pytest.mark.parametrize(
    ("table", "message"),
    [
        ({"rat": 1}, "unknown keys ['rat']"),
        ({"rate": -1}, "rate must be >= 0"),
        ({"rate": "fast"}, "could not convert"),
        ({"rate": 10, "burst": 0.5}, "burst >= 1"),
        ({"actions": {"A": 5}}, "[throttling.actions.A] must be a table"),
        ({"actions": {"A": {"rate": 1, "bust": 2}}}, "[throttling.actions.A] has unknown keys ['bust']"),
        ({"actions": []}, "[throttling.actions] must be a table"),
    ],
)
def test_bad_settings_say_what_is_wrong(table: dict[str, object], message: str) -> None:
    with pytest.raises(ValueError, match=re.escape(message)):
        ThrottleSettings.from_table(table)
