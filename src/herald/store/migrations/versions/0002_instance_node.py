"""instances.node_id: the cluster node that runs an instance, and an index for finding a dead node's.

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-21 11:35:29.355228

"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

# revision identifiers, used by Alembic.
revision: str = "0002"
down_revision: str | Sequence[str] | None = "0001"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("instances", schema=None) as batch_op:
        batch_op.add_column(sa.Column("node_id", sa.String(length=64), nullable=True))
        batch_op.create_index("ix_instances_status_node", ["status", "node_id"], unique=False)


def downgrade() -> None:
    with op.batch_alter_table("instances", schema=None) as batch_op:
        batch_op.drop_index("ix_instances_status_node")
        batch_op.drop_column("node_id")
