"""Baseline: the schema of the releases before migrations (tables made by create_all).

Revision ID: 0001
Revises: (none)
Create Date: 2026-11-21 11:35:21.890090

"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

# revision identifiers, used by Alembic.
revision: str = "0001"
down_revision: str | Sequence[str] | None = None
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "access_keys",
        sa.Column("access_key_id", sa.String(length=64), nullable=False),
        sa.Column("account_id", sa.String(length=64), nullable=False),
        sa.Column("user_name", sa.String(length=64), nullable=True),
        sa.Column("sealed_secret", sa.Text(), nullable=False),
        sa.Column("active", sa.Boolean(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("access_key_id"),
    )
    with op.batch_alter_table("access_keys", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_access_keys_account_id"), ["account_id"], unique=False)

    op.create_table(
        "accounts",
        sa.Column("account_id", sa.String(length=64), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("account_id"),
    )
    op.create_table(
        "dialogues",
        sa.Column("dialogue_id", sa.String(), nullable=False),
        sa.Column("session_id", sa.String(), nullable=False),
        sa.Column("instance_id", sa.String(), nullable=False),
        sa.Column("owner", sa.String(), nullable=False),
        sa.Column("round_id", sa.String(), nullable=False),
        sa.Column("producer", sa.String(length=16), nullable=False),
        sa.Column("text", sa.Text(), nullable=False),
        sa.Column("time_ms", sa.BigInteger(), nullable=False),
        sa.Column("source", sa.String(length=16), nullable=False),
        sa.Column("type", sa.String(length=16), nullable=False),
        sa.Column("extend", sa.JSON(none_as_null=True), nullable=False),
        sa.PrimaryKeyConstraint("dialogue_id"),
    )
    with op.batch_alter_table("dialogues", schema=None) as batch_op:
        batch_op.create_index("ix_dialogues_session_time", ["session_id", "time_ms"], unique=False)

    op.create_table(
        "events",
        sa.Column("seq", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("event_id", sa.String(length=64), nullable=False),
        sa.Column("owner", sa.String(), nullable=False),
        sa.Column("instance_id", sa.String(), nullable=False),
        sa.Column("name", sa.String(length=32), nullable=False),
        sa.Column("payload", sa.JSON(none_as_null=True), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("callback_url", sa.Text(), nullable=True),
        sa.Column("callback_token", sa.Text(), nullable=True),
        sa.Column("delivery", sa.String(length=16), nullable=False),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.Column("next_attempt_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("last_error", sa.Text(), nullable=True),
        sa.Column("delivered_at", sa.DateTime(timezone=True), nullable=True),
        sa.PrimaryKeyConstraint("seq"),
        sa.UniqueConstraint("event_id"),
    )
    with op.batch_alter_table("events", schema=None) as batch_op:
        batch_op.create_index("ix_events_delivery_due", ["delivery", "next_attempt_at"], unique=False)
        batch_op.create_index("ix_events_instance_seq", ["instance_id", "seq"], unique=False)

    op.create_table(
        "idempotency_keys",
        sa.Column("owner", sa.String(), nullable=False),
        sa.Column("action", sa.String(length=64), nullable=False),
        sa.Column("client_token", sa.String(length=64), nullable=False),
        sa.Column("params_hash", sa.String(length=64), nullable=False),
        sa.Column("response", sa.JSON(none_as_null=True), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("owner", "action", "client_token"),
    )
    with op.batch_alter_table("idempotency_keys", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_idempotency_keys_created_at"), ["created_at"], unique=False)

    op.create_table(
        "instances",
        sa.Column("instance_id", sa.String(), nullable=False),
        sa.Column("agent_id", sa.String(), nullable=False),
        sa.Column("owner", sa.String(), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("channel_id", sa.String(), nullable=False),
        sa.Column("agent_user_id", sa.String(), nullable=False),
        sa.Column("user_id", sa.String(), nullable=True),
        sa.Column("session_id", sa.String(), nullable=True),
        sa.Column("user_data", sa.Text(), nullable=True),
        sa.Column("agent_config", sa.JSON(none_as_null=True), nullable=False),
        sa.Column("runtime_config", sa.JSON(none_as_null=True), nullable=False),
        sa.Column("template_config", sa.JSON(none_as_null=True), nullable=True),
        sa.Column("chat_sync_config", sa.JSON(none_as_null=True), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("modified_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("call_start_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("call_end_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("hangup_role", sa.Integer(), nullable=True),
        sa.PrimaryKeyConstraint("instance_id"),
    )
    with op.batch_alter_table("instances", schema=None) as batch_op:
        batch_op.create_index("ix_instances_agent_created", ["agent_id", "created_at"], unique=False)

    op.create_table(
        "policies",
        sa.Column("account_id", sa.String(length=64), nullable=False),
        sa.Column("policy_name", sa.String(length=128), nullable=False),
        sa.Column("document", sa.Text(), nullable=False),
        sa.Column("description", sa.Text(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("modified_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("account_id", "policy_name"),
    )
    op.create_table(
        "user_policies",
        sa.Column("account_id", sa.String(length=64), nullable=False),
        sa.Column("user_name", sa.String(length=64), nullable=False),
        sa.Column("policy_name", sa.String(length=128), nullable=False),
        sa.PrimaryKeyConstraint("account_id", "user_name", "policy_name"),
    )
    op.create_table(
        "users",
        sa.Column("account_id", sa.String(length=64), nullable=False),
        sa.Column("user_name", sa.String(length=64), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("account_id", "user_name"),
    )


def downgrade() -> None:
    op.drop_table("users")
    op.drop_table("user_policies")
    op.drop_table("policies")
    with op.batch_alter_table("instances", schema=None) as batch_op:
        batch_op.drop_index("ix_instances_agent_created")

    op.drop_table("instances")
    with op.batch_alter_table("idempotency_keys", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_idempotency_keys_created_at"))

    op.drop_table("idempotency_keys")
    with op.batch_alter_table("events", schema=None) as batch_op:
        batch_op.drop_index("ix_events_instance_seq")
        batch_op.drop_index("ix_events_delivery_due")

    op.drop_table("events")
    with op.batch_alter_table("dialogues", schema=None) as batch_op:
        batch_op.drop_index("ix_dialogues_session_time")

    op.drop_table("dialogues")
    op.drop_table("accounts")
    with op.batch_alter_table("access_keys", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_access_keys_account_id"))

    op.drop_table("access_keys")
