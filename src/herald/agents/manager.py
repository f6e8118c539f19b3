"""The instance manager: every API action on instances goes through here.

It owns the live instances (at most one per channel), keeps the database in step with their state machine,
and is the only place that creates or finishes an instance.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Coroutine, Sequence
from dataclasses import dataclass, replace
from datetime import datetime
from typing import Any

from herald import ids
from herald.agents.dialogue_log import DialogueLog
from herald.agents.live import SPEECH_FAILED_CODE, Expiry, LiveInstance, SpeechServices
from herald.agents.ownership import LocalOwnership, Ownership
from herald.agents.registry import AgentRegistry
from herald.agents.requests import DialogueType, SpeechRequest
from herald.agents.settings import (
    AgentConfigModel,
    callback_target,
    deep_merge,
    merge_agent_config,
    stored_callback_target,
    validate_agent_config,
)
from herald.agents.state import HangupRole, InstanceStatus, check_transition
from herald.auth.tokens import CallTokens
from herald.clock import Clock
from herald.conversation.loop import Conversation, ListeningServices
from herald.conversation.settings import conversation_settings
from herald.errors import (
    ChannelNotFound,
    IncorrectInstanceStatus,
    InstanceNotFound,
    InvalidParameter,
    NoLlm,
    ServiceUnavailable,
)
from herald.events.bus import EventBus
from herald.events.model import AgentEvent, CallbackTarget, EventName
from herald.media.messages import InterruptReason
from herald.media.room import Participant
from herald.media.ticker import Ticker
from herald.speech.handle import Outcome, SpeechHandle, UtteranceState
from herald.speech.scheduler import ArrivalPolicy
from herald.store.dialogues import DialogueStore
from herald.store.instances import InstanceStore
from herald.store.records import InstanceRecord

_log = logging.getLogger(__name__)

NODE_LOST_CODE = 503
"""``code`` of the ``error`` event of an instance whose node died."""


@dataclass(frozen=True, slots=True)
class NewInstance:
    """What the caller asked for when creating an instance."""

    owner: str
    agent_id: str
    agent_config: dict[str, Any] | None = None
    template_config: dict[str, Any] | None = None
    chat_sync_config: dict[str, Any] | None = None
    session_id: str | None = None
    user_data: str | None = None
    channel_id: str | None = None
    agent_user_id: str | None = None
    user_id: str | None = None


@dataclass(frozen=True, slots=True)
class GeneratedCall:
    record: InstanceRecord
    user_id: str
    token: str


class InstanceManager:
    def __init__(
        self,
        store: InstanceStore,
        dialogues: DialogueStore,
        agents: AgentRegistry,
        speech: SpeechServices,
        ticker: Ticker,
        tokens: CallTokens,
        clock: Clock,
        *,
        events: EventBus | None = None,
        ownership: Ownership | None = None,
        listening: ListeningServices | None = None,
    ) -> None:
        self._store = store
        self._listening = listening
        """Speech recognition and the LLM: ``None``, the agents only speak what they are sent."""
        self._ownership: Ownership = ownership or LocalOwnership()
        self.accepting_instances = True
        """False while the node drains (cluster mode): no new instance is created here."""
        self._events = events
        self._callbacks: dict[str, CallbackTarget | None] = {}
        """Where each live instance's events go (``AgentConfig.CallbackConfig``), if anywhere."""
        self._dialogue_log = DialogueLog(dialogues, clock)
        self._agents = agents
        self._speech = speech
        self._ticker = ticker
        self._tokens = tokens
        self._clock = clock
        self._live: dict[str, LiveInstance] = {}
        self._records: dict[str, InstanceRecord] = {}
        """The records of live instances, kept in step with the database: reads of them need no query."""
        self._channels: dict[str, str] = {}
        self._creating: set[str] = set()
        """Channels whose instance is being created (not yet live)."""
        self._locks: dict[str, asyncio.Lock] = {}
        self._background: set[asyncio.Task[None]] = set()

    @property
    def voice_ids(self) -> Sequence[str]:
        return self._speech.synthesizer.engine.voice_ids

    @property
    def live_count(self) -> int:
        return len(self._live)

    @property
    def speaking_count(self) -> int:
        """Live instances with anything playing, synthesising or queued (the cluster's placement)."""
        return sum(1 for live in self._live.values() if live.scheduler.busy)

    def live_instances(self) -> list[LiveInstance]:
        """The live instances now (for monitoring)."""
        return list(self._live.values())

    def has_channel(self, channel_id: str) -> bool:
        """Whether this process runs the live instance of ``channel_id``."""
        return channel_id in self._channels

    def is_live(self, instance_id: str) -> bool:
        return instance_id in self._live

    def live_snapshot(self) -> list[tuple[InstanceRecord, list[SpeechRequest]]]:
        """Each live instance's record and its speeches without an outcome (the cluster re-records them)."""
        return [
            (self._records[instance_id], live.pending_requests())
            for instance_id, live in self._live.items()
            if instance_id in self._records
        ]

    # ---- creating ----

    async def start(self, request: NewInstance) -> InstanceRecord:
        """StartAIAgentInstance: the agent joins the channel the caller named."""
        return await self._create(request)

    async def generate_call(self, request: NewInstance, *, expire_s: int) -> GeneratedCall:
        """GenerateAIAgentCall: a new channel, an agent in it, and a token for the user to join."""
        user_id = request.user_id or ids.user_id()
        record = await self._create(replace(request, channel_id=ids.channel_id(), user_id=user_id))
        token = self._tokens.mint(record.channel_id, user_id, now=self._clock.now(), expire_s=expire_s)
        return GeneratedCall(record, user_id, token)

    async def _create(self, request: NewInstance) -> InstanceRecord:
        if not self.accepting_instances:
            raise ServiceUnavailable("This node is draining; it takes no new instances.")
        agent = self._agents.get(request.agent_id)
        config = merge_agent_config(dict(agent.agent_config), request.agent_config or {})
        model = self._validated(config)
        channel_id = request.channel_id or ids.channel_id()
        if channel_id in self._channels or channel_id in self._creating:
            raise InvalidParameter(
                "RuntimeConfig.ChannelId", f"the channel {channel_id!r} already has a live agent instance."
            )
        self._creating.add(channel_id)  # held across the awaits below: a concurrent start is refused
        try:
            return await self._create_in(channel_id, request, agent.agent_id, config, model)
        finally:
            self._creating.discard(channel_id)

    def _validated(self, config: dict[str, Any]) -> AgentConfigModel:
        """``config`` checked against the rules and against what this server can do."""
        model = validate_agent_config(config, voice_ids=self.voice_ids)
        if self._listening is not None:
            refusal = self._listening.language_problem(conversation_settings(model))
            if refusal is not None:
                raise InvalidParameter(
                    "AgentConfig.AsrConfig.AsrLanguageId",
                    f"{refusal}. Leave it out, or name a recogniser that does (AsrConfig.Url).",
                )
        return model

    async def _create_in(
        self,
        channel_id: str,
        request: NewInstance,
        agent_id: str,
        config: dict[str, Any],
        model: AgentConfigModel,
    ) -> InstanceRecord:
        agent_user_id = request.agent_user_id or ids.agent_user_id()
        now = self._clock.now()
        instance_id = ids.instance_id()
        record = InstanceRecord(
            instance_id=instance_id,
            agent_id=agent_id,
            owner=request.owner,
            status=InstanceStatus.CREATED.value,
            channel_id=channel_id,
            agent_user_id=agent_user_id,
            user_id=request.user_id,
            # Dialogues are listed by session: an instance started without one is its own session.
            session_id=request.session_id or instance_id,
            user_data=request.user_data,
            agent_config=config,
            runtime_config={"ChannelId": channel_id, "AgentUserId": agent_user_id},
            template_config=request.template_config,
            chat_sync_config=request.chat_sync_config,
            created_at=now,
            modified_at=now,
            call_start_at=None,
            call_end_at=None,
            hangup_role=None,
            node_id=self._ownership.node_id,
        )
        await self._ownership.claim(record)
        try:
            await self._store.add(record)
        except BaseException:
            await self._ownership.release(record)
            raise
        self._go_live(record, model)
        _log.info("instance %s of agent %s started in channel %s", record.instance_id, agent_id, channel_id)
        self._emit(
            record,
            EventName.AGENT_START,
            {"channelId": channel_id, "agentUserId": agent_user_id, "sessionId": record.session_id},
        )
        return record

    def _go_live(self, record: InstanceRecord, model: AgentConfigModel) -> None:
        live = LiveInstance(
            record.instance_id,
            record.owner,
            record.session_id or record.instance_id,
            record.channel_id,
            record.agent_user_id,
            model,
            self._speech,
            self._clock,
            default_voice_id=self.voice_ids[0],
            on_ended=self._utterance_ended,
            on_event=lambda name, data, code, message: self._emit(record, name, data, code, message),
            on_user_turn=self._user_turn,
            on_hang_up=self._hang_up,
        )
        if self._listening is not None:
            live.conversation = Conversation(live, self._listening, conversation_settings(model), self._clock)
        self._callbacks[record.instance_id] = callback_target(model)
        self._live[record.instance_id] = live
        self._records[record.instance_id] = record
        self._channels[record.channel_id] = record.instance_id
        self._ticker.add(live)

    # ---- reading ----

    async def find(self, instance_id: str) -> InstanceRecord | None:
        """The instance, whoever owns it (for callers who proved their right another way: a call token)."""
        return await self._record(instance_id)

    async def get(self, owner: str, instance_id: str) -> InstanceRecord:
        record = await self._record(instance_id)
        if record is None or record.owner != owner:
            raise InstanceNotFound(f"The instance {instance_id!r} does not exist.")
        return record

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
        self._agents.get(agent_id)
        return await self._store.list(
            agent_id=agent_id,
            owner=owner,
            start=start,
            end=end,
            offset=(page_number - 1) * page_size,
            limit=page_size,
        )

    # ---- changing ----

    async def update(
        self,
        owner: str,
        instance_id: str,
        *,
        agent_config: dict[str, Any] | None,
        template_config: dict[str, Any] | None,
        user_data: str | None,
    ) -> InstanceRecord:
        async with self._lock(instance_id):
            record = await self._get_running(owner, instance_id)
            if agent_config is not None:
                merged = merge_agent_config(record.agent_config, agent_config)
                model = self._validated(merged)
                record.agent_config = merged
                self._live[instance_id].reconfigure(model)
                self._callbacks[instance_id] = callback_target(model)
            if template_config is not None:
                record.template_config = deep_merge(record.template_config or {}, template_config)
            if user_data is not None:
                record.user_data = user_data
            record.modified_at = self._clock.now()
            await self._store.save(record)
            return record

    async def speak(self, owner: str, instance_id: str, request: SpeechRequest) -> SpeechHandle:
        live = await self._live_for(owner, instance_id)
        if not live.accepting:
            raise IncorrectInstanceStatus(
                f"The instance {instance_id!r} is stopping; it takes no more speech."
            )
        await self._ownership.speech_accepted(instance_id, request)
        return live.speak(request)

    async def send_data_channel_message(self, owner: str, instance_id: str, message: str) -> None:
        """``SendAIAgentDataChannelMessage``: ``1011`` to everyone in the instance's call."""
        live = await self._live_for(owner, instance_id)
        if not live.accepting:
            raise IncorrectInstanceStatus(f"The instance {instance_id!r} is stopping.")
        live.send_custom_message(message)

    async def send_text(self, owner: str, instance_id: str, text: str) -> str:
        """``SendAIAgentText``: ``text`` is the user's turn; what is playing is cut (``1016`` reason 5) and
        the LLM answers. Returns the turn's round id."""
        live = await self._live_for(owner, instance_id)
        if not live.accepting:
            raise IncorrectInstanceStatus(f"The instance {instance_id!r} is stopping.")
        conversation = live.conversation
        if conversation is None or not conversation.can_answer:
            raise NoLlm(
                "The agent has no LLM to answer text: set AgentConfig.LlmConfig.Url (and Model), or [llm] "
                "in the server's configuration."
            )
        return live.user_text(text, InterruptReason.BY_LLM_QUERY)

    async def stop(self, owner: str, instance_id: str, *, hangup_role: HangupRole = HangupRole.AGENT) -> None:
        """Stop an instance. With ``GracefulShutdown`` the current utterance first ends (at most 10 s),
        in the background: the call returns at once and the instance takes no more speech meanwhile."""
        await self._get_running(owner, instance_id)
        live = self._live[instance_id]
        if not live.accepting:
            return  # already stopping
        if live.config.GracefulShutdown:
            self._spawn(self._stop_gracefully(live, hangup_role), f"graceful-stop-{instance_id}")
            live.accepting = False
            return
        await self._end(instance_id, hangup_role, "stopped")

    async def _stop_gracefully(self, live: LiveInstance, hangup_role: HangupRole) -> None:
        await live.finish_speaking()
        await self._end(live.instance_id, hangup_role, "stopped")

    async def _end(self, instance_id: str, hangup_role: HangupRole, why: str) -> None:
        async with self._lock(instance_id):
            record = await self._record(instance_id)
            if record is None or record.status == InstanceStatus.FINISHED.value:
                await self._drop_live(instance_id, why)
                return
            await self._finish(record, hangup_role, why)

    async def stop_all(self) -> None:
        """Finish every live instance (server shutdown)."""
        for instance_id in list(self._live):
            record = await self._record(instance_id)
            if record is not None and record.status != InstanceStatus.FINISHED:
                await self._finish(record, HangupRole.SYSTEM, "the server is shutting down")
            else:
                await self._drop_live(instance_id, "the server is shutting down")
        for task in list(self._background):
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task
        await self._dialogue_log.close()

    async def recover(self) -> int:
        """After a restart: whatever was live when the server went down is over (and says so: its
        ``agent_stop`` goes out, with ``hangupRole`` 2). In a cluster, only this node's instances."""
        finished = await self._store.finish_unfinished(self._clock.now(), node_id=self._ownership.node_id)
        why = "the server stopped while the instance was live"
        for record in finished:
            self._callbacks[record.instance_id] = stored_callback_target(record.agent_config)
            self._emit_stop(record, why)
            self._callbacks.pop(record.instance_id, None)
        count = len(finished)
        if count:
            _log.info("marked %d instance(s) left live by the previous run as Finished", count)
        return count

    def finish_orphans(
        self, records: Sequence[InstanceRecord], unfinished: dict[str, list[SpeechRequest]], why: str
    ) -> None:
        """Another node died running ``records`` (already marked Finished): say so. Each gets an ``error``
        event and its ``agent_stop`` (``hangupRole`` 2); each of its speeches without an outcome
        (``unfinished``, by instance) gets the ``failed`` one in the dialogue log."""
        for record in records:
            self._callbacks[record.instance_id] = stored_callback_target(record.agent_config)
            for request in unfinished.get(record.instance_id, ()):
                outcome = Outcome(UtteranceState.FAILED, played_ms=0, heard_text="", reason=why)
                session_id = record.session_id or record.instance_id
                self._dialogue_log.record(record.owner, session_id, record.instance_id, request, outcome)
                data = {"requestId": request.utterance_id}
                self._emit(record, EventName.ERROR, data, code=SPEECH_FAILED_CODE, message=why)
            self._emit(record, EventName.ERROR, {"reason": why}, code=NODE_LOST_CODE, message=why)
            self._emit_stop(record, why)
            self._callbacks.pop(record.instance_id, None)
            _log.warning("instance %s finished: %s", record.instance_id, why)

    # ---- joining the call ----

    def live_in_channel(self, channel_id: str) -> LiveInstance:
        """The live instance of ``channel_id``; ``ChannelNotFound`` if there is none."""
        instance_id = self._channels.get(channel_id)
        if instance_id is None:
            raise ChannelNotFound(f"No agent is live in the channel {channel_id!r}.")
        return self._live[instance_id]

    async def join(
        self, channel_id: str, user_id: str, sample_rate_hz: int
    ) -> tuple[LiveInstance, Participant]:
        """Join ``user_id`` to the call; ``sample_rate_hz`` is the listener's rate, or ``room.OPUS``."""
        live = self.live_in_channel(channel_id)
        instance_id = live.instance_id
        participant = live.join(user_id, sample_rate_hz)
        async with self._lock(instance_id):
            record = await self._record(instance_id)
            if record is not None and record.status == InstanceStatus.CREATED.value:
                check_transition(instance_id, InstanceStatus.CREATED, InstanceStatus.EXECUTING)
                now = self._clock.now()
                record.status = InstanceStatus.EXECUTING.value
                record.call_start_at = now
                record.modified_at = now
                await self._store.save(record)
                self._emit(
                    record, EventName.SESSION_START, {"channelId": record.channel_id, "userId": user_id}
                )
                self._greet(live)
        return live, participant

    def _greet(self, live: LiveInstance) -> None:
        """``Greeting``: said once, when the first user joins."""
        greeting = live.config.Greeting
        if greeting and greeting.strip() and live.accepting:
            live.speak(
                SpeechRequest(
                    utterance_id=ids.request_id(),
                    content=greeting,
                    policy=ArrivalPolicy.APPEND,
                    dialogue_type=DialogueType.GREETING,
                )
            )

    def leave(self, live: LiveInstance, participant: Participant) -> None:
        live.leave(participant)

    @property
    def dialogues(self) -> DialogueLog:
        """What was said: ``ListAIAgentDialogues`` reads it."""
        return self._dialogue_log

    # ---- what happens on its own ----

    async def watch(self, period_s: float = 1.0) -> None:
        """End instances whose ``UserOnlineTimeout``, ``UserOfflineTimeout`` or ``MaxIdleTime`` ran out."""
        deadline = self._clock.monotonic_ns()
        while True:
            deadline += int(period_s * 1e9)
            await self._clock.sleep_until_ns(deadline)
            for live in list(self._live.values()):
                expiry = live.expiry() if live.accepting else None
                if expiry is not None:
                    await self._expire(live, expiry)
                elif live.accepting and live.conversation is not None:
                    live.conversation.on_second()

    async def _expire(self, live: LiveInstance, expiry: Expiry) -> None:
        live.accepting = False
        try:
            await self._end(live.instance_id, expiry.hangup_role, expiry.reason)
        except Exception:  # one instance's failure to end must not stop the watch over the others
            _log.exception("could not end instance %s", live.instance_id)

    def _user_turn(self, live: LiveInstance, round_id: str, text: str) -> None:
        self._dialogue_log.record_user(live.owner, live.session_id, live.instance_id, round_id, text)
        record = self._records.get(live.instance_id)
        if record is not None:
            self._emit(record, EventName.CHAT_RECORD, {"role": "user", "roundId": round_id, "text": text})

    def _hang_up(self, live: LiveInstance, reason: str) -> None:
        if live.accepting:
            live.accepting = False
            self._spawn(self._end(live.instance_id, HangupRole.AGENT, reason), "hang-up")

    def _utterance_ended(self, live: LiveInstance, request: SpeechRequest, outcome: Outcome) -> None:
        self._dialogue_log.record(live.owner, live.session_id, live.instance_id, request, outcome)
        self._ownership.speech_ended(live.instance_id, request.utterance_id)
        if request.end_call_after and outcome.state is UtteranceState.FINISHED:
            live.accepting = False
            self._spawn(self._end(live.instance_id, HangupRole.AGENT, "EndCallAfterSpoken"), "end-call")

    def _spawn(self, coro: Coroutine[Any, Any, None], name: str) -> None:
        task: asyncio.Task[None] = asyncio.create_task(coro, name=name)
        self._background.add(task)
        task.add_done_callback(self._task_done)

    def _task_done(self, task: asyncio.Task[None]) -> None:
        self._background.discard(task)
        if not task.cancelled() and task.exception() is not None:
            _log.error("background task %s failed", task.get_name(), exc_info=task.exception())

    # ---- internals ----

    async def _record(self, instance_id: str) -> InstanceRecord | None:
        record = self._records.get(instance_id)
        return record if record is not None else await self._store.get(instance_id)

    def _lock(self, instance_id: str) -> asyncio.Lock:
        return self._locks.setdefault(instance_id, asyncio.Lock())

    async def _live_for(self, owner: str, instance_id: str) -> LiveInstance:
        """The caller's live instance; a live one is known in memory, so the hot path reads no database.
        Anything else raises the error ``_get_running`` gives."""
        live = self._live.get(instance_id)
        if live is None or live.owner != owner:
            await self._get_running(owner, instance_id)
            live = self._live[instance_id]
        return live

    async def _get_running(self, owner: str, instance_id: str) -> InstanceRecord:
        record = await self.get(owner, instance_id)
        if record.status == InstanceStatus.FINISHED.value or instance_id not in self._live:
            raise IncorrectInstanceStatus(
                f"The instance {instance_id!r} is {record.status}; it is not running."
            )
        return record

    async def _finish(self, record: InstanceRecord, hangup_role: HangupRole, why: str) -> None:
        check_transition(record.instance_id, InstanceStatus(record.status), InstanceStatus.FINISHED)
        now = self._clock.now()
        record.status = InstanceStatus.FINISHED.value
        record.call_end_at = now
        record.hangup_role = int(hangup_role)
        record.modified_at = now
        await self._store.save(record)
        # Leaving cuts what was being said: its audio_record goes out before the agent_stop.
        await self._drop_live(record.instance_id, why)
        self._emit_stop(record, why)
        self._callbacks.pop(record.instance_id, None)
        _log.info("instance %s finished: %s (hangup role %d)", record.instance_id, why, int(hangup_role))

    def _emit_stop(self, record: InstanceRecord, why: str) -> None:
        started, ended = record.call_start_at, record.call_end_at
        duration_s = (
            0 if started is None or ended is None else max(0, round((ended - started).total_seconds()))
        )
        data = {"hangupRole": record.hangup_role, "reason": why, "callDurationS": duration_s}
        self._emit(record, EventName.AGENT_STOP, data)

    def _emit(
        self, record: InstanceRecord, name: EventName, data: dict[str, Any], code: int = 0, message: str = ""
    ) -> None:
        if self._events is None:
            return
        self._events.publish(
            AgentEvent(
                name=name,
                owner=record.owner,
                instance_id=record.instance_id,
                agent_id=record.agent_id,
                at=self._clock.now(),
                data=data,
                user_data=record.user_data or "",
                code=code,
                message=message,
                callback=self._callbacks.get(record.instance_id),
            )
        )

    async def _drop_live(self, instance_id: str, why: str) -> None:
        record = self._records.pop(instance_id, None)
        live = self._live.pop(instance_id, None)
        self._locks.pop(instance_id, None)
        if live is None:
            return
        self._channels.pop(live.room.channel_id, None)
        self._ticker.remove(live)
        await live.close(why)
        if record is not None:
            await self._ownership.release(record)
