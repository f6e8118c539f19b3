"""The conversation log: each utterance the agent was asked to say, what was heard of it, how it ended."""

from __future__ import annotations

from herald.agents.requests import SpeechKind, SpeechRequest
from herald.clock import Clock
from herald.speech.handle import Outcome
from herald.store.dialogues import DialogueStore, Order
from herald.store.instances import InstanceStore
from herald.store.records import DialogueRecord


class DialogueLog:
    def __init__(self, instances: InstanceStore, dialogues: DialogueStore, clock: Clock) -> None:
        self._instances = instances
        self._dialogues = dialogues
        self._clock = clock

    async def record(self, instance_id: str, request: SpeechRequest, outcome: Outcome) -> None:
        """One dialogue line per utterance: ``Text`` is what was heard; ``Extend`` how it ended."""
        instance = await self._instances.get(instance_id)
        if instance is None:
            return
        audio = request.kind is SpeechKind.AUDIO_URL
        await self._dialogues.add(
            DialogueRecord(
                dialogue_id=request.utterance_id,
                session_id=instance.session_id or instance.instance_id,
                instance_id=instance.instance_id,
                owner=instance.owner,
                round_id=request.utterance_id,
                producer="agent",
                # Audio has no captions: what was heard of it is the URL, if anything played.
                text=(request.content if outcome.played_ms else "") if audio else outcome.heard_text,
                time_ms=int(self._clock.now().timestamp() * 1000),
                source="call",
                type=request.dialogue_type.value,
                extend={
                    "RequestId": request.utterance_id,
                    "Kind": request.kind.value,
                    "Outcome": outcome.state.value,
                    "PlayedMs": outcome.played_ms,
                    "Reason": outcome.reason,
                    "Content": request.content,
                },
            )
        )

    async def list(
        self,
        owner: str,
        session_id: str,
        *,
        start_ms: int,
        end_ms: int,
        order: Order,
        page_number: int,
        page_size: int,
        round_limit: int | None,
    ) -> list[DialogueRecord]:
        return await self._dialogues.list(
            session_id=session_id,
            owner=owner,
            start_ms=start_ms,
            end_ms=end_ms,
            order=order,
            offset=(page_number - 1) * page_size,
            limit=page_size,
            round_limit=round_limit,
        )
