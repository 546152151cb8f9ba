"""The daily token budget: one conditional upsert, never overspent by parallel requests."""

from __future__ import annotations

import asyncio
import uuid

import pytest
from sqlalchemy.ext.asyncio import AsyncEngine

from orbsurv.adapters.persistence.database import make_engine
from orbsurv.adapters.persistence.support import SqlTokenBudget


async def test_reservations_stop_at_the_limit(engine: AsyncEngine) -> None:
    user = str(uuid.uuid4())
    async with engine.connect() as conn:
        budget = SqlTokenBudget(conn)
        assert await budget.reserve(user, "2026-11-30", 600, 1000)
        assert not await budget.reserve(user, "2026-11-30", 500, 1000)
        assert await budget.reserve(user, "2026-11-30", 400, 1000)  # exactly the limit
        assert not await budget.reserve(user, "2026-11-30", 1, 1000)
        assert await budget.reserve(user, "2026-12-01", 1000, 1000)  # a new day
        assert not await budget.reserve(str(uuid.uuid4()), "2026-11-30", 1001, 1000)
        await conn.commit()


@pytest.mark.postgres
async def test_parallel_reservations_never_overspend(postgres_url: str) -> None:
    engine = make_engine(postgres_url)
    user = str(uuid.uuid4())

    async def reserve() -> bool:
        async with engine.connect() as conn:
            granted = await SqlTokenBudget(conn).reserve(user, "2026-11-30", 300, 1000)
            await conn.commit()
            return granted

    try:
        results = await asyncio.gather(*(reserve() for _ in range(12)))
    finally:
        await engine.dispose()
    assert sum(results) == 3  # 3 x 300 fit in 1000, a 4th would not
