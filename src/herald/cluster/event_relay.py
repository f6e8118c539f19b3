"""``EventRelay``: an instance's event stream may be followed on any node, not only the one writing them.

Events are written to the outbox (PostgreSQL) by the node running the instance, which hands them to its
own streams at once. After each batch it publishes the instances concerned on Redis pub/sub; every other
node's streams of those instances then read the outbox from their last event. A lost notice (Redis away)
costs only time: a stream also looks at the outbox at every keep-alive.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging

from redis.asyncio import Redis

from herald.cluster.keys import Keys
from herald.events.bus import EventBus
from herald.store.records import EventRecord

_log = logging.getLogger(__name__)


class EventRelay:
    def __init__(self, redis: Redis, blocking: Redis, keys: Keys, node_id: str, bus: EventBus) -> None:
        self._redis = redis
        self._blocking = blocking
        self._keys = keys
        self._node_id = node_id
        self._bus = bus
        self._tasks: set[asyncio.Task[None]] = set()

    def written(self, batch: list[EventRecord]) -> None:
        """The bus wrote ``batch``: tell the other nodes (in the background; never blocks)."""
        instances = sorted({record.instance_id for record in batch})
        if not instances:
            return
        task = asyncio.create_task(self._publish(instances))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _publish(self, instances: list[str]) -> None:
        notice = json.dumps({"node": self._node_id, "instances": instances})
        try:
            await self._redis.publish(self._keys.events, notice)
        except Exception as exc:
            _log.debug("could not publish new events (%s); streams elsewhere catch up at keep-alive", exc)

    async def run(self) -> None:
        """Pass the other nodes' notices to this node's streams, until cancelled."""
        while True:
            pubsub = self._blocking.pubsub()
            try:
                await pubsub.subscribe(self._keys.events)
                while True:
                    message = await pubsub.get_message(ignore_subscribe_messages=True, timeout=1.0)
                    if message is not None:
                        self._deliver(message.get("data"))
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                _log.debug("event notices interrupted (%s); subscribing again", exc)
                await asyncio.sleep(0.5)
            finally:
                with contextlib.suppress(Exception):
                    await pubsub.aclose()  # type: ignore[no-untyped-call]  # untyped in redis-py

    def _deliver(self, data: object) -> None:
        try:
            notice = json.loads(str(data))
            if notice.get("node") == self._node_id:
                return
            for instance_id in notice.get("instances", ()):
                if self._bus.has_subscribers(str(instance_id)):
                    self._bus.notify_written_elsewhere(str(instance_id))
        except (ValueError, AttributeError) as exc:
            _log.debug("ignoring a malformed event notice: %s", exc)

    async def close(self) -> None:
        await asyncio.gather(*self._tasks, return_exceptions=True)
