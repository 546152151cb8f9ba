"""users.version and credential generations binding action tokens to the credential they guard

Revision ID: 0007
Revises: 0006
Create Date: 2026-11-30 18:50:00.000000
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0007"
down_revision: str | None = "0006"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("users", schema=None) as batch_op:
        batch_op.add_column(
            sa.Column("version", sa.BigInteger(), server_default="0", nullable=False)
        )
        batch_op.add_column(
            sa.Column("credential_generation", sa.BigInteger(), server_default="0", nullable=False)
        )
    with op.batch_alter_table("action_tokens", schema=None) as batch_op:
        batch_op.add_column(
            sa.Column("credential_generation", sa.BigInteger(), server_default="0", nullable=False)
        )


def downgrade() -> None:
    with op.batch_alter_table("action_tokens", schema=None) as batch_op:
        batch_op.drop_column("credential_generation")
    with op.batch_alter_table("users", schema=None) as batch_op:
        batch_op.drop_column("credential_generation")
        batch_op.drop_column("version")
