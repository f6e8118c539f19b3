"""The plain records the store hands to the rest of Herald; no SQLAlchemy type appears in them."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any


@dataclass(slots=True)
class InstanceRecord:
    """One agent instance as persisted. Datetimes are timezone-aware UTC."""

    instance_id: str
    agent_id: str
    owner: str  # the AccessKeyId that created it
    status: str  # "Created" | "Executing" | "Finished"; the state machine lives in herald.agents
    channel_id: str
    agent_user_id: str
    user_id: str | None  # the user a GenerateAIAgentCall token was issued for
    session_id: str | None
    user_data: str | None
    agent_config: dict[str, Any]
    runtime_config: dict[str, Any]
    template_config: dict[str, Any] | None
    chat_sync_config: dict[str, Any] | None
    created_at: datetime
    modified_at: datetime
    call_start_at: datetime | None  # when the first user joined
    call_end_at: datetime | None
    hangup_role: int | None  # 0 agent, 1 user, 2 system
    node_id: str | None = None
    """The cluster node that runs (or ran) the instance; ``None`` in embedded mode."""


@dataclass(slots=True)
class DialogueRecord:
    """One line of a conversation, as ``ListAIAgentDialogues`` shows it."""

    dialogue_id: str
    session_id: str
    instance_id: str
    owner: str
    round_id: str
    producer: str  # "agent" | "user"
    text: str  # for the agent: what was actually heard
    time_ms: int  # Unix time in milliseconds
    source: str  # "call" | "chat"
    type: str  # "speech" (pushed) | "greeting" | "normal"
    extend: dict[str, Any]  # Herald's outcome details: RequestId, Outcome, PlayedMs, Reason, ...


@dataclass(slots=True)
class IdempotencyRecord:
    """A request made with a ``ClientToken``, kept so a retry gets the first answer."""

    owner: str
    action: str
    client_token: str
    params_hash: str
    response: dict[str, Any]
    created_at: datetime


@dataclass(slots=True)
class EventRecord:
    """One event of an instance in the outbox: what happened, and how its callback delivery stands.

    ``seq`` orders an instance's events (and resumes an event stream); ``event_id`` is unique and sent
    with every delivery attempt, for the receiver's de-duplication.
    """

    event_id: str
    owner: str
    instance_id: str
    name: str  # agent_start | session_start | agent_stop | error | audio_record | tts_data_received
    payload: dict[str, Any]  # the callback body, as ICE sends it
    created_at: datetime
    callback_url: str | None = None
    callback_token: str | None = None
    delivery: str = "none"  # none (no callback) | pending | delivered | failed
    attempts: int = 0
    next_attempt_at: datetime | None = None
    last_error: str | None = None
    delivered_at: datetime | None = None
    seq: int | None = None  # given by the database


@dataclass(frozen=True, slots=True)
class AccessKeyRecord:
    """An access key as stored: its secret sealed (``herald.auth.sealing``)."""

    access_key_id: str
    account_id: str
    user_name: str | None
    sealed_secret: str
    active: bool
    created_at: datetime


@dataclass(frozen=True, slots=True)
class PolicyRecord:
    account_id: str
    policy_name: str
    document: str
    description: str
    created_at: datetime
    modified_at: datetime


@dataclass(frozen=True, slots=True)
class IamSnapshot:
    """Everything the server needs to authenticate and authorize, read in one transaction."""

    accounts: frozenset[str]
    keys: tuple[AccessKeyRecord, ...]
    policies: tuple[PolicyRecord, ...]
    attachments: tuple[tuple[str, str, str], ...]
    """(account, user, policy name) for each policy attached to a user."""
