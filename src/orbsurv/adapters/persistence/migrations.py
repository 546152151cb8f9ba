"""Run the Alembic migrations programmatically (``orbsurv migrate``, development start, tests)."""

from __future__ import annotations

from dataclasses import dataclass
from functools import cache
from importlib import resources
from pathlib import Path

import sqlalchemy as sa
from alembic import command
from alembic.config import Config
from alembic.script import ScriptDirectory
from sqlalchemy.engine import Connection


def migrations_directory() -> Path:
    """``migrations/`` of the source tree, or the copy a wheel carries inside the package."""
    packaged = Path(str(resources.files("orbsurv"))) / "migrations"
    if (packaged / "env.py").is_file():
        return packaged
    return Path(__file__).resolve().parents[4] / "migrations"


def alembic_config(database_url: str) -> Config:
    config = Config()
    config.set_main_option("script_location", str(migrations_directory()))
    config.set_main_option("sqlalchemy.url", database_url.replace("%", "%%"))
    config.attributes["configure_logging"] = False
    return config


def upgrade(database_url: str, revision: str = "head") -> None:
    command.upgrade(alembic_config(database_url), revision)


def downgrade(database_url: str, revision: str) -> None:
    command.downgrade(alembic_config(database_url), revision)


@dataclass(frozen=True, slots=True)
class SchemaRevisions:
    """The Alembic revisions this code knows: ``heads`` (what it needs) and every ``known`` one."""

    heads: frozenset[str]
    known: frozenset[str]

    def gap(self, current: frozenset[str]) -> str | None:
        """``None`` when a database at ``current`` can serve this code, else what is missing.

        A database at a revision this code does not know was migrated by a newer release (an
        expand/contract migration keeps the previous release working): it counts as current.
        """
        if current == self.heads or not current <= self.known:
            return None
        at = ", ".join(sorted(current)) or "no revision (empty database)"
        return f"not migrated: database at {at}, code at {', '.join(sorted(self.heads))}"


@cache
def schema_revisions() -> SchemaRevisions:
    script = ScriptDirectory.from_config(alembic_config("sqlite://"))
    return SchemaRevisions(
        heads=frozenset(script.get_heads()),
        known=frozenset(revision.revision for revision in script.walk_revisions()),
    )


# Alembic's default version table, which migrations/env.py keeps.
_VERSION_TABLE = sa.table("alembic_version", sa.column("version_num", sa.String))


def current_revisions(connection: Connection) -> frozenset[str]:
    """The revisions recorded in the database (empty when it was never migrated).

    Reads Alembic's version table itself: ``MigrationContext.configure`` logs two INFO lines
    per call, and readiness probes ask this every few seconds.
    """
    if not sa.inspect(connection).has_table(_VERSION_TABLE.name):
        return frozenset()
    return frozenset(connection.execute(sa.select(_VERSION_TABLE.c.version_num)).scalars())
