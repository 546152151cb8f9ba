"""The alert sink's de-duplication, on SQLite and PostgreSQL: one open alert per rule and subject,
decided by one statement, so concurrent equal alerts store (and mail) one."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime

import pytest
import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncEngine

from orbsurv.adapters.persistence.audit import SqlAlertSink
from orbsurv.adapters.persistence.tables import security_alerts
from orbsurv.domain.audit import SecurityAlert, Severity

NOW = datetime(2026, 11, 30, 12, 0, tzinfo=UTC)


def alert(subject: str = "lk@example.com") -> SecurityAlert:
    return SecurityAlert("account_lockout", Severity.HIGH, subject, "locked", NOW)


async def open_alerts(engine: AsyncEngine) -> int:
    async with engine.connect() as conn:
        query = sa.select(sa.func.count()).where(security_alerts.c.acknowledged_at.is_(None))
        return int((await conn.execute(query)).scalar_one())


async def test_an_equal_open_alert_is_dropped_until_acknowledged(engine: AsyncEngine) -> None:
    async with engine.connect() as conn:
        sink = SqlAlertSink(conn)
        assert await sink.raise_alert(alert())
        assert not await sink.raise_alert(alert())
        assert await sink.raise_alert(alert("other@example.com"))
        await conn.execute(security_alerts.update().values(acknowledged_at=NOW))
        assert await sink.raise_alert(alert())
        await conn.commit()
    assert await open_alerts(engine) == 1


async def until_blocked_or_done(engine: AsyncEngine, task: asyncio.Task[bool]) -> None:
    """Poll (deadline 30 s) until ``task`` finished or waits on a lock in PostgreSQL."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + 30
    query = sa.text(
        "SELECT count(*) FROM pg_stat_activity "
        "WHERE wait_event_type = 'Lock' AND datname = current_database()"
    )
    async with engine.connect() as probe:
        while not task.done():
            if (await probe.execute(query)).scalar_one():
                return
            await probe.rollback()
            assert loop.time() < deadline, "the second writer neither finished nor waited"
            await asyncio.sleep(0.01)


@pytest.mark.postgres
async def test_concurrent_equal_alerts_store_one(engine: AsyncEngine) -> None:
    if engine.dialect.name != "postgresql":
        pytest.skip("the race needs two writers at once: PostgreSQL")
    async with engine.connect() as first, engine.connect() as second:
        assert await SqlAlertSink(first).raise_alert(alert())  # uncommitted: holds the key
        racing = asyncio.create_task(SqlAlertSink(second).raise_alert(alert()))
        await until_blocked_or_done(engine, racing)  # the second writer has made its move
        await first.commit()
        assert not await racing  # waited for the first writer, then found its row
        await second.commit()
    assert await open_alerts(engine) == 1
