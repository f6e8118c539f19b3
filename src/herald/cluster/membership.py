"""``Membership``: this node's lease and load in Redis, renewed by heartbeat, and the view of the others.

A node's hash (``Keys.node``) carries its URL and load and expires ``lease_s`` after the last heartbeat:
a node whose hash is gone is presumed dead (``reaper.py`` finishes its instances). If the hash is found
missing by the node itself while it runs, Redis lost it (restarted empty, or the node was partitioned
away for longer than its lease): the node writes its ownership of every live instance again.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

from redis.asyncio import Redis

from herald.clock import Clock, every
from herald.cluster.keys import Keys
from herald.cluster.settings import ClusterSettings, NodeIdentity

_log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class NodeInfo:
    node_id: str
    url: str
    instances: int
    speaking: int
    draining: bool

    @property
    def load(self) -> tuple[int, int]:
        """Placement's order: fewest live instances, then fewest speaking."""
        return (self.instances, self.speaking)


Load = Callable[[], tuple[int, int]]
"""(live instances, speaking instances) of this node now."""


class Membership:
    def __init__(
        self,
        redis: Redis,
        keys: Keys,
        identity: NodeIdentity,
        settings: ClusterSettings,
        clock: Clock,
        *,
        load: Load,
        on_lost: Callable[[], Awaitable[None]],
        on_beat: Callable[[], Awaitable[None]] | None = None,
    ) -> None:
        self._redis = redis
        self._keys = keys
        self.identity = identity
        self._settings = settings
        self._clock = clock
        self._load = load
        self._on_lost = on_lost
        self._on_beat = on_beat
        self.draining = False
        self._registered = False
        self.healthy = False
        """Whether the last heartbeat reached Redis."""

    @property
    def node_id(self) -> str:
        return self.identity.node_id

    async def heartbeat(self) -> None:
        """Renew the lease and publish the load; re-record everything if Redis had lost this node."""
        instances, speaking = self._load()
        key = self._keys.node(self.node_id)
        async with self._redis.pipeline(transaction=True) as pipe:
            pipe.hget(key, "url")
            pipe.hset(
                key,
                mapping={
                    "url": self.identity.url,
                    "instances": instances,
                    "speaking": speaking,
                    "draining": int(self.draining),
                    "seen_ms": int(self._clock.now().timestamp() * 1000),
                },
            )
            pipe.pexpire(key, int(self._settings.lease_s * 1000))
            pipe.sadd(self._keys.nodes, self.node_id)
            url, *_ = await pipe.execute()
        if url is None and self._registered:
            _log.warning(
                "this node's lease was missing from Redis (a restart?): recording its instances again"
            )
            await self._on_lost()
        self._registered = True
        self.healthy = True
        if self._on_beat is not None:
            await self._on_beat()

    async def run(self) -> None:
        """Heartbeat every ``heartbeat_s`` until cancelled; a failure is logged and retried."""
        async for _ in every(self._clock, self._settings.heartbeat_s):
            try:
                await self.heartbeat()
            except Exception as exc:
                if self.healthy:
                    _log.warning("heartbeat to Redis failed (%s); live audio goes on, retrying", exc)
                self.healthy = False

    async def nodes(self) -> list[NodeInfo]:
        """Every node whose lease is current, as Redis has it now."""
        members = sorted(str(member) for member in await self._redis.smembers(self._keys.nodes))
        async with self._redis.pipeline(transaction=False) as pipe:
            for node_id in members:
                pipe.hgetall(self._keys.node(node_id))
            hashes: list[dict[str, Any]] = await pipe.execute()
        return [_info(node_id, h) for node_id, h in zip(members, hashes, strict=True) if h.get("url")]

    async def url_of(self, node_id: str) -> str | None:
        """The URL of ``node_id`` if its lease is current."""
        url = await self._redis.hget(self._keys.node(node_id), "url")
        return None if url is None else str(url)

    async def set_draining(self) -> None:
        self.draining = True
        with contextlib.suppress(Exception):  # the heartbeat says it too
            await self.heartbeat()

    async def leave(self) -> None:
        """Hand back the lease: the node is gone, cleanly (nothing is left for a reaper)."""
        async with self._redis.pipeline(transaction=True) as pipe:
            pipe.delete(self._keys.node(self.node_id))
            pipe.srem(self._keys.nodes, self.node_id)
            await pipe.execute()


def _info(node_id: str, fields: dict[str, Any]) -> NodeInfo:
    return NodeInfo(
        node_id=node_id,
        url=str(fields["url"]),
        instances=max(0, int(fields.get("instances", 0))),
        speaking=max(0, int(fields.get("speaking", 0))),
        draining=fields.get("draining") == "1",
    )


async def wait_for_redis(redis: Redis, url_for_humans: str, *, timeout_s: float = 15.0) -> None:
    """At start: Redis must answer (within ``timeout_s``), or the node does not start."""
    deadline = asyncio.get_running_loop().time() + timeout_s
    while True:
        try:
            await redis.ping()
            return
        except Exception as exc:
            if asyncio.get_running_loop().time() >= deadline:
                raise ConnectionError(f"Redis at {url_for_humans} does not answer: {exc}") from None
            await asyncio.sleep(0.5)
