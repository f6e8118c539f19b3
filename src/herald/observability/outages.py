"""Telling an outage of a service Herald depends on from a bug, and logging it as an outage.

``service_away(exc)`` names what is unreachable when ``exc`` (or an exception that caused it) is a
PostgreSQL, Redis or network failure. API requests turn that into a 503 (``api.outage``). Background loops
that retry (writing dialogue rows, delivering callbacks, reloading keys) report through an ``OutageLog``:
an outage is one warning line when it starts, a reminder while it lasts and one line when the loop works
again, instead of a traceback every second; any other failure keeps its traceback, since it is a bug.
"""

from __future__ import annotations

import logging
from typing import Final, Literal

import asyncpg
import redis.exceptions
import sqlalchemy.exc

from herald.clock import Clock, SystemClock

Service = Literal["database", "redis", "network"]

_REDIS: Final = (redis.exceptions.ConnectionError, redis.exceptions.TimeoutError)
_DATABASE: Final = (
    sqlalchemy.exc.OperationalError,
    sqlalchemy.exc.InterfaceError,
    sqlalchemy.exc.TimeoutError,  # no pooled connection came free
    asyncpg.exceptions.PostgresConnectionError,
    asyncpg.exceptions.InterfaceError,
)
_NETWORK: Final = (ConnectionError, TimeoutError)
REMIND_S: Final = 60.0
"""While an outage lasts, a loop says it is still failing this often."""


def service_away(exc: BaseException) -> Service | None:
    """Which service ``exc`` says is unreachable (looking through a few of its causes); ``None`` if it is
    not an outage."""
    seen: BaseException | None = exc
    for _ in range(5):
        if seen is None:
            break
        if isinstance(seen, _REDIS):
            return "redis"
        if isinstance(seen, _DATABASE) or (
            isinstance(seen, sqlalchemy.exc.DBAPIError) and seen.connection_invalidated
        ):
            return "database"
        if isinstance(seen, _NETWORK):
            return "network"
        seen = seen.__cause__ or seen.__context__
    return None


class OutageLog:
    """The failures of one retrying loop (``what`` names it in every line)."""

    def __init__(
        self,
        logger: logging.Logger,
        what: str,
        clock: Clock | None = None,
        *,
        remind_s: float = REMIND_S,
    ) -> None:
        self._log = logger
        self._what = what
        self._remind_s = remind_s
        self._clock = clock or SystemClock()
        self._since: float | None = None
        """When the current outage began (``None``: none)."""
        self._last_said = 0.0
        self._failures = 0

    def _now(self) -> float:
        return self._clock.monotonic_ns() / 1e9

    @property
    def in_outage(self) -> bool:
        return self._since is not None

    def failed(self, exc: BaseException, consequence: str) -> None:
        """The loop failed with ``exc``; ``consequence`` says what happens now ("will retry")."""
        service = service_away(exc)
        if service is None:
            self._log.error("%s failed; %s", self._what, consequence, exc_info=exc)
            return
        now = self._now()
        self._failures += 1
        if self._since is None:
            self._since = self._last_said = now
            self._log.warning(
                "%s failed: the %s is unreachable (%s: %s); %s",
                self._what,
                service,
                type(exc).__name__,
                _first_line(exc),
                consequence,
            )
        elif now - self._last_said >= self._remind_s:
            self._last_said = now
            self._log.warning(
                "%s still failing: the %s has been unreachable for %.0f s (%d failures)",
                self._what,
                service,
                now - self._since,
                self._failures,
            )

    def succeeded(self) -> None:
        """The loop worked: if an outage was going on, it is over."""
        if self._since is not None:
            self._log.warning(
                "%s works again after %.1f s (%d failures)",
                self._what,
                self._now() - self._since,
                self._failures,
            )
            self._since = None
            self._failures = 0


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return text[0][:200] if text else ""
