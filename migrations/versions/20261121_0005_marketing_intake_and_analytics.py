"""marketing intake and analytics

Revision ID: 0005
Revises: 0004
Create Date: 2026-11-21 07:02:28.154871
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0005"
down_revision: str | None = "0004"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "analytics_events",
        sa.Column("id", sa.String(length=36), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("occurred_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("event_type", sa.String(length=32), nullable=False),
        sa.Column("action", sa.String(length=64), nullable=False),
        sa.Column("page", sa.String(length=2048), nullable=True),
        sa.Column("client_id", sa.String(length=128), nullable=True),
        sa.Column("actor_user_id", sa.String(length=36), nullable=True),
        sa.Column("ip", sa.String(length=64), nullable=True),
        sa.Column("user_agent", sa.String(length=512), nullable=True),
        sa.Column("request_id", sa.String(length=128), nullable=True),
        sa.Column("details", sa.JSON(), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_analytics_events")),
    )
    with op.batch_alter_table("analytics_events", schema=None) as batch_op:
        batch_op.create_index(
            "ix_analytics_events_created_at_id", ["created_at", "id"], unique=False
        )
        batch_op.create_index(
            "ix_analytics_events_type_actor",
            ["event_type", "actor_user_id", "created_at"],
            unique=False,
        )
        batch_op.create_index(
            "ix_analytics_events_type_client",
            ["event_type", "client_id", "created_at"],
            unique=False,
        )

    op.create_table(
        "client_errors",
        sa.Column("id", sa.String(length=36), nullable=False),
        sa.Column("fingerprint", sa.String(length=64), nullable=False),
        sa.Column("message", sa.String(length=2000), nullable=False),
        sa.Column("stack", sa.Text(), nullable=True),
        sa.Column("url", sa.String(length=2048), nullable=True),
        sa.Column("line", sa.Integer(), nullable=True),
        sa.Column("column", sa.Integer(), nullable=True),
        sa.Column("user_agent", sa.String(length=512), nullable=True),
        sa.Column("ip", sa.String(length=64), nullable=True),
        sa.Column("count", sa.BigInteger(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("last_seen_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_client_errors")),
        sa.UniqueConstraint("fingerprint", name=op.f("uq_client_errors_fingerprint")),
    )
    with op.batch_alter_table("client_errors", schema=None) as batch_op:
        batch_op.create_index("ix_client_errors_created_at_id", ["created_at", "id"], unique=False)

    op.create_table(
        "contact_messages",
        sa.Column("id", sa.String(length=36), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("name", sa.String(length=255), nullable=False),
        sa.Column("email", sa.String(length=254), nullable=False),
        sa.Column("message", sa.Text(), nullable=False),
        sa.Column("company", sa.String(length=255), nullable=True),
        sa.Column("phone", sa.String(length=64), nullable=True),
        sa.Column("topic", sa.String(length=255), nullable=True),
        sa.Column("ip", sa.String(length=64), nullable=True),
        sa.Column("user_agent", sa.String(length=512), nullable=True),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_contact_messages")),
    )
    with op.batch_alter_table("contact_messages", schema=None) as batch_op:
        batch_op.create_index(
            "ix_contact_messages_created_at_id", ["created_at", "id"], unique=False
        )

    op.create_table(
        "form_acknowledgements",
        sa.Column("email", sa.String(length=254), nullable=False),
        sa.Column("last_sent_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("email", name=op.f("pk_form_acknowledgements")),
    )
    op.create_table(
        "investor_interests",
        sa.Column("id", sa.String(length=36), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("name", sa.String(length=255), nullable=False),
        sa.Column("email", sa.String(length=254), nullable=False),
        sa.Column("amount", sa.String(length=64), nullable=True),
        sa.Column("note", sa.Text(), nullable=True),
        sa.Column("ip", sa.String(length=64), nullable=True),
        sa.Column("user_agent", sa.String(length=512), nullable=True),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_investor_interests")),
    )
    with op.batch_alter_table("investor_interests", schema=None) as batch_op:
        batch_op.create_index(
            "ix_investor_interests_created_at_id", ["created_at", "id"], unique=False
        )

    op.create_table(
        "pilot_requests",
        sa.Column("id", sa.String(length=36), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("name", sa.String(length=255), nullable=False),
        sa.Column("org", sa.String(length=255), nullable=False),
        sa.Column("email", sa.String(length=254), nullable=False),
        sa.Column("use_case", sa.Text(), nullable=False),
        sa.Column("ip", sa.String(length=64), nullable=True),
        sa.Column("user_agent", sa.String(length=512), nullable=True),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_pilot_requests")),
    )
    with op.batch_alter_table("pilot_requests", schema=None) as batch_op:
        batch_op.create_index("ix_pilot_requests_created_at_id", ["created_at", "id"], unique=False)

    op.create_table(
        "waitlist_entries",
        sa.Column("id", sa.String(length=36), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("email", sa.String(length=254), nullable=False),
        sa.Column("name", sa.String(length=255), nullable=True),
        sa.Column("source", sa.String(length=255), nullable=True),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("ip", sa.String(length=64), nullable=True),
        sa.Column("user_agent", sa.String(length=512), nullable=True),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_waitlist_entries")),
        sa.UniqueConstraint("email", name=op.f("uq_waitlist_entries_email")),
    )
    with op.batch_alter_table("waitlist_entries", schema=None) as batch_op:
        batch_op.create_index(
            "ix_waitlist_entries_created_at_id", ["created_at", "id"], unique=False
        )


def downgrade() -> None:
    with op.batch_alter_table("waitlist_entries", schema=None) as batch_op:
        batch_op.drop_index("ix_waitlist_entries_created_at_id")

    op.drop_table("waitlist_entries")
    with op.batch_alter_table("pilot_requests", schema=None) as batch_op:
        batch_op.drop_index("ix_pilot_requests_created_at_id")

    op.drop_table("pilot_requests")
    with op.batch_alter_table("investor_interests", schema=None) as batch_op:
        batch_op.drop_index("ix_investor_interests_created_at_id")

    op.drop_table("investor_interests")
    op.drop_table("form_acknowledgements")
    with op.batch_alter_table("contact_messages", schema=None) as batch_op:
        batch_op.drop_index("ix_contact_messages_created_at_id")

    op.drop_table("contact_messages")
    with op.batch_alter_table("client_errors", schema=None) as batch_op:
        batch_op.drop_index("ix_client_errors_created_at_id")

    op.drop_table("client_errors")
    with op.batch_alter_table("analytics_events", schema=None) as batch_op:
        batch_op.drop_index("ix_analytics_events_type_client")
        batch_op.drop_index("ix_analytics_events_type_actor")
        batch_op.drop_index("ix_analytics_events_created_at_id")

    op.drop_table("analytics_events")
