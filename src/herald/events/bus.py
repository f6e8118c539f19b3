"""The event bus: every event goes to the outbox first, then to whoever follows the instance.

``publish`` never blocks (it is called on the audio path): events are queued and written in batches,
in order (``store/batch_writer.py``), each getting its ``seq``. Once written, an event is handed to the live
subscribers of its instance (the event streams) and, if it has a callback, the delivery worker is woken.
An event is never sent anywhere before it is in the database, so a restart loses none that was
acknowledged to anyone. ``flush()`` writes what is pending (at shutdown, and for tests).
"""

from __future__ import annotations

import asyncio
import contextlib
from collections import defaultdict
from collections.abc import Callable, Iterator

from herald.clock import Clock
from herald.events.model import AgentEvent
from herald.observability import metrics
from herald.store.batch_writer import BatchWriter
from herald.store.events import EventStore
from herald.store.records import EventRecord

MAX_PENDING = 100_000
"""Past this many unwritten events (the database is down or far too slow) new ones are dropped, loudly."""
SUBSCRIBER_QUEUE = 1000
"""Events a slow stream may fall behind by before it is cut (it can resume from the outbox)."""


class _NewInOutbox:
    """A notice that the instance has events in the outbox this process did not write (a cluster)."""


NEW_IN_OUTBOX = _NewInOutbox()


class Subscription:
    """The events of one instance as they are written (or ``NEW_IN_OUTBOX``: read them there); ``None``
    once the subscriber fell too far behind."""

    def __init__(self) -> None:
        self.queue: asyncio.Queue[EventRecord | _NewInOutbox | None] = asyncio.Queue(maxsize=SUBSCRIBER_QUEUE)
        self.overflowed = False

    def offer(self, record: EventRecord | _NewInOutbox) -> None:
        if self.overflowed:
            return
        try:
            self.queue.put_nowait(record)
        except asyncio.QueueFull:
            self.overflowed = True
            self.queue.get_nowait()
            self.queue.put_nowait(None)


class EventBus:
    def __init__(
        self,
        store: EventStore,
        clock: Clock,
        *,
        on_callback_pending: Callable[[], None] = lambda: None,
        batch_delay_s: float = 0.02,
    ) -> None:
        self.store = store
        self._clock = clock
        self._on_callback_pending = on_callback_pending
        self._writer = BatchWriter(
            store.add_all,
            what="event",
            after_write=self._hand_on,
            batch_delay_s=batch_delay_s,
            max_pending=MAX_PENDING,
        )
        self._subscribers: defaultdict[str, set[Subscription]] = defaultdict(set)
        self._on_written: Callable[[list[EventRecord]], None] | None = None

    def set_callback_listener(self, listener: Callable[[], None]) -> None:
        self._on_callback_pending = listener

    def set_written_listener(self, listener: Callable[[list[EventRecord]], None]) -> None:
        """``listener`` learns of every batch written (a cluster tells the other nodes' streams)."""
        self._on_written = listener

    def has_subscribers(self, instance_id: str) -> bool:
        return instance_id in self._subscribers

    def notify_written_elsewhere(self, instance_id: str) -> None:
        """Another process wrote events of ``instance_id``: its streams here read them from the outbox."""
        for subscription in self._subscribers.get(instance_id, ()):
            subscription.offer(NEW_IN_OUTBOX)

    def publish(self, event: AgentEvent) -> None:
        """Queue ``event`` for the outbox. Never blocks."""
        target = event.callback if event.callback is not None and event.callback.wants(event.name) else None
        queued = self._writer.add(
            EventRecord(
                event_id=event.event_id,
                owner=event.owner,
                instance_id=event.instance_id,
                name=event.name.value,
                payload=event.payload(),
                created_at=event.at,
                callback_url=target.url if target else None,
                callback_token=(target.token or None) if target else None,
                delivery="pending" if target else "none",
                next_attempt_at=event.at if target else None,
            )
        )
        if queued:
            metrics.EVENTS_PUBLISHED.labels(event.name.value).inc()

    @contextlib.contextmanager
    def subscribe(self, instance_id: str) -> Iterator[Subscription]:
        """Follow ``instance_id``'s events from now on, while the block runs."""
        subscription = Subscription()
        self._subscribers[instance_id].add(subscription)
        try:
            yield subscription
        finally:
            subscribers = self._subscribers.get(instance_id)
            if subscribers is not None:
                subscribers.discard(subscription)
                if not subscribers:
                    del self._subscribers[instance_id]

    async def flush(self) -> None:
        """Write every pending event now, then hand them on."""
        await self._writer.flush()

    async def close(self) -> None:
        await self._writer.close()

    def _hand_on(self, batch: list[EventRecord]) -> None:
        callbacks = False
        for record in batch:
            for subscription in self._subscribers.get(record.instance_id, ()):
                subscription.offer(record)
            callbacks = callbacks or record.delivery == "pending"
        if callbacks:
            self._on_callback_pending()
        if self._on_written is not None:
            self._on_written(batch)
