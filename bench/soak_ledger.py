"""What the soak run sent and what its three witnesses saw of each speech's outcome.

* the data channel: ``1900 {requestId, state}`` on the call's listener (complete only for a call whose
  listener stayed connected from before its first speech until the server closed it);
* callbacks: ``audio_record`` (finished, interrupted) and ``error`` (failed) POSTed to a local receiver;
  a dropped speech has none;
* the dialogue log: ``ListAIAgentDialogues`` of the call's session, one line per utterance however it ended.

The conversation calls (``soak_talk.py``) are not the ledger's: their utterances are the agent's answers,
whose ids no ``SendAIAgentSpeech`` returned. Their callbacks are kept apart (``answer_callbacks``), by
instance, so that check 1 does not take them for outcomes of requests never accepted; their ``1900`` go to
the talkers' own clients, never to ``on_message``.
"""

from __future__ import annotations

import contextlib
import json
from collections import defaultdict
from dataclasses import dataclass, field
from typing import Any, Final

OUTCOMES: Final = ("finished", "interrupted", "dropped", "failed")


@dataclass(frozen=True)
class Speech:
    """One accepted ``SendAIAgentSpeech`` (a ClientToken retry is the same speech)."""

    request_id: str
    instance_id: str
    kind: str
    """``short``, ``medium``, ``long``, ``audio``, ``audio-garbage``, ``audio-truncated``, ``final``."""
    policy: str
    protected: bool
    client_token: bool


@dataclass
class Instance:
    instance_id: str
    channel_id: str
    token: str
    session_id: str
    slot: int
    churn: bool
    """Its listener leaves and comes back at random: the data channel misses what happens meanwhile."""
    ended: str | None = None
    """``stopped`` (StopAIAgentInstance), ``abandoned`` (its listener left for good), ``end`` (run's end)."""
    abandoned_at_s: float | None = None

    @property
    def channel_complete(self) -> bool:
        return not self.churn and self.ended != "abandoned"


@dataclass
class Ledger:
    speeches: dict[str, Speech] = field(default_factory=dict)
    by_instance: defaultdict[str, list[str]] = field(default_factory=lambda: defaultdict(list))
    instances: dict[str, Instance] = field(default_factory=dict)
    channel: defaultdict[str, list[str]] = field(default_factory=lambda: defaultdict(list))
    """requestId -> states of the ``1900`` messages seen (every listener of every call)."""
    callbacks: defaultdict[str, list[str]] = field(default_factory=lambda: defaultdict(list))
    """requestId -> outcomes of distinct callback events (``audio_record``'s outcome; ``error``: failed)."""
    dialogues: defaultdict[str, list[str]] = field(default_factory=lambda: defaultdict(list))
    """requestId -> ``Extend.Outcome`` of its dialogue lines (filled at the end)."""
    dialogue_types: dict[str, str] = field(default_factory=dict)
    agent_stops: defaultdict[str, int] = field(default_factory=lambda: defaultdict(int))
    seen_event_ids: set[str] = field(default_factory=set)
    resolved: dict[str, str] = field(default_factory=dict)
    """requestId -> the first outcome any witness reported (drives pacing and the drain)."""
    idempotency_violations: list[str] = field(default_factory=list)
    conversation_instances: set[str] = field(default_factory=set)
    """The talkers' calls: their callbacks are answers' (``answer_callbacks``, ``answer_stops``)."""
    answer_callbacks: defaultdict[str, list[str]] = field(default_factory=lambda: defaultdict(list))
    answer_stops: defaultdict[str, int] = field(default_factory=lambda: defaultdict(int))
    answer_errors: list[str] = field(default_factory=list)

    def accept(self, speech: Speech) -> None:
        if speech.request_id not in self.speeches:
            self.by_instance[speech.instance_id].append(speech.request_id)
        self.speeches[speech.request_id] = speech

    def pending(self, instance_id: str) -> list[str]:
        return [rid for rid in self.by_instance.get(instance_id, []) if rid not in self.resolved]

    def all_pending(self) -> list[str]:
        return [rid for rid in self.speeches if rid not in self.resolved]

    def on_message(self, message: Any) -> None:
        """A data-channel message from any listener."""
        if not isinstance(message, dict) or message.get("type") != 1900:
            return
        data = message.get("data") or {}
        rid, state = str(data.get("requestId")), str(data.get("state"))
        self.channel[rid].append(state)
        self.resolved.setdefault(rid, state)

    def on_callback(self, body: dict[str, Any]) -> None:
        """One callback event (already de-duplicated by ``eventId`` by the receiver)."""
        event_id = str(body.get("eventId"))
        if event_id in self.seen_event_ids:
            return
        self.seen_event_ids.add(event_id)
        data = body.get("data") or {}
        event = body.get("event")
        instance_id = str(body.get("instanceId"))
        if instance_id in self.conversation_instances:
            if event == "agent_stop":
                self.answer_stops[instance_id] += 1
            elif event == "audio_record":
                self.answer_callbacks[str(data.get("requestId"))].append(str(data.get("outcome")))
            elif event == "error":
                self.answer_errors.append(
                    f"{instance_id}: error event {body.get('code')}: {body.get('message')}"
                )
            return
        if event == "audio_record":
            outcome = str(data.get("outcome"))
        elif event == "error":
            outcome = "failed"
        elif event == "agent_stop":
            self.agent_stops[instance_id] += 1
            return
        else:
            return
        rid = str(data.get("requestId"))
        self.callbacks[rid].append(outcome)
        self.resolved.setdefault(rid, outcome)

    def on_dialogues(self, records: list[dict[str, Any]], *, final: bool) -> None:
        """Lines of ``ListAIAgentDialogues``; ``final``: the complete log of a session, recorded as such."""
        for record in records:
            extend = record.get("Extend")
            if isinstance(extend, str):  # the wire carries it as a JSON string
                with contextlib.suppress(ValueError):
                    extend = json.loads(extend)
            if not isinstance(extend, dict):
                continue
            rid, outcome = str(extend.get("RequestId")), str(extend.get("Outcome"))
            self.resolved.setdefault(rid, outcome)
            if final:
                self.dialogues[rid].append(outcome)
                self.dialogue_types[rid] = str(record.get("Type"))

    def outcomes_by_kind(self) -> dict[str, dict[str, int]]:
        """Speeches by kind and the outcome the dialogue log gives them (``missing`` if none)."""
        table: dict[str, dict[str, int]] = {}
        for rid, speech in self.speeches.items():
            states = self.dialogues.get(rid) or ["missing"]
            row = table.setdefault(speech.kind, {})
            row[states[0]] = row.get(states[0], 0) + 1
        return table
