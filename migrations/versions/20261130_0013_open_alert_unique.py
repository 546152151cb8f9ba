"""one open alert per rule and subject, enforced by a partial unique index

Revision ID: 0013
Revises: 0012
Create Date: 2026-11-30 20:40:00.000000
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0013"
down_revision: str | None = "0012"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

OPEN = "acknowledged_at IS NULL"


def upgrade() -> None:
    # Duplicates that a race stored before the index: keep the earliest open alert of each pair
    # and close the others (acknowledged at their own time, by nobody).
    op.execute(
        sa.text(
            "UPDATE security_alerts SET acknowledged_at = raised_at "
            "WHERE acknowledged_at IS NULL AND EXISTS (SELECT 1 FROM security_alerts AS earlier "
            "WHERE earlier.rule = security_alerts.rule "
            "AND earlier.subject = security_alerts.subject "
            "AND earlier.acknowledged_at IS NULL "
            "AND (earlier.raised_at < security_alerts.raised_at "
            "OR (earlier.raised_at = security_alerts.raised_at "
            "AND earlier.id < security_alerts.id)))"
        )
    )
    op.create_index(
        "uq_security_alerts_open_rule_subject",
        "security_alerts",
        ["rule", "subject"],
        unique=True,
        sqlite_where=sa.text(OPEN),
        postgresql_where=sa.text(OPEN),
    )


def downgrade() -> None:
    op.drop_index("uq_security_alerts_open_rule_subject", table_name="security_alerts")
