"""Stairway: every revision upgrades, downgrades and upgrades again, on SQLite and PostgreSQL.
And the tables in code match what the migrations build (no missing revision)."""

from __future__ import annotations

import asyncio
import sqlite3
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


def _versions_at_0014(path: Path, *versions: tuple[str, str]) -> str:
    url = sqlite_url(path)
    upgrade(url, "0014")
    with sqlite3.connect(path) as db:  # foreign keys are off for a plain connection
        db.executemany(
            "INSERT INTO package_versions (id, package_id, version, blob_sha256, file_name, size,"
            " downloads, created_at) VALUES (?, ?, ?, 'x', 'f', 1, 0, '2026-11-30 00:00:00')",
            [(f"v{n}", package, version) for n, (package, version) in enumerate(versions)],
        )
    return url


async def test_0015_fills_the_precedence_of_existing_versions(tmp_path: Path) -> None:
    path = tmp_path / "fill.db"
    url = await asyncio.to_thread(
        _versions_at_0014, path, ("p", "1.0.0+a"), ("p", "1.0.1"), ("q", "1.0.0+b")
    )
    await asyncio.to_thread(upgrade, url, "head")
    with sqlite3.connect(path) as db:
        rows = db.execute("SELECT version, precedence FROM package_versions ORDER BY id").fetchall()
    assert rows == [("1.0.0+a", "1.0.0"), ("1.0.1", "1.0.1"), ("1.0.0+b", "1.0.0")]


async def test_0015_stops_and_names_versions_that_differ_only_in_build_metadata(
    tmp_path: Path,
) -> None:
    url = await asyncio.to_thread(
        _versions_at_0014, tmp_path / "tie.db", ("p", "1.0.0+a"), ("p", "1.0.0+b")
    )
    with pytest.raises(RuntimeError, match=r"1\.0\.0\+a and 1\.0\.0\+b"):
        await asyncio.to_thread(upgrade, url, "head")


def _orders_at_0015(path: Path) -> str:
    url = sqlite_url(path)
    upgrade(url, "0015")
    with sqlite3.connect(path) as db:
        db.executemany(
            "INSERT INTO users (id, email, password_hash, role, email_verified, is_active,"
            " created_at, updated_at) VALUES (?, ?, 'x', 'user', ?, 1, '2026-11-30 00:00:00',"
            " '2026-11-30 00:00:00')",
            [("squatter", "a@example.com", 0), ("owner", "b@example.com", 1)],
        )
        db.executemany(
            "INSERT INTO orders (id, created_at, updated_at, email, name, plan_type, price_cents,"
            " currency, status, user_id) VALUES (?, '2026-11-30 00:00:00', '2026-11-30 00:00:00',"
            " ?, 'Ada', 'starter', 29900, 'USD', 'pending', ?)",
            [("o1", "a@example.com", "squatter"), ("o2", "b@example.com", "owner")],
        )
    return url


async def test_0016_unlinks_the_orders_of_unverified_accounts(tmp_path: Path) -> None:
    path = tmp_path / "orders.db"
    url = await asyncio.to_thread(_orders_at_0015, path)
    await asyncio.to_thread(upgrade, url, "head")
    with sqlite3.connect(path) as db:
        rows = db.execute("SELECT id, user_id FROM orders ORDER BY id").fetchall()
    assert rows == [("o1", None), ("o2", "owner")]


async def test_0019_keeps_case_variant_packages_apart_and_brings_text_to_nfc(
    tmp_path: Path,
) -> None:
    path = tmp_path / "text.db"
    url = sqlite_url(path)
    await asyncio.to_thread(upgrade, url, "0017")
    decomposed = "Se\u0301curite\u0301"
    with sqlite3.connect(path) as db:
        db.execute(
            "INSERT INTO users (id, email, password_hash, role, email_verified, is_active,"
            " created_at, updated_at, name) VALUES ('u', 'a@example.com', 'x', 'user', 1, 1,"
            " '2026-11-30 00:00:00', '2026-11-30 00:00:00', ?)",
            (decomposed,),
        )
        db.executemany(
            "INSERT INTO packages (id, owner_id, name, description, category, language,"
            " is_public, created_at, updated_at) VALUES (?, 'u', ?, '', ?, NULL, 1, ?, ?)",
            [
                (
                    "p1-aaaaaaaa",
                    "CasePkg",
                    decomposed,
                    "2026-11-30 00:00:00",
                    "2026-11-30 00:00:00",
                ),
                (
                    "p2-bbbbbbbb",
                    "casepkg",
                    "Sécurité",
                    "2026-12-01 00:00:00",
                    "2026-12-01 00:00:00",
                ),
            ],
        )
    await asyncio.to_thread(upgrade, url, "head")
    with sqlite3.connect(path) as db:
        rows = db.execute("SELECT name, category FROM packages ORDER BY created_at").fetchall()
        name = db.execute("SELECT name FROM users").fetchone()[0]
        with pytest.raises(sqlite3.IntegrityError):
            db.execute(
                "INSERT INTO packages (id, owner_id, name, description, is_public, created_at,"
                " updated_at) VALUES ('p3', 'u', 'CASEPKG', '', 1, '2026-12-02', '2026-12-02')"
            )
    assert rows == [("CasePkg", "Sécurité"), ("casepkg-p2-bbbbb", "Sécurité")]
    assert name == "Sécurité"
