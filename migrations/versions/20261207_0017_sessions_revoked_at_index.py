"""an index on sessions.revoked_at, for the denylist mirror's read of recent revocations

Every API worker builds its denylist mirror from the sessions revoked in the last access-token
lifetime, at start and after every Redis resync, and polls the newest ones as a backstop.

Revision ID: 0017
Revises: 0016
Create Date: 2026-12-07 20:00:00.000000
"""

from collections.abc import Sequence

from alembic import op

revision: str = "0017"
down_revision: str | None = "0016"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_index("ix_sessions_revoked_at", "sessions", ["revoked_at"])


def downgrade() -> None:
    op.drop_index("ix_sessions_revoked_at", table_name="sessions")
