"""Callbacks: each pending event of the outbox POSTed to its callback URL, at least once.

One task works through the outbox: whenever a slot is free it takes the events that are due and starts
an attempt for each (at most ``concurrency`` at once, each within ``timeout_s``, each writing back its
outcome), so a receiver that hangs holds its own slots, never another receiver's events. A 2xx answer
delivers the event; anything else (an error status, a refused connection, a timeout) retries it after an
exponentially growing wait (``first_retry_s`` doubling up to ``max_retry_s``) until ``max_attempts``,
after which the event is marked ``failed`` with its last error (still in the outbox, and in the event
stream). The state lives in the database, so a restart resumes where the last run stopped; a receiver
that answers slowly or not at all costs a connection slot and a timeout, never an instance's audio,
and never memory beyond one batch.

Every attempt carries the same ``eventId`` (in the body and in ``X-Herald-Event-Id``): a receiver that
answered too late for us sees the event again and drops it as a duplicate.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import json
import logging
from dataclasses import dataclass
from datetime import timedelta
from typing import Protocol

from herald.clock import Clock
from herald.observability import metrics
from herald.observability.outages import OutageLog
from herald.store.events import EventStore
from herald.store.records import EventRecord

_log = logging.getLogger(__name__)

LEASE_MARGIN_S = 5.0
"""An attempt's lease on its event outlasts its timeout by this much."""


class Poster(Protocol):
    async def post(self, url: str, body: bytes, headers: dict[str, str]) -> int:
        """POST and return the HTTP status; raise on a failure to get one."""
        ...


@dataclass(frozen=True)
class DeliverySettings:
    """``[callbacks]`` of the config file."""

    max_attempts: int = 8
    first_retry_s: float = 1.0
    max_retry_s: float = 300.0
    timeout_s: float = 10.0
    concurrency: int = 8
    batch: int = 64

    def __post_init__(self) -> None:
        for name in ("max_attempts", "first_retry_s", "max_retry_s", "timeout_s", "concurrency", "batch"):
            if getattr(self, name) <= 0:
                raise ValueError(f"{name} must be positive, got {getattr(self, name)}")

    def retry_after_s(self, attempts: int) -> float:
        """The wait after the ``attempts``-th failed attempt."""
        return float(min(self.max_retry_s, self.first_retry_s * 2 ** (attempts - 1)))


class CallbackDelivery:
    def __init__(
        self, store: EventStore, poster: Poster, clock: Clock, settings: DeliverySettings = DeliverySettings()
    ) -> None:
        self._store = store
        self._poster = poster
        self._clock = clock
        self._settings = settings
        self._wake = asyncio.Event()
        self._in_flight: dict[str, asyncio.Task[None]] = {}
        self._outage = OutageLog(_log, "callback delivery", clock)

    def wake(self) -> None:
        """New pending events were written, or a delivery slot came free."""
        self._wake.set()

    async def run(self) -> None:
        """Deliver forever (until cancelled)."""
        try:
            while True:
                # Both steps read the outbox: a database that is away must not end the loop at either.
                try:
                    if not await self.start_due():
                        await self._sleep_until_due()
                except Exception as exc:
                    self._outage.failed(exc, "retrying every second")
                    await asyncio.sleep(1.0)
                else:
                    self._outage.succeeded()
        finally:
            for task in self._in_flight.values():
                task.cancel()
            await asyncio.gather(*self._in_flight.values(), return_exceptions=True)

    async def start_due(self) -> bool:
        """Start an attempt for each event due now, as many as there are free slots; whether any started.

        Each attempt holds a lease on its event (its next attempt is put off until after the attempt's
        timeout) so no other pass takes it meanwhile; a crash mid-attempt only delays the retry.
        """
        free = self._settings.concurrency - len(self._in_flight)
        if free <= 0:
            return False
        now = self._clock.now()
        lease_until = now + timedelta(seconds=self._settings.timeout_s + LEASE_MARGIN_S)
        due = await self._store.claim_due(now, lease_until=lease_until, limit=min(free, self._settings.batch))
        due = [record for record in due if record.event_id not in self._in_flight]
        for record in due:
            task = asyncio.create_task(self._attempt(record), name=f"callback-{record.event_id}")
            self._in_flight[record.event_id] = task
            task.add_done_callback(functools.partial(self._attempt_done, record.event_id))
        return bool(due)

    async def deliver_due(self) -> bool:
        """Start the attempts due now and wait for them (for tests and tools); whether there were any."""
        started = await self.start_due()
        await asyncio.gather(*self._in_flight.values(), return_exceptions=True)
        return started

    def _attempt_done(self, event_id: str, task: asyncio.Task[None]) -> None:
        self._in_flight.pop(event_id, None)
        self._wake.set()  # a slot is free

    async def _sleep_until_due(self) -> None:
        self._wake.clear()
        next_due = await self._store.next_due_at()
        timeout = None if next_due is None else max(0.0, (next_due - self._clock.now()).total_seconds())
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._wake.wait(), timeout)

    async def _attempt(self, record: EventRecord) -> None:
        assert record.callback_url is not None
        headers = {"Content-Type": "application/json", "X-Herald-Event-Id": record.event_id}
        if record.callback_token:
            headers["Authorization"] = record.callback_token
        body = json.dumps(record.payload, ensure_ascii=False, separators=(",", ":")).encode()
        error: str | None
        try:
            async with asyncio.timeout(self._settings.timeout_s):
                status = await self._poster.post(record.callback_url, body, headers)
            error = None if 200 <= status < 300 else f"the receiver answered HTTP {status}"
        except asyncio.CancelledError:
            await self._release(record)
            raise
        except TimeoutError:
            error = f"no answer within {self._settings.timeout_s:g} s"
        except Exception as exc:
            error = str(getattr(exc, "reason", "") or exc) or type(exc).__name__
        record.attempts += 1
        now = self._clock.now()
        if error is None:
            record.delivery, record.delivered_at, record.next_attempt_at = "delivered", now, None
            record.last_error = None
            metrics.CALLBACK_DELIVERIES.labels("delivered").inc()
        elif record.attempts >= self._settings.max_attempts:
            record.delivery, record.next_attempt_at, record.last_error = "failed", None, error
            metrics.CALLBACK_DELIVERIES.labels("failed").inc()
            _log.warning(
                "callback of event %s (%s) failed after %d attempts: %s",
                record.event_id,
                record.name,
                record.attempts,
                error,
            )
        else:
            wait_s = self._settings.retry_after_s(record.attempts)
            record.next_attempt_at = now + timedelta(seconds=wait_s)
            record.last_error = error
            metrics.CALLBACK_DELIVERIES.labels("retried").inc()
            _log.info(
                "callback of event %s (%s) attempt %d: %s; next in %g s",
                record.event_id,
                record.name,
                record.attempts,
                error,
                wait_s,
            )
        await self._store.save_delivery(record)

    async def _release(self, record: EventRecord) -> None:
        """Hand back the lease of an attempt cut short (at shutdown): the event is due again at once.

        Without this a restart would wait out the lease (the attempt's timeout and more) before the retry.
        The attempt is not counted: nothing was heard from the receiver.
        """
        record.next_attempt_at = self._clock.now()
        try:
            await asyncio.shield(self._store.save_delivery(record))
        except Exception:
            _log.warning(
                "could not hand back the lease of event %s; it is retried when it expires", record.event_id
            )
