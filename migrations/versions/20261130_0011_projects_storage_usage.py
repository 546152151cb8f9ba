"""projects, storage usage and object cleanups

Revision ID: 0011
Revises: 0006
Create Date: 2026-11-30 19:00:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0011"
down_revision: str | None = "0006"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "projects",
        sa.Column("id", sa.String(36), nullable=False),
        sa.Column("owner_id", sa.String(36), nullable=False),
        sa.Column("name", sa.String(200), nullable=False),
        sa.Column("description", sa.Text(), nullable=False),
        sa.Column("version", sa.String(64), nullable=True),
        sa.Column("visibility", sa.String(16), nullable=False),
        sa.Column("file_name", sa.String(255), nullable=False),
        sa.Column("object_key", sa.String(255), nullable=False),
        sa.Column("size", sa.BigInteger(), nullable=False),
        sa.Column("sha256", sa.String(64), nullable=False),
        sa.Column("content_type", sa.String(127), nullable=False),
        sa.Column("downloads", sa.BigInteger(), server_default="0", nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["owner_id"],
            ["users.id"],
            name=op.f("fk_projects_owner_id_users"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_projects")),
        sa.UniqueConstraint("object_key", name=op.f("uq_projects_object_key")),
    )
    with op.batch_alter_table("projects", schema=None) as batch_op:
        batch_op.create_index(
            "ix_projects_owner_created_at_id", ["owner_id", "created_at", "id"], unique=False
        )
        batch_op.create_index(
            "ix_projects_visibility_created_at_id",
            ["visibility", "created_at", "id"],
            unique=False,
        )
    op.create_table(
        "storage_usage",
        sa.Column("user_id", sa.String(36), nullable=False),
        sa.Column("used_bytes", sa.BigInteger(), server_default="0", nullable=False),
        sa.Column("reserved_bytes", sa.BigInteger(), server_default="0", nullable=False),
        sa.Column("quota_bytes", sa.BigInteger(), nullable=True),
        sa.PrimaryKeyConstraint("user_id", name=op.f("pk_storage_usage")),
    )
    op.create_table(
        "object_cleanups",
        sa.Column("object_key", sa.String(255), nullable=False),
        sa.Column("kind", sa.String(16), nullable=False),
        sa.Column("user_id", sa.String(36), nullable=True),
        sa.Column("reserved_bytes", sa.BigInteger(), server_default="0", nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("object_key", name=op.f("pk_object_cleanups")),
    )
    with op.batch_alter_table("object_cleanups", schema=None) as batch_op:
        batch_op.create_index("ix_object_cleanups_created_at", ["created_at"], unique=False)


def downgrade() -> None:
    with op.batch_alter_table("object_cleanups", schema=None) as batch_op:
        batch_op.drop_index("ix_object_cleanups_created_at")
    op.drop_table("object_cleanups")
    op.drop_table("storage_usage")
    with op.batch_alter_table("projects", schema=None) as batch_op:
        batch_op.drop_index("ix_projects_visibility_created_at_id")
        batch_op.drop_index("ix_projects_owner_created_at_id")
    op.drop_table("projects")
