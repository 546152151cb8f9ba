"""The SQL outbox and action tokens on SQLite and PostgreSQL; delivery against a real SMTP
server: retries with backoff, exactly once through an outage, two workers without duplicates."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from datetime import UTC, datetime, timedelta

import pytest
import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncEngine

from orbsurv.adapters.mail.smtp import SmtpMailer
from orbsurv.adapters.persistence.account import SqlActionTokens
from orbsurv.adapters.persistence.outbox import SqlOutbox
from orbsurv.adapters.persistence.tables import outbox_messages
from orbsurv.adapters.persistence.unit_of_work import SqlUnitOfWork
from orbsurv.adapters.persistence.users import SqlUserRepository
from orbsurv.application.outbox import DeliverOutbox, DeliveryPolicy
from orbsurv.application.ports import OutgoingEmail
from orbsurv.domain.identity import Role, TokenPurpose, User, new_id
from tests.conftest import SmtpServer
from tests.fakes.identity import FakeClock

T0 = datetime(2026, 7, 1, 8, 0, tzinfo=UTC)
KEYS = {purpose: f"key-{purpose.value}".encode() for purpose in TokenPurpose}


def message(n: int) -> OutgoingEmail:
    return OutgoingEmail(to=f"user{n}@example.com", subject=f"Message {n}", text=f"Body {n}")


async def enqueue(engine: AsyncEngine, count: int, clock: FakeClock) -> None:
    async with engine.connect() as conn:
        outbox = SqlOutbox(conn, clock)
        for n in range(count):
            await outbox.enqueue(message(n))
        await conn.commit()


async def statuses(engine: AsyncEngine) -> dict[str, int]:
    async with engine.connect() as conn:
        rows = await conn.execute(
            sa.select(outbox_messages.c.status, sa.func.count()).group_by(outbox_messages.c.status)
        )
        return {row[0]: row[1] for row in rows}


async def test_claims_are_leased(engine: AsyncEngine) -> None:
    clock = FakeClock(T0)
    await enqueue(engine, 3, clock)
    async with engine.connect() as conn:
        store = SqlOutbox(conn, clock)
        first = await store.claim(T0, T0 + timedelta(minutes=2), limit=2)
        await conn.commit()
        assert len(first) == 2
        second = await store.claim(T0, T0 + timedelta(minutes=2), limit=10)
        await conn.commit()
        assert len(second) == 1  # the leased two are invisible
        await store.mark_sent(first[0].id, T0)
        await conn.commit()
        later = T0 + timedelta(minutes=3)  # the lease of the unsent one ran out
        again = await store.claim(later, later + timedelta(minutes=2), limit=10)
        await conn.commit()
    assert {q.id for q in again} == {first[1].id, second[0].id}


async def test_failures_back_off_then_die(engine: AsyncEngine) -> None:
    clock = FakeClock(T0)
    await enqueue(engine, 1, clock)
    async with engine.connect() as conn:
        store = SqlOutbox(conn, clock)
        [queued] = await store.claim(T0, T0 + timedelta(minutes=2), 10)
        await store.mark_failed(queued.id, "refused", 1, T0 + timedelta(seconds=30))
        await conn.commit()
        assert await store.claim(T0 + timedelta(seconds=29), T0 + timedelta(minutes=5), 10) == []
        [retried] = await store.claim(T0 + timedelta(seconds=30), T0 + timedelta(minutes=5), 10)
        assert retried.attempts == 1
        await store.mark_failed(retried.id, "refused again", 2, None)
        await conn.commit()
    assert await statuses(engine) == {"dead": 1}


async def test_action_tokens_are_single_use_and_purpose_bound(engine: AsyncEngine) -> None:
    user = User(
        id=new_id(),
        email="t@example.com",
        password_hash="x",
        role=Role.USER,
        created_at=T0,
        updated_at=T0,
    )
    async with engine.connect() as conn:
        await SqlUserRepository(conn).add(user)
        tokens = SqlActionTokens(conn, KEYS)
        reset = await tokens.issue(
            TokenPurpose.RESET_PASSWORD, user.id, T0, T0 + timedelta(minutes=30)
        )
        change = await tokens.issue(
            TokenPurpose.CHANGE_EMAIL,
            user.id,
            T0,
            T0 + timedelta(hours=1),
            new_email="n@example.com",
        )
        await conn.commit()
        verify_kinds = (TokenPurpose.VERIFY_EMAIL, TokenPurpose.CHANGE_EMAIL)
        assert await tokens.consume(verify_kinds, reset, T0) is None  # a reset token cannot verify
        late = T0 + timedelta(minutes=31)
        assert await tokens.consume((TokenPurpose.RESET_PASSWORD,), reset, late) is None  # expired
        spent = await tokens.consume(verify_kinds, change, T0)
        assert spent is not None
        assert spent.purpose is TokenPurpose.CHANGE_EMAIL
        assert spent.new_email == "n@example.com"
        assert await tokens.consume(verify_kinds, change, T0) is None  # used
        assert await tokens.consume((TokenPurpose.RESET_PASSWORD,), reset, T0) is not None
        assert await tokens.consume(verify_kinds, "", T0) is None
        assert await tokens.consume(verify_kinds, "x" * 1000, T0) is None


def deliverer(engine: AsyncEngine, smtp: SmtpServer, clock: FakeClock) -> Callable[[], object]:
    mailer = SmtpMailer(
        host=smtp.host, port=smtp.port, sender="no-reply@orbsurv.test", security="plain", timeout=5
    )

    async def once() -> int:
        async with engine.connect() as conn:
            deliver = DeliverOutbox(
                SqlOutbox(conn, clock),
                mailer,
                SqlUnitOfWork(conn),
                clock,
                DeliveryPolicy(batch_size=5),
            )
            return await deliver()

    return once


async def test_an_outage_delays_but_never_loses_or_doubles_mail(
    engine: AsyncEngine, smtp_server: SmtpServer
) -> None:
    clock = FakeClock(T0)
    await enqueue(engine, 3, clock)
    deliver = deliverer(engine, smtp_server, clock)
    smtp_server.refuse = True
    assert await deliver() == 3  # type: ignore[misc]
    assert smtp_server.messages == []
    assert await deliver() == 0  # type: ignore[misc]  # nothing is due during the backoff
    smtp_server.refuse = False
    clock.advance(seconds=31)
    assert await deliver() == 3  # type: ignore[misc]
    assert await deliver() == 0  # type: ignore[misc]
    assert sorted(m["Subject"] for m in smtp_server.messages) == [
        "Message 0",
        "Message 1",
        "Message 2",
    ]
    assert await statuses(engine) == {"sent": 3}


async def test_two_workers_deliver_each_message_once(
    engine: AsyncEngine, smtp_server: SmtpServer
) -> None:
    clock = FakeClock(T0)
    await enqueue(engine, 12, clock)
    first, second = deliverer(engine, smtp_server, clock), deliverer(engine, smtp_server, clock)

    async def drain(deliver: Callable[[], object]) -> None:
        while await deliver():  # type: ignore[misc]
            pass

    await asyncio.gather(drain(first), drain(second))
    subjects = [m["Subject"] for m in smtp_server.messages]
    assert sorted(subjects) == sorted(f"Message {n}" for n in range(12))  # all, none twice
    assert await statuses(engine) == {"sent": 12}


@pytest.mark.parametrize("attempts", [8])
async def test_the_policy_gives_up(attempts: int) -> None:
    policy = DeliveryPolicy()
    assert policy.max_attempts == attempts
    delays = [policy.retry_delay(n).total_seconds() for n in range(1, 9)]
    assert delays[:3] == [30, 60, 120]
    assert max(delays) <= 3600


async def test_one_bad_message_never_holds_back_the_batch(
    engine: AsyncEngine, smtp_server: SmtpServer
) -> None:
    """A message the mailer cannot even build (CR/LF in a header, stored before the edge refused
    it) fails alone, backs off and dies after the last attempt; the others go out at once."""
    clock = FakeClock(T0)
    async with engine.connect() as conn:
        outbox = SqlOutbox(conn, clock)
        await outbox.enqueue(message(0))
        bad = OutgoingEmail(to="v@example.com", subject="Hi\r\nBcc: x@example.com", text="b")
        await outbox.enqueue(bad)
        await outbox.enqueue(message(2))
        await conn.commit()
    deliver = deliverer(engine, smtp_server, clock)
    assert await deliver() == 3  # type: ignore[misc]
    assert sorted(m["Subject"] for m in smtp_server.messages) == ["Message 0", "Message 2"]
    assert all(m["Bcc"] is None for m in smtp_server.messages)
    async with engine.connect() as conn:
        row = (
            await conn.execute(
                sa.select(outbox_messages).where(outbox_messages.c.recipient == "v@example.com")
            )
        ).one()
    assert row.status == "pending"
    assert row.attempts == 1
    assert "ValueError" in row.last_error
    assert await deliver() == 0  # type: ignore[misc]  # backing off
    policy = DeliveryPolicy()
    for attempt in range(1, policy.max_attempts):
        clock.advance(seconds=policy.retry_delay(attempt).total_seconds())
        assert await deliver() == 1  # type: ignore[misc]
    assert await statuses(engine) == {"sent": 2, "dead": 1}
    assert len(smtp_server.messages) == 2
