"""The conversation log: each utterance the agent was asked to say, what was heard of it, how it ended.

Lines are written in batches (``store/batch_writer.py``), off the speech path: recording an outcome is a
non-blocking append, and a burst of outcomes (hundreds of dropped speeches a second) costs one
transaction per batch, not one each. ``flush()`` writes what is pending (on shutdown, and for readers
that must see their own writes).
"""

from __future__ import annotations

from herald.agents.requests import SpeechKind, SpeechRequest
from herald.clock import Clock
from herald.speech.handle import Outcome
from herald.store.batch_writer import BatchWriter
from herald.store.dialogues import DialogueStore, Order
from herald.store.records import DialogueRecord


class DialogueLog:
    def __init__(self, dialogues: DialogueStore, clock: Clock, *, batch_delay_s: float = 0.05) -> None:
        self._dialogues = dialogues
        self._clock = clock
        self._writer = BatchWriter(dialogues.add_all, what="dialogue", batch_delay_s=batch_delay_s)

    def record(
        self, owner: str, session_id: str, instance_id: str, request: SpeechRequest, outcome: Outcome
    ) -> None:
        """Queue one dialogue line: ``Text`` is what was heard, ``Extend`` how it ended. Never blocks."""
        audio = request.kind is SpeechKind.AUDIO_URL
        self._writer.add(
            DialogueRecord(
                dialogue_id=request.utterance_id,
                session_id=session_id,
                instance_id=instance_id,
                owner=owner,
                round_id=request.round_id or request.utterance_id,
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

    def record_user(self, owner: str, session_id: str, instance_id: str, round_id: str, text: str) -> None:
        """Queue what the user said (transcribed, or typed through ``SendAIAgentText``). Never blocks."""
        self._writer.add(
            DialogueRecord(
                dialogue_id=f"{round_id}-user",
                session_id=session_id,
                instance_id=instance_id,
                owner=owner,
                round_id=round_id,
                producer="user",
                text=text,
                time_ms=int(self._clock.now().timestamp() * 1000),
                source="call",
                type="normal",
                extend={"RequestId": round_id},
            )
        )

    async def flush(self) -> None:
        """Write every pending line now."""
        await self._writer.flush()

    async def close(self) -> None:
        await self._writer.close()

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
        await self.flush()  # a caller sees every outcome that has happened
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
