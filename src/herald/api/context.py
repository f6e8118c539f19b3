"""What every action handler is given, and its signature."""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Protocol

from herald.agents.dialogue_log import DialogueLog
from herald.agents.manager import GeneratedCall, NewInstance
from herald.agents.requests import SpeechRequest
from herald.api.idempotency import Idempotency
from herald.api.params import Params
from herald.media.netguard import AddressPolicy
from herald.store.records import InstanceRecord

API_VERSION = "2020-11-09"


class InstanceActions(Protocol):
    """What the actions ask of instances: the ``InstanceManager`` in embedded mode, and in a cluster
    ``herald.cluster.routing.ClusterInstances``, which runs each on the instance's node."""

    @property
    def voice_ids(self) -> Sequence[str]: ...

    @property
    def dialogues(self) -> DialogueLog: ...

    async def start(self, request: NewInstance) -> InstanceRecord: ...

    async def generate_call(self, request: NewInstance, *, expire_s: int) -> GeneratedCall: ...

    async def get(self, owner: str, instance_id: str) -> InstanceRecord: ...

    async def list_instances(
        self,
        owner: str,
        agent_id: str,
        *,
        start: datetime | None,
        end: datetime | None,
        page_number: int,
        page_size: int,
    ) -> list[InstanceRecord]: ...

    async def update(
        self,
        owner: str,
        instance_id: str,
        *,
        agent_config: dict[str, Any] | None,
        template_config: dict[str, Any] | None,
        user_data: str | None,
    ) -> object: ...

    async def speak(self, owner: str, instance_id: str, request: SpeechRequest) -> object: ...

    async def stop(self, owner: str, instance_id: str) -> None: ...

    async def send_data_channel_message(self, owner: str, instance_id: str, message: str) -> None: ...

    async def send_text(self, owner: str, instance_id: str, text: str) -> object: ...


@dataclass(frozen=True, slots=True)
class ActionContext:
    instances: InstanceActions
    idempotency: Idempotency
    owner: str
    """The account of the key that signed the request: everything it creates is the account's."""
    request_id: str
    params: Params
    fetch_policy: AddressPolicy
    """Which addresses audio URLs may point to (refused up front when the URL names an IP)."""


Action = Callable[[ActionContext, Params], Awaitable[dict[str, Any]]]
