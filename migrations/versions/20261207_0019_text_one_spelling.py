"""stored text in NFC; package names unique per owner whatever their case

Text is stored and queried in Unicode Normalization Form C from this revision on (UAX #15). Rows
written before it are brought to NFC in the columns that are filtered, grouped or searched:
package categories, languages and descriptions, project names and descriptions, resource titles
and descriptions, and people's names. Emails were already NFC (the address validator normalises
them); usernames, package names and slugs are ASCII.

Package names compare case-insensitively per owner: a unique index on ``(owner_id,
lower(name))``. An owner who already holds case variants (``CasePkg`` and ``casepkg``) keeps the
oldest under its name; each later one is renamed ``<name>-<first 8 characters of its id>`` so
the index can be built and no version is lost.

Revision ID: 0019
Revises: 0017
Create Date: 2026-12-07 23:30:00.000000
"""

import unicodedata
from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0019"
down_revision: str | None = "0017"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

NFC_COLUMNS = {
    "packages": ("category", "language", "description"),
    "projects": ("name", "description"),
    "resources": ("title", "description"),
    "users": ("name", "organization"),
}


def _normalise_text(conn: sa.Connection) -> None:
    for table, columns in NFC_COLUMNS.items():
        t = sa.table(table, sa.column("id"), *(sa.column(c) for c in columns))
        for row in conn.execute(sa.select(t)).mappings():
            changes = {
                c: unicodedata.normalize("NFC", row[c])
                for c in columns
                if isinstance(row[c], str) and not unicodedata.is_normalized("NFC", row[c])
            }
            if changes:
                conn.execute(t.update().where(t.c.id == row["id"]).values(**changes))


def _rename_case_variants(conn: sa.Connection) -> None:
    t = sa.table(
        "packages",
        sa.column("id"),
        sa.column("owner_id"),
        sa.column("name"),
        sa.column("created_at"),
    )
    rows = conn.execute(sa.select(t).order_by(t.c.owner_id, t.c.created_at, t.c.id)).mappings()
    seen: set[tuple[str, str]] = set()
    for row in rows.all():
        key = (row["owner_id"], row["name"].lower())
        if key in seen:
            renamed = f"{row['name'][:119]}-{row['id'][:8]}"
            conn.execute(t.update().where(t.c.id == row["id"]).values(name=renamed))
        seen.add(key)


def upgrade() -> None:
    conn = op.get_bind()
    _normalise_text(conn)
    _rename_case_variants(conn)
    op.create_index(
        "uq_packages_owner_id_lower_name",
        "packages",
        ["owner_id", sa.text("lower(name)")],
        unique=True,
    )


def downgrade() -> None:
    op.drop_index("uq_packages_owner_id_lower_name", table_name="packages")
