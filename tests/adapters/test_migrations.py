"""Stairway: every revision upgrades, downgrades and upgrades again, on SQLite and PostgreSQL.
And the tables in code match what the migrations build (no missing revision)."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy.ext.asyncio import create_async_engine

from orbsurv.adapters.persistence.migrations import alembic_config, downgrade, upgrade
from orbsurv.adapters.persistence.tables import metadata
from tests.conftest import sqlite_url


def revisions() -> list[str]:
    script = ScriptDirectory.from_config(alembic_config("sqlite://"))
    return [rev.revision for rev in reversed(list(script.walk_revisions()))]


def stairway(url: str) -> None:
    for revision in revisions():
        upgrade(url, revision)
        downgrade(url, "-1")
        upgrade(url, revision)


async def schema_diff(url: str) -> list[object]:
    engine = create_async_engine(url)
    try:
        async with engine.connect() as conn:
            return await conn.run_sync(
                lambda sync: compare_metadata(MigrationContext.configure(sync), metadata)
            )
    finally:
        await engine.dispose()


def test_there_is_a_linear_history() -> None:
    script = ScriptDirectory.from_config(alembic_config("sqlite://"))
    assert len(script.get_heads()) == 1
    assert revisions()


async def test_stairway_on_sqlite(tmp_path: Path) -> None:
    url = sqlite_url(tmp_path / "stairway.db")
    await asyncio.to_thread(stairway, url)
    assert await schema_diff(url) == []


@pytest.mark.postgres
async def test_stairway_on_postgres(empty_postgres_url: str) -> None:
    await asyncio.to_thread(stairway, empty_postgres_url)
    assert await schema_diff(empty_postgres_url) == []
