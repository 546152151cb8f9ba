"""audit keyset indexes

Revision ID: 0006
Revises: 0005
Create Date: 2026-11-21 07:31:40.744113
"""

from collections.abc import Sequence

from alembic import op

revision: str = "0006"
down_revision: str | None = "0005"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("audit_events", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_audit_events_action_occurred_at"))
        batch_op.drop_index(batch_op.f("ix_audit_events_actor_occurred_at"))
        batch_op.drop_index(batch_op.f("ix_audit_events_ip_occurred_at"))
        batch_op.create_index(
            "ix_audit_events_action_occurred_at_id", ["action", "occurred_at", "id"], unique=False
        )
        batch_op.create_index(
            "ix_audit_events_actor_occurred_at_id",
            ["actor_user_id", "occurred_at", "id"],
            unique=False,
        )
        batch_op.create_index(
            "ix_audit_events_ip_occurred_at_id", ["ip", "occurred_at", "id"], unique=False
        )


def downgrade() -> None:
    with op.batch_alter_table("audit_events", schema=None) as batch_op:
        batch_op.drop_index("ix_audit_events_ip_occurred_at_id")
        batch_op.drop_index("ix_audit_events_actor_occurred_at_id")
        batch_op.drop_index("ix_audit_events_action_occurred_at_id")
        batch_op.create_index(
            batch_op.f("ix_audit_events_ip_occurred_at"), ["ip", "occurred_at"], unique=False
        )
        batch_op.create_index(
            batch_op.f("ix_audit_events_actor_occurred_at"),
            ["actor_user_id", "occurred_at"],
            unique=False,
        )
        batch_op.create_index(
            batch_op.f("ix_audit_events_action_occurred_at"),
            ["action", "occurred_at"],
            unique=False,
        )
