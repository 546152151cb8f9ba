"""Exports read in keyset batches, each on a short connection: every row once, newest first,
and no connection checked out while the reader waits between rows."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta

import pytest

from orbsurv.adapters.persistence.database import make_engine
from orbsurv.adapters.persistence.keyset import newest_first_batches
from orbsurv.adapters.persistence.tables import client_errors


@pytest.fixture(params=["sqlite_database_url", "postgres_url"])
def database_url(request: pytest.FixtureRequest) -> str:
    return str(request.getfixturevalue(request.param))


async def test_every_row_once_newest_first_and_no_connection_held_between_rows(
    database_url: str,
) -> None:
    engine = make_engine(database_url, pool_size=2)
    marker = uuid.uuid4().hex
    start = datetime(2026, 1, 1, tzinfo=UTC)
    rows = [
        {
            "id": str(uuid.uuid4()),
            "fingerprint": f"{marker}-{n}",
            "message": marker,
            "count": 1,
            # two rows per instant: the id breaks the tie
            "created_at": start + timedelta(seconds=n // 2),
            "last_seen_at": start,
        }
        for n in range(7)
    ]
    try:
        async with engine.begin() as conn:
            await conn.execute(client_errors.insert(), rows)
        query = client_errors.select().where(client_errors.c.message == marker)
        seen = []
        async for row in newest_first_batches(
            engine, query, created_at=client_errors.c.created_at, id_=client_errors.c.id, batch=2
        ):
            assert engine.pool.checkedout() == 0  # type: ignore[attr-defined]
            seen.append(row.id)
        expected = sorted(rows, key=lambda r: (r["created_at"], r["id"]), reverse=True)
        assert seen == [r["id"] for r in expected]
    finally:
        await engine.dispose()
