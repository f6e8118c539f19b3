"""``ClusterInstances``: the instance actions, wherever the instance runs.

Every node takes every action. Reading (Describe, List, dialogues) is the shared database's, on any
node. Creating places the instance on the least-loaded node that takes new ones. Acting on a live
instance (speak, update, stop, data-channel message) runs on its node: here if it is this one, else
through the ``CommandBus``, with the same result and the same error codes.
"""

from __future__ import annotations

import random
from collections.abc import Sequence
from dataclasses import asdict, replace
from datetime import datetime
from typing import Any

from redis.asyncio import Redis

from herald.agents.dialogue_log import DialogueLog
from herald.agents.manager import GeneratedCall, InstanceManager, NewInstance
from herald.agents.requests import DialogueType, SpeechKind, SpeechRequest
from herald.cluster.commands import CommandBus
from herald.cluster.keys import Keys
from herald.cluster.membership import Membership, NodeInfo
from herald.errors import InstanceNotFound, ServiceUnavailable
from herald.speech.scheduler import ArrivalPolicy
from herald.store.records import InstanceRecord

OWNER_CACHE = 10_000
"""Instances whose node is remembered (an instance never moves, so the entry stays right while it lives)."""


class ClusterInstances:
    def __init__(
        self,
        local: InstanceManager,
        membership: Membership,
        bus: CommandBus,
        redis: Redis,
        keys: Keys,
        *,
        rng: random.Random | None = None,
    ) -> None:
        self._local = local
        self._membership = membership
        self._bus = bus
        self._redis = redis
        self._keys = keys
        self._rng = rng or random.Random()
        self._owners: dict[str, str] = {}

    @property
    def node_id(self) -> str:
        return self._membership.node_id

    # ---- what the local manager answers anywhere ----

    @property
    def voice_ids(self) -> Sequence[str]:
        return self._local.voice_ids

    @property
    def dialogues(self) -> DialogueLog:
        return self._local.dialogues

    async def get(self, owner: str, instance_id: str) -> InstanceRecord:
        return await self._local.get(owner, instance_id)

    async def list_instances(
        self,
        owner: str,
        agent_id: str,
        *,
        start: datetime | None,
        end: datetime | None,
        page_number: int,
        page_size: int,
    ) -> list[InstanceRecord]:
        return await self._local.list_instances(
            owner, agent_id, start=start, end=end, page_number=page_number, page_size=page_size
        )

    # ---- creating: placement ----

    async def start(self, request: NewInstance) -> InstanceRecord:
        node = await self._place(exclude=set())
        if node == self.node_id:
            return await self._local.start(request)
        result = await self._create_on(node, request, "start", expire_s=0)
        return await self._record(request.owner, str(result["instance_id"]))

    async def generate_call(self, request: NewInstance, *, expire_s: int) -> GeneratedCall:
        node = await self._place(exclude=set())
        if node == self.node_id:
            return await self._local.generate_call(request, expire_s=expire_s)
        result = await self._create_on(node, request, "call", expire_s=expire_s)
        record = await self._record(request.owner, str(result["instance_id"]))
        return GeneratedCall(record, str(result["user_id"]), str(result["token"]))

    async def _create_on(
        self, node: str, request: NewInstance, kind: str, *, expire_s: int
    ) -> dict[str, Any]:
        """Create on ``node``; if it stopped taking instances since it was chosen (draining) or does not
        answer, once more on the next best node (this one, if it is that)."""
        body = {"request": asdict(request), "kind": kind, "expire_s": expire_s}
        try:
            return await self._bus.send(node, "create", body)
        except ServiceUnavailable:
            retry = await self._place(exclude={node})
            if retry == self.node_id:
                return await execute_create(self._local, asdict(request), kind, expire_s)
            return await self._bus.send(retry, "create", body)

    async def _place(self, *, exclude: set[str]) -> str:
        """The least-loaded node taking new instances (by live instances, then speaking); this one wins a
        tie, else the tie is broken at random."""
        nodes = [n for n in await self._membership.nodes() if not n.draining and n.node_id not in exclude]
        if not nodes:
            if self._local.accepting_instances and self.node_id not in exclude:
                return self.node_id  # Redis has not seen this node yet: it still takes instances
            raise ServiceUnavailable("No node of the cluster is taking new instances; retry later.")
        best = min(n.load for n in nodes)
        candidates: list[NodeInfo] = [n for n in nodes if n.load == best]
        if any(n.node_id == self.node_id for n in candidates):
            return self.node_id
        return self._rng.choice(candidates).node_id

    async def _record(self, owner: str, instance_id: str) -> InstanceRecord:
        try:
            return await self._local.get(owner, instance_id)
        except InstanceNotFound:
            raise ServiceUnavailable(
                f"The instance {instance_id!r} was created but cannot be read yet."
            ) from None

    # ---- acting on a live instance: on its node ----

    # The local path calls the manager itself: nothing is serialised for an instance of this node.

    async def speak(self, owner: str, instance_id: str, request: SpeechRequest) -> object:
        node = await self._other_owner(instance_id)
        if node is None:
            return await self._local.speak(owner, instance_id, request)
        body = {"owner": owner, "instance_id": instance_id, "request": _speech_fields(request)}
        return await self._bus.send(node, "speak", body)

    async def update(
        self,
        owner: str,
        instance_id: str,
        *,
        agent_config: dict[str, Any] | None,
        template_config: dict[str, Any] | None,
        user_data: str | None,
    ) -> object:
        node = await self._other_owner(instance_id)
        if node is None:
            return await self._local.update(
                owner,
                instance_id,
                agent_config=agent_config,
                template_config=template_config,
                user_data=user_data,
            )
        body = {"agent_config": agent_config, "template_config": template_config, "user_data": user_data}
        return await self._bus.send(node, "update", {"owner": owner, "instance_id": instance_id, **body})

    async def stop(self, owner: str, instance_id: str) -> None:
        node = await self._other_owner(instance_id)
        if node is None:
            return await self._local.stop(owner, instance_id)
        await self._bus.send(node, "stop", {"owner": owner, "instance_id": instance_id})

    async def send_data_channel_message(self, owner: str, instance_id: str, message: str) -> None:
        node = await self._other_owner(instance_id)
        if node is None:
            return await self._local.send_data_channel_message(owner, instance_id, message)
        body = {"owner": owner, "instance_id": instance_id, "message": message}
        await self._bus.send(node, "message", body)

    async def send_text(self, owner: str, instance_id: str, text: str) -> object:
        node = await self._other_owner(instance_id)
        if node is None:
            return await self._local.send_text(owner, instance_id, text)
        return await self._bus.send(node, "text", {"owner": owner, "instance_id": instance_id, "text": text})

    async def _other_owner(self, instance_id: str) -> str | None:
        """The other node running the instance; ``None`` when it is this one or none (not live anywhere:
        the local manager gives the answer, or the right error)."""
        node = await self._owner_of(instance_id)
        return None if node == self.node_id else node

    async def _owner_of(self, instance_id: str) -> str | None:
        if self._local.is_live(instance_id):
            return self.node_id
        node = self._owners.get(instance_id)
        if node is None:
            found = await self._redis.get(self._keys.instance(instance_id))
            if found is None:
                return None
            node = str(found)
            if len(self._owners) >= OWNER_CACHE:
                self._owners.pop(next(iter(self._owners)))
            self._owners[instance_id] = node
        return node


