"""ORM models. Only the store's modules import these; everyone else sees ``herald.store.records``."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from sqlalchemy import JSON, BigInteger, Boolean, DateTime, Index, Integer, String, Text
from sqlalchemy.engine import Dialect
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column
from sqlalchemy.types import TypeDecorator


class UTCDateTime(TypeDecorator[datetime]):
    """A timestamp that accepts only aware datetimes and always comes back aware UTC.

    SQLite keeps no zone, so values are stored as naive UTC there; PostgreSQL gets ``timestamptz``.
    """

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None or value.utcoffset() is None:
            raise ValueError(f"naive datetime {value.isoformat()} given where an aware one is required")
        value = value.astimezone(UTC)
        # Naive UTC text keeps SQLite's lexical order equal to time order.
        return value.replace(tzinfo=None) if dialect.name == "sqlite" else value

    def process_result_value(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            return value.replace(tzinfo=UTC)
        return value.astimezone(UTC)


# none_as_null: a Python None is stored as SQL NULL rather than the JSON text "null".
_JSONObject = JSON(none_as_null=True)


class Base(DeclarativeBase):
    pass


class InstanceRow(Base):
    """One row per agent instance; columns are named as the fields of ``InstanceRecord``."""

    __tablename__ = "instances"
    __table_args__ = (
        Index("ix_instances_agent_created", "agent_id", "created_at"),
        # The cluster's reaper looks for unfinished instances of nodes that stopped answering.
        Index("ix_instances_status_node", "status", "node_id"),
    )

    instance_id: Mapped[str] = mapped_column(String, primary_key=True)
    agent_id: Mapped[str] = mapped_column(String)
    owner: Mapped[str] = mapped_column(String)
    status: Mapped[str] = mapped_column(String(16))
    channel_id: Mapped[str] = mapped_column(String)
    agent_user_id: Mapped[str] = mapped_column(String)
    user_id: Mapped[str | None] = mapped_column(String)
    session_id: Mapped[str | None] = mapped_column(String)
    user_data: Mapped[str | None] = mapped_column(Text)
    agent_config: Mapped[dict[str, Any]] = mapped_column(_JSONObject)
    runtime_config: Mapped[dict[str, Any]] = mapped_column(_JSONObject)
    template_config: Mapped[dict[str, Any] | None] = mapped_column(_JSONObject)
    chat_sync_config: Mapped[dict[str, Any] | None] = mapped_column(_JSONObject)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime)
    modified_at: Mapped[datetime] = mapped_column(UTCDateTime)
    call_start_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    call_end_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    hangup_role: Mapped[int | None] = mapped_column(Integer)
    node_id: Mapped[str | None] = mapped_column(String(64))


class DialogueRow(Base):
    """One dialogue line; columns are named as the fields of ``DialogueRecord``."""

    __tablename__ = "dialogues"
    __table_args__ = (Index("ix_dialogues_session_time", "session_id", "time_ms"),)

    dialogue_id: Mapped[str] = mapped_column(String, primary_key=True)
    session_id: Mapped[str] = mapped_column(String)
    instance_id: Mapped[str] = mapped_column(String)
    owner: Mapped[str] = mapped_column(String)
    round_id: Mapped[str] = mapped_column(String)
    producer: Mapped[str] = mapped_column(String(16))
    text: Mapped[str] = mapped_column(Text)
    time_ms: Mapped[int] = mapped_column(BigInteger)
    source: Mapped[str] = mapped_column(String(16))
    type: Mapped[str] = mapped_column(String(16))
    extend: Mapped[dict[str, Any]] = mapped_column(_JSONObject)


class IdempotencyRow(Base):
    """A ``ClientToken`` request and the answer it got."""

    __tablename__ = "idempotency_keys"

    owner: Mapped[str] = mapped_column(String, primary_key=True)
    action: Mapped[str] = mapped_column(String(64), primary_key=True)
    client_token: Mapped[str] = mapped_column(String(64), primary_key=True)
    params_hash: Mapped[str] = mapped_column(String(64))
    response: Mapped[dict[str, Any]] = mapped_column(_JSONObject)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, index=True)


class EventRow(Base):
    """The outbox: every event of every instance, and its callback delivery (``EventRecord``'s fields)."""

    __tablename__ = "events"
    __table_args__ = (
        Index("ix_events_instance_seq", "instance_id", "seq"),
        Index("ix_events_delivery_due", "delivery", "next_attempt_at"),
    )

    # SQLite's rowid alias must be INTEGER exactly; PostgreSQL gets a 64-bit identity.
    seq: Mapped[int] = mapped_column(BigInteger().with_variant(Integer, "sqlite"), primary_key=True)
    event_id: Mapped[str] = mapped_column(String(64), unique=True)
    owner: Mapped[str] = mapped_column(String)
    instance_id: Mapped[str] = mapped_column(String)
    name: Mapped[str] = mapped_column(String(32))
    payload: Mapped[dict[str, Any]] = mapped_column(_JSONObject)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime)
    callback_url: Mapped[str | None] = mapped_column(Text)
    callback_token: Mapped[str | None] = mapped_column(Text)
    delivery: Mapped[str] = mapped_column(String(16))
    attempts: Mapped[int] = mapped_column(Integer)
    next_attempt_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    last_error: Mapped[str | None] = mapped_column(Text)
    delivered_at: Mapped[datetime | None] = mapped_column(UTCDateTime)


class AccountRow(Base):
    """An account: the owner of instances, users, keys and policies."""

    __tablename__ = "accounts"

    account_id: Mapped[str] = mapped_column(String(64), primary_key=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime)


class UserRow(Base):
    """A user within an account; what its keys may do is what its attached policies allow."""

    __tablename__ = "users"

    account_id: Mapped[str] = mapped_column(String(64), primary_key=True)
    user_name: Mapped[str] = mapped_column(String(64), primary_key=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime)


class AccessKeyRow(Base):
    """An access key; the secret is sealed (``herald.auth.sealing``), never stored in plain text."""

    __tablename__ = "access_keys"

    access_key_id: Mapped[str] = mapped_column(String(64), primary_key=True)
    account_id: Mapped[str] = mapped_column(String(64), index=True)
    user_name: Mapped[str | None] = mapped_column(String(64))
    sealed_secret: Mapped[str] = mapped_column(Text)
    active: Mapped[bool] = mapped_column(Boolean)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime)


class PolicyRow(Base):
    """A named policy document of an account."""

    __tablename__ = "policies"

    account_id: Mapped[str] = mapped_column(String(64), primary_key=True)
    policy_name: Mapped[str] = mapped_column(String(128), primary_key=True)
    document: Mapped[str] = mapped_column(Text)
    description: Mapped[str] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime)
    modified_at: Mapped[datetime] = mapped_column(UTCDateTime)


class UserPolicyRow(Base):
    """A policy attached to a user."""

    __tablename__ = "user_policies"

    account_id: Mapped[str] = mapped_column(String(64), primary_key=True)
    user_name: Mapped[str] = mapped_column(String(64), primary_key=True)
    policy_name: Mapped[str] = mapped_column(String(128), primary_key=True)
