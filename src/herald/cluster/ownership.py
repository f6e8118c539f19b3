"""``RedisOwnership``: the instance manager's record of its live instances, in the cluster's Redis.

What it keeps (``keys.py``): instance → node (commands are routed by it), channel → instance (one live
instance per channel across the cluster), the node's instance count (placement), and each instance's
accepted speeches that have no outcome yet (failed by whoever finishes the instance if this node dies).
This node is the authority on its own instances: after Redis lost them (a restart), ``reassert`` writes
them all again.
"""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import Awaitable, Callable, Iterable

from redis.asyncio import Redis
from redis.typing import EncodableT, FieldT

from herald.agents.requests import SpeechRequest
from herald.cluster.keys import Keys
from herald.errors import InvalidParameter
from herald.store.records import InstanceRecord

_log = logging.getLogger(__name__)

# KEYS: channel, instance, node hash. ARGV: instance id, node id, holder to replace ("" for none).
# Returns the live holder of the channel when it is another instance, else nil (claimed).
_CLAIM = """
local holder = redis.call('GET', KEYS[1])
if holder and holder ~= ARGV[1] and holder ~= ARGV[3] then return holder end
redis.call('SET', KEYS[1], ARGV[1])
redis.call('SET', KEYS[2], ARGV[2])
redis.call('HINCRBY', KEYS[3], 'instances', 1)
return false
"""

# KEYS: channel, instance, speeches, node hash. ARGV: instance id.
_RELEASE = """
if redis.call('GET', KEYS[1]) == ARGV[1] then redis.call('DEL', KEYS[1]) end
local removed = redis.call('DEL', KEYS[2])
redis.call('DEL', KEYS[3])
if removed == 1 and tonumber(redis.call('HGET', KEYS[4], 'instances') or '0') > 0 then
  redis.call('HINCRBY', KEYS[4], 'instances', -1)
end
return removed
"""


def speech_entry(request: SpeechRequest) -> str:
    """What is kept of an accepted speech: enough for a dialogue line if it must be failed."""
    return json.dumps(
        {"content": request.content, "kind": request.kind.value, "type": request.dialogue_type.value},
        ensure_ascii=False,
    )


class RedisOwnership:
    def __init__(
        self,
        redis: Redis,
        keys: Keys,
        node_id: str,
        *,
        status_of: Callable[[str], Awaitable[str | None]],
    ) -> None:
        self._redis = redis
        self._keys = keys
        self._node_id = node_id
        self._status_of = status_of
        """The stored status of an instance (``None``: no such row)."""
        self._claim = redis.register_script(_CLAIM)
        self._release = redis.register_script(_RELEASE)
        self._unreleased: dict[str, InstanceRecord] = {}
        """Instances that ended while Redis was away: released at the next heartbeat."""
        self._tasks: set[asyncio.Task[None]] = set()

    @property
    def node_id(self) -> str:
        return self._node_id

    async def claim(self, record: InstanceRecord) -> None:
        keys = [
            self._keys.channel(record.channel_id),
            self._keys.instance(record.instance_id),
            self._keys.node(self._node_id),
        ]
        holder = await self._claim(keys=keys, args=[record.instance_id, self._node_id, ""])
        if holder is not None and await self._is_gone(str(holder)):
            # Its release was lost (Redis was away when it ended): the channel is free.
            holder = await self._claim(keys=keys, args=[record.instance_id, self._node_id, str(holder)])
        if holder is not None:
            raise InvalidParameter(
                "RuntimeConfig.ChannelId",
                f"the channel {record.channel_id!r} already has a live agent instance.",
            )

    async def _is_gone(self, instance_id: str) -> bool:
        """Whether the instance holding a channel has ended: finished in the database, or never written
        there by a node that is dead. One being created right now (claimed, not yet stored) is not."""
        status = await self._status_of(instance_id)
        if status is not None:
            return status == "Finished"
        node_id = await self._redis.get(self._keys.instance(instance_id))
        if node_id is None:
            return True
        return not await self._redis.hexists(self._keys.node(str(node_id)), "url")

    async def release(self, record: InstanceRecord) -> None:
        try:
            await self._release_now(record)
        except Exception as exc:  # Redis away: retried by the heartbeat, meanwhile claims check the DB
            _log.warning("could not release instance %s in Redis (%s); will retry", record.instance_id, exc)
            self._unreleased[record.instance_id] = record

    async def _release_now(self, record: InstanceRecord) -> None:
        await self._release(
            keys=[
                self._keys.channel(record.channel_id),
                self._keys.instance(record.instance_id),
                self._keys.speeches(record.instance_id),
                self._keys.node(self._node_id),
            ],
            args=[record.instance_id],
        )

    async def retry_releases(self) -> None:
        for instance_id, record in list(self._unreleased.items()):
            await self._release_now(record)
            self._unreleased.pop(instance_id, None)

    async def speech_accepted(self, instance_id: str, request: SpeechRequest) -> None:
        await self._redis.hset(self._keys.speeches(instance_id), request.utterance_id, speech_entry(request))

    def speech_ended(self, instance_id: str, utterance_id: str) -> None:
        task = asyncio.create_task(self._forget_speech(instance_id, utterance_id))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _forget_speech(self, instance_id: str, utterance_id: str) -> None:
        try:
            await self._redis.hdel(self._keys.speeches(instance_id), utterance_id)
        except Exception as exc:  # at worst a failed line is offered for it later, and ignored as a duplicate
            _log.debug("could not forget speech %s of %s: %s", utterance_id, instance_id, exc)

    async def reassert(self, live: Iterable[tuple[InstanceRecord, Iterable[SpeechRequest]]]) -> int:
        """Write every live instance of this node again (Redis lost them); returns how many."""
        count = 0
        async with self._redis.pipeline(transaction=False) as pipe:
            for record, speeches in live:
                count += 1
                pipe.set(self._keys.channel(record.channel_id), record.instance_id)
                pipe.set(self._keys.instance(record.instance_id), self._node_id)
                entries: dict[FieldT, EncodableT] = {
                    request.utterance_id: speech_entry(request) for request in speeches
                }
                if entries:
                    pipe.hset(self._keys.speeches(record.instance_id), mapping=entries)
            pipe.hset(self._keys.node(self._node_id), "instances", count)
            await pipe.execute()
        return count

    async def close(self) -> None:
        for task in list(self._tasks):
            await asyncio.gather(task, return_exceptions=True)
