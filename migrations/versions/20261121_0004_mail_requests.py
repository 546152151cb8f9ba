"""mail requests

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-21 06:48:17.704467
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0004"
down_revision: str | None = "0003"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "mail_requests",
        sa.Column("id", sa.String(length=36), nullable=False),
        sa.Column("kind", sa.String(length=32), nullable=False),
        sa.Column("email", sa.String(length=254), nullable=False),
        sa.Column("requested_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("claimed_until", sa.DateTime(timezone=True), nullable=True),
        sa.Column("processed_at", sa.DateTime(timezone=True), nullable=True),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_mail_requests")),
    )
    with op.batch_alter_table("mail_requests", schema=None) as batch_op:
        batch_op.create_index(
            "ix_mail_requests_processed_at_requested_at",
            ["processed_at", "requested_at"],
            unique=False,
        )


def downgrade() -> None:
    with op.batch_alter_table("mail_requests", schema=None) as batch_op:
        batch_op.drop_index("ix_mail_requests_processed_at_requested_at")

    op.drop_table("mail_requests")