async def execute(local: InstanceManager, op: str, body: dict[str, Any]) -> dict[str, Any]:
    """Run one command on this node's instances (the ``CommandBus`` handler, and the local path)."""
    if op == "create":
        return await execute_create(local, body["request"], body["kind"], int(body["expire_s"]))
    owner, instance_id = str(body["owner"]), str(body["instance_id"])
    if op == "speak":
        await local.speak(owner, instance_id, _speech_request(body["request"]))
    elif op == "update":
        await local.update(
            owner,
            instance_id,
            agent_config=body.get("agent_config"),
            template_config=body.get("template_config"),
            user_data=body.get("user_data"),
        )
    elif op == "stop":
        await local.stop(owner, instance_id)
    elif op == "message":
        await local.send_data_channel_message(owner, instance_id, str(body["message"]))
    elif op == "text":
        await local.send_text(owner, instance_id, str(body["text"]))
    else:
        raise ValueError(f"unknown command {op!r}")
    return {}


async def execute_create(
    local: InstanceManager, fields: dict[str, Any], kind: str, expire_s: int
) -> dict[str, Any]:
    request = NewInstance(**fields)
    if kind == "call":
        call = await local.generate_call(request, expire_s=expire_s)
        return {"instance_id": call.record.instance_id, "user_id": call.user_id, "token": call.token}
    record = await local.start(request)
    return {"instance_id": record.instance_id}


def _speech_fields(request: SpeechRequest) -> dict[str, Any]:
    fields = asdict(request)
    fields.update(
        kind=request.kind.value, policy=request.policy.value, dialogue_type=request.dialogue_type.value
    )
    return fields


def _speech_request(fields: dict[str, Any]) -> SpeechRequest:
    request = SpeechRequest(**fields)
    return replace(
        request,
        kind=SpeechKind(fields["kind"]),
        policy=ArrivalPolicy(fields["policy"]),
        dialogue_type=DialogueType(fields["dialogue_type"]),
    )
