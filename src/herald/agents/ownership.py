"""Where live instances are recorded beyond this process: nowhere in embedded mode, Redis in a cluster.

The instance manager tells its ``Ownership`` when an instance goes live or ends and when a speech is
accepted or has its outcome, so that another node can route commands to the instance's node, keep a
channel to one instance cluster-wide, and — should this node die — finish the instance and fail what it
had queued (``herald.cluster.ownership``).
"""

from __future__ import annotations

from typing import Protocol

from herald.agents.requests import SpeechRequest
from herald.store.records import InstanceRecord


class Ownership(Protocol):
    @property
    def node_id(self) -> str | None:
        """The node that records its instances here (``None``: embedded, one process)."""
        ...

    async def claim(self, record: InstanceRecord) -> None:
        """Record ``record`` as live on this node; its channel taken elsewhere is ``InvalidParameter``."""
        ...

    async def release(self, record: InstanceRecord) -> None:
        """The instance ended: forget it (never raises)."""
        ...

    async def speech_accepted(self, instance_id: str, request: SpeechRequest) -> None:
        """``request`` is about to be queued on ``instance_id``; raises when it cannot be recorded."""
        ...

    def speech_ended(self, instance_id: str, utterance_id: str) -> None:
        """The utterance has its outcome (never blocks, never raises)."""
        ...


class LocalOwnership:
    """Embedded mode: the instance manager's own maps are the whole truth."""

    @property
    def node_id(self) -> str | None:
        return None

    async def claim(self, record: InstanceRecord) -> None:
        return None

    async def release(self, record: InstanceRecord) -> None:
        return None

    async def speech_accepted(self, instance_id: str, request: SpeechRequest) -> None:
        return None

    def speech_ended(self, instance_id: str, utterance_id: str) -> None:
        return None
