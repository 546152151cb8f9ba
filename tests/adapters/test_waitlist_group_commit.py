"""GroupCommitWaitlist on SQLite and PostgreSQL: sign-ups of concurrent requests share a
transaction, and each caller still gets its own answer only once its row is committed."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta

import pytest
import sqlalchemy as sa
from sqlalchemy import event
from sqlalchemy.exc import DBAPIError
from sqlalchemy.ext.asyncio import AsyncEngine

from orbsurv.adapters.persistence.database import make_engine
from orbsurv.adapters.persistence.tables import (
    form_acknowledgements,
    outbox_messages,
    waitlist_entries,
)
from orbsurv.adapters.persistence.waitlist import GroupCommitWaitlist
from orbsurv.application.ports import OutgoingEmail
from orbsurv.domain.leads import Form, Lead, Submitter
from tests.conftest import truncate_all

T0 = datetime(2026, 8, 1, 10, 0, tzinfo=UTC)
DAY = 24 * 3600


def sign_up(
    waitlist: GroupCommitWaitlist, email: str, *, source: str | None = None, at: datetime = T0
) -> asyncio.Task[bool]:
    return asyncio.create_task(
        waitlist.join(
            Lead(Form.WAITLIST, email, {"source": source, "name": None}),
            Submitter(ip="198.51.100.1", user_agent="pytest", at=at),
            acknowledgement=OutgoingEmail(email, "We received your sign-up", "text", "<p>html</p>"),
            every_seconds=DAY,
        )
    )


async def count(engine: AsyncEngine, table: sa.Table) -> int:
    async with engine.connect() as conn:
        return int((await conn.execute(sa.select(sa.func.count()).select_from(table))).scalar())


async def test_concurrent_sign_ups_share_transactions_and_keep_their_own_answers(
    engine: AsyncEngine,
) -> None:
    commits: list[object] = []
    event.listen(engine.sync_engine, "commit", commits.append)
    waitlist = GroupCommitWaitlist(engine)
    new = [sign_up(waitlist, f"new-{n}@example.com", source="ad") for n in range(30)]
    # The same address ten times: the first is new, the others are repeats, in arrival order.
    same = [sign_up(waitlist, "same@example.com", source=f"s{n}") for n in range(10)]
    assert all(await asyncio.gather(*new))
    assert await asyncio.gather(*same) == [True] + [False] * 9
    await waitlist.close()

    assert len(commits) < 40  # shared transactions, not one per sign-up
    assert await count(engine, waitlist_entries) == 31
    assert await count(engine, form_acknowledgements) == 31
    assert await count(engine, outbox_messages) == 31  # one acknowledgement per address
    async with engine.connect() as conn:
        source = await conn.scalar(
            sa.select(waitlist_entries.c.source).where(
                waitlist_entries.c.email == "same@example.com"
            )
        )
    assert source == "s9"  # the newest repeat's source


async def test_a_repeat_without_a_source_keeps_the_stored_one(engine: AsyncEngine) -> None:
    waitlist = GroupCommitWaitlist(engine)
    assert await sign_up(waitlist, "a@example.com", source="ad")
    assert not await sign_up(waitlist, "a@example.com", source=None)
    await waitlist.close()
    async with engine.connect() as conn:
        source = await conn.scalar(sa.select(waitlist_entries.c.source))
    assert source == "ad"


async def test_acknowledged_at_most_once_per_period(engine: AsyncEngine) -> None:
    waitlist = GroupCommitWaitlist(engine)
    await sign_up(waitlist, "a@example.com", at=T0)
    await sign_up(waitlist, "a@example.com", at=T0 + timedelta(hours=23))
    assert await count(engine, outbox_messages) == 1
    await sign_up(waitlist, "a@example.com", at=T0 + timedelta(hours=24))
    await waitlist.close()
    assert await count(engine, outbox_messages) == 2


async def test_a_caller_that_goes_away_still_has_its_sign_up_committed(
    engine: AsyncEngine,
) -> None:
    waitlist = GroupCommitWaitlist(engine)
    task = sign_up(waitlist, "gone@example.com")
    await asyncio.sleep(0)  # queued, and the writer started
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    await waitlist.close()
    assert await count(engine, waitlist_entries) == 1
    assert await count(engine, outbox_messages) == 1


async def test_one_bad_row_fails_only_its_own_caller(postgres_url: str) -> None:
    await truncate_all(postgres_url)
    engine = make_engine(postgres_url)
    try:
        waitlist = GroupCommitWaitlist(engine)
        good = [sign_up(waitlist, f"ok-{n}@example.com") for n in range(5)]
        bad = sign_up(waitlist, "x" * 300 + "@example.com")  # longer than the column
        results = await asyncio.gather(*good, bad, return_exceptions=True)
        await waitlist.close()
        assert results[:5] == [True] * 5
        assert isinstance(results[5], DBAPIError)
        assert await count(engine, waitlist_entries) == 5
        assert await count(engine, outbox_messages) == 5
    finally:
        await engine.dispose()


async def test_two_processes_writing_the_same_addresses_do_not_deadlock(
    postgres_url: str,
) -> None:
    """Two writers (as two API processes would have) take the same addresses in opposite
    orders at once: each address is new for exactly one of them, and PostgreSQL records no
    deadlock (each group takes its row locks in address order)."""
    await truncate_all(postgres_url)
    engines = [make_engine(postgres_url) for _ in range(2)]
    writers = [GroupCommitWaitlist(engine) for engine in engines]

    async def deadlocks() -> int:
        async with engines[0].connect() as conn:
            found = await conn.scalar(
                sa.text("SELECT deadlocks FROM pg_stat_database WHERE datname = current_database()")
            )
        return int(found or 0)

    try:
        before = await deadlocks()
        emails = [f"both-{n}@example.com" for n in range(60)]
        for _ in range(3):  # several rounds, so groups of many addresses meet
            await truncate_all(postgres_url)
            first = [sign_up(writers[0], email) for email in emails]
            second = [sign_up(writers[1], email) for email in reversed(emails)]
            results = await asyncio.gather(*first, *second)
            news = dict.fromkeys(emails, 0)
            for email, new in zip(emails + emails[::-1], results, strict=True):
                news[email] += new
            assert set(news.values()) == {1}  # new for exactly one writer
            assert await count(engines[0], waitlist_entries) == 60
            assert await count(engines[0], outbox_messages) == 60
        for writer in writers:
            await writer.close()
        assert await deadlocks() == before
    finally:
        for engine in engines:
            await engine.dispose()
