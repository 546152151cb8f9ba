"""package_versions.precedence: a version without its build metadata, unique per package

Versions that differ only in build metadata (``1.0.0+a``, ``1.0.0+b``) have the same precedence
(SemVer 2.0.0 section 10), so a package holds at most one of them: otherwise its ``latest``
would be a tie. Existing rows get the column filled in; should a package already hold two such
versions, the upgrade stops and names them (delete one, then upgrade again).

Revision ID: 0015
Revises: 0014
Create Date: 2026-12-01 02:10:00.000000
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0015"
down_revision: str | None = "0014"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

versions = sa.table(
    "package_versions",
    sa.column("id", sa.String),
    sa.column("package_id", sa.String),
    sa.column("version", sa.String),
    sa.column("precedence", sa.String),
)


def upgrade() -> None:
    op.add_column("package_versions", sa.Column("precedence", sa.String(128), nullable=True))
    connection = op.get_bind()
    seen: dict[tuple[str, str], str] = {}
    ties: list[str] = []
    for row in connection.execute(
        sa.select(versions.c.id, versions.c.package_id, versions.c.version)
    ):
        precedence = row.version.partition("+")[0]
        earlier = seen.setdefault((row.package_id, precedence), row.version)
        if earlier != row.version:
            ties.append(f"package {row.package_id}: {earlier} and {row.version}")
        connection.execute(
            versions.update().where(versions.c.id == row.id).values(precedence=precedence)
        )
    if ties:
        raise RuntimeError(
            "versions that differ only in build metadata; delete one of each pair, then "
            "upgrade again: " + "; ".join(ties)
        )
    with op.batch_alter_table("package_versions") as batch:
        batch.alter_column("precedence", existing_type=sa.String(128), nullable=False)
        batch.drop_constraint("uq_package_versions_package_id_version", type_="unique")
        batch.create_unique_constraint(
            "uq_package_versions_package_id_precedence", ["package_id", "precedence"]
        )


def downgrade() -> None:
    with op.batch_alter_table("package_versions") as batch:
        batch.drop_constraint("uq_package_versions_package_id_precedence", type_="unique")
        batch.create_unique_constraint(
            "uq_package_versions_package_id_version", ["package_id", "version"]
        )
        batch.drop_column("precedence")
