"""``ClusterNode``: this process as a node of a cluster — its Redis clients and the parts built on them.

Built in two steps because the instance manager and the node need each other: ``open`` makes the
ownership record the manager writes to; ``attach`` adds what acts on the manager (commands, routing,
the reaper, the heartbeat's load). ``start`` joins the cluster; ``drain`` and ``close`` leave it.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import httpx
from redis.asyncio import Redis
from redis.exceptions import LockError

from herald.agents.manager import InstanceManager
from herald.clock import Clock
from herald.cluster.commands import CommandBus
from herald.cluster.event_relay import EventRelay
from herald.cluster.keys import Keys, open_redis
from herald.cluster.membership import Membership, wait_for_redis
from herald.cluster.ownership import RedisOwnership
from herald.cluster.reaper import Reaper
from herald.cluster.routing import ClusterInstances, execute
from herald.cluster.settings import ClusterSettings, NodeIdentity
from herald.errors import ServiceUnavailable
from herald.events.bus import EventBus
from herald.store.instances import InstanceStore

_log = logging.getLogger(__name__)

DRAIN_POLL_S = 0.1
SHARED_LOCK_TTL_S = 60


@dataclass
class ClusterNode:
    identity: NodeIdentity
    settings: ClusterSettings
    redis_url: str
    redis: Redis
    blocking: Redis
    keys: Keys
    ownership: RedisOwnership
    clock: Clock
    http: httpx.AsyncClient
    membership: Membership | None = None
    bus: CommandBus | None = None
    reaper: Reaper | None = None
    actions: ClusterInstances | None = None
    relay: EventRelay | None = None
    _manager: InstanceManager | None = None
    _tasks: list[asyncio.Task[None]] = field(default_factory=list)

    @classmethod
    def open(
        cls,
        identity: NodeIdentity,
        settings: ClusterSettings,
        redis_url: str,
        store: InstanceStore,
        clock: Clock,
    ) -> ClusterNode:
        redis = open_redis(redis_url, timeout_s=settings.redis_timeout_s)
        keys = Keys(identity.cluster)

        async def status_of(instance_id: str) -> str | None:
            record = await store.get(instance_id)
            return None if record is None else record.status

        return cls(
            identity=identity,
            settings=settings,
            redis_url=redis_url,
            redis=redis,
            blocking=open_redis(redis_url, timeout_s=None),
            keys=keys,
            ownership=RedisOwnership(redis, keys, identity.node_id, status_of=status_of),
            clock=clock,
            http=httpx.AsyncClient(trust_env=False, timeout=httpx.Timeout(10.0, connect=2.0)),
        )

    def attach(self, manager: InstanceManager, store: InstanceStore, events: EventBus) -> ClusterInstances:
        self._manager = manager
        self.relay = EventRelay(self.redis, self.blocking, self.keys, self.identity.node_id, events)
        events.set_written_listener(self.relay.written)

        async def lost() -> None:
            count = await self.ownership.reassert(manager.live_snapshot())
            _log.info("recorded %d live instance(s) in Redis again", count)

        self.membership = Membership(
            self.redis,
            self.keys,
            self.identity,
            self.settings,
            self.clock,
            load=lambda: (manager.live_count, manager.speaking_count),
            on_lost=lost,
            on_beat=self.ownership.retry_releases,
        )

        async def handle(op: str, body: dict[str, Any]) -> dict[str, Any]:
            return await execute(manager, op, body)

        self.bus = CommandBus(
            self.redis,
            self.blocking,
            self.keys,
            self.identity.node_id,
            self.clock,
            timeout_s=self.settings.command_timeout_s,
            handler=handle,
        )
        self.reaper = Reaper(
            self.redis, self.keys, self.identity.node_id, self.settings, store, manager, self.clock
        )
        self.actions = ClusterInstances(manager, self.membership, self.bus, self.redis, self.keys)
        return self.actions

    async def start(self) -> None:
        """Join: Redis answers, the command group exists, the first heartbeat is in; then run."""
        assert self.membership is not None
        assert self.bus is not None
        assert self.reaper is not None
        assert self.relay is not None
        await wait_for_redis(self.redis, _redacted(self.redis_url))
        await self.bus.ensure_group()
        await self.membership.heartbeat()
        self._tasks = [
            asyncio.create_task(self.membership.run(), name="cluster-heartbeat"),
            asyncio.create_task(self.bus.serve(), name="cluster-commands"),
            asyncio.create_task(self.bus.read_replies(), name="cluster-replies"),
            asyncio.create_task(self.reaper.run(), name="cluster-reaper"),
            asyncio.create_task(self.relay.run(), name="cluster-event-notices"),
        ]
        _log.info(
            "node %s joined cluster %s (%s), reachable at %s",
            self.identity.node_id,
            self.identity.cluster,
            _redacted(self.redis_url),
            self.identity.url,
        )

    @property
    def draining(self) -> bool:
        return self.membership is not None and self.membership.draining

    async def drain(self) -> None:
        """SIGTERM: take no new instances, let what is being said finish (at most ``drain_s``)."""
        assert self.membership is not None
        assert self._manager is not None
        manager = self._manager
        manager.accepting_instances = False
        with contextlib.suppress(Exception):
            await self.membership.set_draining()
        _log.info("draining: %d live instance(s), %d speaking", manager.live_count, manager.speaking_count)
        # Polled: an utterance's end has no cluster-wide signal, and a tenth of a second is plenty here.
        for _ in range(max(1, round(self.settings.drain_s / DRAIN_POLL_S))):
            if not manager.speaking_count:
                break
            await asyncio.sleep(DRAIN_POLL_S)
        else:
            _log.warning(
                "drain time (%g s) is up with %d instance(s) speaking",
                self.settings.drain_s,
                manager.speaking_count,
            )

    @contextlib.asynccontextmanager
    async def shared_lock(self, name: str) -> AsyncIterator[None]:
        """A lock every node respects (``ClientToken`` requests): Redis's, expiring after a minute."""
        lock = self.redis.lock(
            f"{self.keys.prefix}lock:{name}",
            timeout=SHARED_LOCK_TTL_S,
            blocking_timeout=self.settings.command_timeout_s,
        )
        try:
            acquired = await lock.acquire()
        except LockError:
            acquired = False
        if not acquired:
            raise ServiceUnavailable("Another request with this ClientToken is still running; retry shortly.")
        try:
            yield
        finally:
            with contextlib.suppress(LockError):  # expired meanwhile: nothing to hand back
                await lock.release()

    async def channel_url(self, channel_id: str) -> str | None:
        """The URL of the node running ``channel_id``'s live instance (``None``: no live instance)."""
        instance_id = await self.redis.get(self.keys.channel(channel_id))
        if instance_id is None:
            return None
        node_id = await self.redis.get(self.keys.instance(str(instance_id)))
        if node_id is None or node_id == self.identity.node_id or self.membership is None:
            return None
        return await self.membership.url_of(str(node_id))

    async def stop_tasks(self) -> None:
        for task in self._tasks:
            task.cancel()
        for task in self._tasks:
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task
        self._tasks = []

    async def close(self) -> None:
        """Leave the cluster (after the manager finished this node's instances) and close the clients."""
        await self.stop_tasks()
        await self.ownership.close()
        if self.relay is not None:
            await self.relay.close()
        if self.membership is not None:
            try:
                await self.membership.leave()
            except Exception as exc:
                _log.warning("could not hand back this node's lease (%s); it expires by itself", exc)
        await self.http.aclose()
        await self.redis.aclose()
        await self.blocking.aclose()


def _redacted(url: str) -> str:
    """``url`` fit for a log: without its password."""
    parts = urlsplit(url)
    if parts.password is None:
        return url
    return urlunsplit(parts._replace(netloc=parts.netloc.replace(f":{parts.password}@", ":***@", 1)))
