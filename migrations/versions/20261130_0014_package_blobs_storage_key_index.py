"""an index on package_blobs.storage_key, for the sweeper's check of objects with no session

Revision ID: 0014
Revises: 0013
Create Date: 2026-11-30 22:05:00.000000
"""

from collections.abc import Sequence

from alembic import op

revision: str = "0014"
down_revision: str | None = "0013"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_index("ix_package_blobs_storage_key", "package_blobs", ["storage_key"])


def downgrade() -> None:
    op.drop_index("ix_package_blobs_storage_key", table_name="package_blobs")
