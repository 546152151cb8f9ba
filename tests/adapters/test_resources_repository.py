"""SqlResourceRepository: slugs unique whatever the letter case, even under concurrency."""

from __future__ import annotations

import asyncio
import uuid
from datetime import UTC, datetime

import pytest
from sqlalchemy.ext.asyncio import AsyncEngine

from orbsurv.adapters.persistence.content import SqlResourceRepository, resources_revision
from orbsurv.adapters.persistence.database import make_engine
from orbsurv.domain.content import Resource, ResourceType, normalise_slug
from orbsurv.domain.errors import Conflict


def make(slug: str) -> Resource:
    now = datetime.now(UTC)
    return Resource(normalise_slug(slug), "T", ResourceType.API, "d", now, now, published=True)


async def test_a_taken_slug_is_a_conflict_and_the_revision_moves(engine: AsyncEngine) -> None:
    async with engine.connect() as conn:
        repository = SqlResourceRepository(conn)
        before = await resources_revision(conn)
        await repository.add(make("faq"))
        with pytest.raises(Conflict):
            await repository.add(make("FAQ"))
        await repository.add(make("other"))  # the transaction is still usable
        assert await resources_revision(conn) == before + 2
        await conn.commit()


@pytest.mark.postgres
async def test_parallel_case_variants_make_one_resource(postgres_url: str) -> None:
    engine = make_engine(postgres_url)

    async def create(slug: str) -> bool:
        async with engine.connect() as conn:
            try:
                await SqlResourceRepository(conn).add(make(slug))
                await conn.commit()
            except Conflict:
                return False
            return True

    tag = uuid.uuid4().hex[:8]
    variants = [f"Race-{tag}", f"RACE-{tag}", f"race-{tag}", f"rAcE-{tag}"]
    try:
        results = await asyncio.gather(*(create(slug) for slug in variants))
    finally:
        await engine.dispose()
    assert sum(results) == 1
