"""Contract tests of the files persistence on SQLite and PostgreSQL: the storage quota (also under
concurrency), cleanup markers, and the sweep that finishes what a crash left."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from sqlalchemy.ext.asyncio import AsyncEngine

from orbsurv.adapters.persistence.files import SqlObjectCleanups, SqlStorageQuota
from orbsurv.adapters.persistence.unit_of_work import SqlUnitOfWork
from orbsurv.adapters.storage.local import LocalObjectStorage
from orbsurv.application.errors import QuotaExceeded
from orbsurv.application.files.ports import Cleanup
from orbsurv.application.files.projects import SweepObjects
from tests.fakes.identity import FakeClock

T0 = datetime(2026, 11, 30, 12, 0, tzinfo=UTC)


async def test_reserve_commit_release_free(engine: AsyncEngine) -> None:
    async with engine.connect() as conn:
        quota = SqlStorageQuota(conn, default_quota=1000)
        usage = await quota.reserve("u1", 600)
        assert (usage.used, usage.reserved, usage.quota) == (0, 600, 1000)
        with pytest.raises(QuotaExceeded):
            await quota.reserve("u1", 401)
        await quota.commit("u1", reserved=600, stored=550)
        assert await quota.usage("u1") == type(usage)(550, 0, 1000)
        await quota.reserve("u1", 450)
        await quota.release("u1", 450)
        await quota.free("u1", 550)
        assert await quota.usage("u1") == type(usage)(0, 0, 1000)
        await quota.free("u1", 10)  # never below zero
        assert (await quota.usage("u1")).used == 0
        await quota.set_quota("u1", 5_000_000_000)  # BIGINT: past 32 bits
        await quota.reserve("u1", 4_500_000_000)
        assert (await quota.usage("u1")).reserved == 4_500_000_000
        await quota.set_quota("u1", None)
        assert (await quota.usage("u1")).quota == 1000
        assert (await quota.usage("nobody")).free == 1000


@pytest.mark.parametrize("database_url", ["postgres"], indirect=True)
async def test_concurrent_reservations_never_overbook(engine: AsyncEngine) -> None:
    """Ten uploads of 300 bytes race for a 1000-byte quota: exactly three fit."""
    async with engine.begin() as conn:
        await SqlStorageQuota(conn, default_quota=1000).usage("racer")

    async def attempt() -> bool:
        async with engine.connect() as conn:
            try:
                await SqlStorageQuota(conn, default_quota=1000).reserve("racer", 300)
            except QuotaExceeded:
                await conn.rollback()
                return False
            await conn.commit()
            return True

    results = await asyncio.gather(*(attempt() for _ in range(10)))
    assert sum(results) == 3
    async with engine.connect() as conn:
        usage = await SqlStorageQuota(conn, default_quota=1000).usage("racer")
    assert (usage.used, usage.reserved) == (0, 900)


async def test_markers_and_the_sweep(engine: AsyncEngine, tmp_path: Path) -> None:
    storage = LocalObjectStorage(tmp_path / "objects")

    async def body() -> object:
        yield b"left behind"

    for key in ("projects/u/crashed-upload", "projects/u/crashed-delete", "projects/u/live"):
        await storage.put(key, body())  # type: ignore[arg-type]
    async with engine.connect() as conn:
        quota = SqlStorageQuota(conn, default_quota=10_000)
        cleanups = SqlObjectCleanups(conn)
        await quota.reserve("u", 700)
        await quota.reserve("u", 100)
        await cleanups.add(Cleanup("projects/u/crashed-upload", "upload", "u", 700, T0))
        await cleanups.add(Cleanup("projects/u/crashed-delete", "delete", "u", 0, T0))
        await cleanups.add(Cleanup("projects/u/live", "upload", "u", 100, T0 + timedelta(hours=2)))
        await cleanups.add(Cleanup("projects/u/crashed-delete", "delete", "u", 0, T0))  # again
        await conn.commit()

        clock = FakeClock(T0 + timedelta(hours=24, minutes=30))
        sweep = SweepObjects(cleanups, quota, storage, SqlUnitOfWork(conn), clock)
        assert await sweep() == 2
        assert await storage.size("projects/u/crashed-upload") is None
        assert await storage.size("projects/u/crashed-delete") is None
        assert await storage.size("projects/u/live") == 11  # its request may still be streaming
        usage = await quota.usage("u")
        assert usage.reserved == 100
        assert await sweep() == 0
        assert await cleanups.remove("projects/u/live") is True
        assert await cleanups.remove("projects/u/live") is False
        await conn.commit()
