"""Orders held by an account that never verified its address become unlinked

Orders used to be linked, when placed, to whichever account held the address, verified or not:
anyone could register a buyer's address and read the orders its owner placed. New orders are
linked only to verified accounts, and an account sees the unlinked orders of its address once it
verifies it; this clears the links made the old way. The owner loses nothing: verifying the
address shows the orders again.

Revision ID: 0016
Revises: 0015
Create Date: 2026-12-01 05:30:00.000000
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0016"
down_revision: str | None = "0015"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

orders = sa.table("orders", sa.column("user_id", sa.String))
users = sa.table("users", sa.column("id", sa.String), sa.column("email_verified", sa.Boolean))


def upgrade() -> None:
    unverified = sa.select(users.c.id).where(users.c.email_verified.is_(False))
    op.execute(orders.update().where(orders.c.user_id.in_(unverified)).values(user_id=None))


def downgrade() -> None:
    """Nothing to undo: which account a cleared link named is not kept, and no schema changed."""
