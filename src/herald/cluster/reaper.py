"""``Reaper``: the instances of a node that died are finished by the nodes still alive.

Every ``heartbeat_s`` each node looks for nodes that have unfinished instances in the database (or are
registered in Redis) but no current lease. A node missing for ``reap_after_s`` (a grace for a Redis that
restarted empty, which live nodes fill again at their next heartbeat) is dead: its instances are marked
``Finished`` (``hangupRole`` 2) in one statement — when several nodes reap at once each instance goes to
one — and the reaper reports them: an ``error`` event, the ``failed`` outcome for each speech that had
none, ``agent_stop``. While Redis is unreachable nobody is judged.
"""

from __future__ import annotations

import json
import logging

from redis.asyncio import Redis

from herald.agents.manager import InstanceManager
from herald.agents.requests import DialogueType, SpeechKind, SpeechRequest
from herald.clock import Clock, every
from herald.cluster.keys import Keys
from herald.cluster.settings import ClusterSettings
from herald.store.instances import InstanceStore
from herald.store.records import InstanceRecord

_log = logging.getLogger(__name__)

WHY = "the node running the instance stopped answering"


class Reaper:
    def __init__(
        self,
        redis: Redis,
        keys: Keys,
        node_id: str,
        settings: ClusterSettings,
        store: InstanceStore,
        manager: InstanceManager,
        clock: Clock,
    ) -> None:
        self._redis = redis
        self._keys = keys
        self._node_id = node_id
        self._settings = settings
        self._store = store
        self._manager = manager
        self._clock = clock
        self._missing_since_ns: dict[str, int] = {}

    async def run(self) -> None:
        async for _ in every(self._clock, self._settings.heartbeat_s):
            try:
                await self.scan()
            except Exception as exc:  # Redis or the database away: judge nobody meanwhile
                _log.debug("reaper scan failed: %s", exc)
                self._missing_since_ns.clear()

    async def scan(self) -> list[str]:
        """One look; returns the nodes found dead (and reaped) in it."""
        registered = {str(n) for n in await self._redis.smembers(self._keys.nodes)}
        suspects = sorted((registered | await self._store.unfinished_nodes()) - {self._node_id})
        if not suspects:
            self._missing_since_ns.clear()
            return []
        async with self._redis.pipeline(transaction=False) as pipe:
            for node_id in suspects:
                pipe.hexists(self._keys.node(node_id), "url")
            alive = dict(zip(suspects, await pipe.execute(), strict=True))
        now = self._clock.monotonic_ns()
        dead: list[str] = []
        for node_id in suspects:
            if alive[node_id]:
                self._missing_since_ns.pop(node_id, None)
                continue
            since = self._missing_since_ns.setdefault(node_id, now)
            if now - since >= self._settings.reap_after_s * 1e9:
                await self.reap(node_id)
                dead.append(node_id)
        for node_id in list(self._missing_since_ns):
            if node_id not in suspects:
                del self._missing_since_ns[node_id]
        return dead

    async def reap(self, node_id: str) -> int:
        """Finish ``node_id``'s instances and forget the node; returns how many this node finished."""
        records = await self._store.finish_node(node_id, self._clock.now())
        unfinished = {record.instance_id: await self._speeches(record) for record in records}
        self._manager.finish_orphans(records, unfinished, WHY)
        async with self._redis.pipeline(transaction=False) as pipe:
            for record in records:
                pipe.delete(self._keys.instance(record.instance_id), self._keys.speeches(record.instance_id))
                pipe.delete(self._keys.channel(record.channel_id))  # a new instance may take the channel
            pipe.srem(self._keys.nodes, node_id)
            pipe.delete(self._keys.commands(node_id))
            await pipe.execute()
        self._missing_since_ns.pop(node_id, None)
        if records:
            _log.warning("node %s is gone: finished its %d instance(s)", node_id, len(records))
        return len(records)

    async def _speeches(self, record: InstanceRecord) -> list[SpeechRequest]:
        entries = await self._redis.hgetall(self._keys.speeches(record.instance_id))
        requests = []
        for utterance_id, text in sorted(entries.items()):
            try:
                fields = json.loads(text)
                requests.append(
                    SpeechRequest(
                        utterance_id=str(utterance_id),
                        content=str(fields["content"]),
                        kind=SpeechKind(fields["kind"]),
                        dialogue_type=DialogueType(fields["type"]),
                    )
                )
            except (ValueError, KeyError) as exc:
                _log.warning("speech %s of %s is unreadable (%s)", utterance_id, record.instance_id, exc)
        return requests
