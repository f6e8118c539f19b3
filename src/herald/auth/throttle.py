"""Per-account request rates: one token bucket per (account, action).

A bucket holds up to ``burst`` tokens and refills at ``rate`` per second; each request takes one. An
empty bucket refuses the request with ``Throttling.User`` and says, in ``x-acs-retry-after``
(milliseconds, as the official SDK reads it), when a token will be there. ``rate = 0`` turns the limit
off. The buckets live in memory: one per account and action that has been used, so their number is
bounded by the accounts the operator created times the actions there are.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from herald.clock import Clock
from herald.errors import Throttled


@dataclass(frozen=True, slots=True)
class Rate:
    rate: float
    """Requests per second, sustained; 0: no limit."""
    burst: float
    """Requests at once, after a quiet spell."""

    def __post_init__(self) -> None:
        if self.rate < 0 or (self.rate > 0 and self.burst < 1):
            raise ValueError(
                f"a rate must be >= 0 and its burst >= 1, got rate {self.rate}, burst {self.burst}"
            )


@dataclass(frozen=True)
class ThrottleSettings:
    """``[throttling]`` of the config file: ``rate``/``burst`` for every action, and per action under
    ``[throttling.actions.<Action>]``."""

    default: Rate = Rate(200.0, 400.0)
    actions: Mapping[str, Rate] = field(default_factory=dict)

    @classmethod
    def from_table(cls, table: Mapping[str, Any]) -> ThrottleSettings:
        default = _rate({k: v for k, v in table.items() if k != "actions"}, cls.default, "throttling")
        actions_table = table.get("actions", {})
        if not isinstance(actions_table, Mapping):
            raise ValueError("[throttling.actions] must be a table of actions")
        actions = {}
        for action, entry in actions_table.items():
            if not isinstance(entry, Mapping):
                raise ValueError(f"[throttling.actions.{action}] must be a table with rate and burst")
            actions[str(action)] = _rate(entry, default, f"throttling.actions.{action}")
        return cls(default, actions)

    def for_action(self, action: str) -> Rate:
        return self.actions.get(action, self.default)


def _rate(table: Mapping[str, Any], fallback: Rate, where: str) -> Rate:
    unknown = sorted(set(table) - {"rate", "burst"})
    if unknown:
        raise ValueError(f"[{where}] has unknown keys {unknown}")
    try:
        rate = float(table.get("rate", fallback.rate))
        burst = float(table.get("burst", max(1.0, 2 * rate) if "rate" in table else fallback.burst))
        return Rate(rate, burst)
    except (TypeError, ValueError) as exc:
        raise ValueError(f"[{where}]: {exc}") from None


class _Bucket:
    __slots__ = ("at_ns", "tokens")

    def __init__(self, tokens: float, at_ns: int) -> None:
        self.tokens = tokens
        self.at_ns = at_ns


class RateLimiter:
    def __init__(self, settings: ThrottleSettings, clock: Clock) -> None:
        self._settings = settings
        self._clock = clock
        self._buckets: dict[tuple[str, str], _Bucket] = {}

    def take(self, account_id: str, action: str) -> None:
        """Take a token for ``action`` of ``account_id``, or raise ``Throttled``."""
        limit = self._settings.for_action(action)
        if limit.rate == 0:
            return
        now_ns = self._clock.monotonic_ns()
        bucket = self._buckets.get((account_id, action))
        if bucket is None:
            bucket = self._buckets[(account_id, action)] = _Bucket(limit.burst, now_ns)
        else:
            bucket.tokens = min(limit.burst, bucket.tokens + (now_ns - bucket.at_ns) / 1e9 * limit.rate)
            bucket.at_ns = now_ns
        if bucket.tokens >= 1.0:
            bucket.tokens -= 1.0
            return
        wait_ms = math.ceil((1.0 - bucket.tokens) / limit.rate * 1000)
        raise Throttled(
            f"The request rate of the account for {action} is over its limit of {limit.rate:g} per second "
            f"(bursts of {limit.burst:g}); retry after {wait_ms} ms.",
            wait_ms,
        )
