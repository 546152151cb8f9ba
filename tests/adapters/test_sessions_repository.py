"""SqlSessionRepository on SQLite and PostgreSQL: rotation has exactly one winner."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta

import pytest
import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncEngine

from orbsurv.adapters.persistence.sessions import (
    SqlSessionRepository,
    SqlSessionRevocations,
    SqlSessionStatus,
)
from orbsurv.adapters.persistence.users import SqlUserRepository
from orbsurv.domain.errors import DependencyUnavailable
from orbsurv.domain.identity import Role, Scope, Session, User, new_id

NOW = datetime(2026, 5, 1, 9, 0, tzinfo=UTC)
LATER = NOW + timedelta(days=30)


async def seed_session(
    engine: AsyncEngine, *, expires_at: datetime = LATER, refresh_hash: str = "h0"
) -> Session:
    user = User(
        id=new_id(),
        email=f"{new_id()}@example.com",
        password_hash="x",
        role=Role.USER,
        created_at=NOW,
        updated_at=NOW,
    )
    session = Session(
        id=new_id(),
        user_id=user.id,
        scope=Scope.USER,
        amr=("pwd",),
        created_at=NOW,
        last_used_at=NOW,
        expires_at=expires_at,
        ip="203.0.113.9",
        user_agent="pytest",
    )
    async with engine.connect() as conn:
        await SqlUserRepository(conn).add(user)
        await SqlSessionRepository(conn).add(session, refresh_hash)
        await conn.commit()
    return session


async def test_round_trip(engine: AsyncEngine) -> None:
    session = await seed_session(engine)
    async with engine.connect() as conn:
        repo = SqlSessionRepository(conn)
        assert await repo.get(session.id) == session
        assert [s.id for s in await repo.list_live(session.user_id, NOW)] == [session.id]
        record = await repo.find_token("h0")
        assert record is not None
        assert record.session_id == session.id
        assert record.used_at is None
        assert await repo.find_token("unknown") is None


async def test_rotation_spends_the_token_once(engine: AsyncEngine) -> None:
    await seed_session(engine)
    later = NOW + timedelta(minutes=1)
    async with engine.connect() as conn:
        repo = SqlSessionRepository(conn)
        won = await repo.rotate("h0", "h1", "sealed", later, LATER + timedelta(days=1))
        assert won is not None
        assert won.last_used_at == later
        assert won.expires_at == LATER + timedelta(days=1)
        assert await repo.rotate("h0", "h2", "sealed", later, LATER) is None  # spent
        parent = await repo.find_token("h0")
        assert parent is not None
        assert parent.used_at == later
        assert parent.child_hash == "h1"
        assert parent.sealed_child == "sealed"
        assert not parent.child_used
        assert await repo.rotate("h1", "h2", "sealed2", later, LATER) is not None
        parent = await repo.find_token("h0")
        assert parent is not None
        assert parent.child_used
        await conn.commit()


async def test_revoked_and_expired_sessions_do_not_rotate(engine: AsyncEngine) -> None:
    revoked = await seed_session(engine)
    expired = await seed_session(
        engine, expires_at=NOW + timedelta(seconds=1), refresh_hash="h-expired"
    )
    async with engine.connect() as conn:
        repo = SqlSessionRepository(conn)
        assert await repo.revoke(revoked.id, NOW, "test")
        assert not await repo.revoke(revoked.id, NOW, "test")  # already revoked
        later = NOW + timedelta(seconds=5)
        assert await repo.rotate("h0", "hx", "s", later, LATER) is None  # revoked
        assert await repo.rotate("h-expired", "hy", "s", later, LATER) is None  # expired
        assert await repo.list_live(expired.user_id, later) == []
        await conn.commit()
    status = SqlSessionStatus(engine)
    assert await status.is_revoked(revoked.id)
    assert not await status.is_revoked(expired.id)
    assert await status.is_revoked("no-such-session")


async def test_revoke_all_returns_what_it_revoked(engine: AsyncEngine) -> None:
    first = await seed_session(engine)
    async with engine.connect() as conn:
        repo = SqlSessionRepository(conn)
        second = Session(
            **{**first.__dict__}
            if hasattr(first, "__dict__")
            else {
                f: getattr(first, f)
                for f in first.__slots__  # type: ignore[attr-defined]
            }
        )
        second.id = new_id()
        await repo.add(second, "h-second")
        revoked = await repo.revoke_all(first.user_id, NOW, "everywhere")
        assert sorted(revoked) == sorted([first.id, second.id])
        assert await repo.revoke_all(first.user_id, NOW, "everywhere") == []
        await conn.commit()


@pytest.mark.parametrize("contenders", [2, 8])
async def test_parallel_rotation_has_exactly_one_winner(
    engine: AsyncEngine, contenders: int
) -> None:
    await seed_session(engine)
    later = NOW + timedelta(minutes=1)

    async def contend(n: int) -> bool:
        async with engine.connect() as conn:
            won = await SqlSessionRepository(conn).rotate("h0", f"child-{n}", "s", later, LATER)
            await conn.commit()
            return won is not None

    results = await asyncio.gather(*(contend(n) for n in range(contenders)))
    assert sum(results) == 1


async def test_recent_revocations_are_read_since_a_cutoff(engine: AsyncEngine) -> None:
    early = await seed_session(engine, refresh_hash="e")
    late = await seed_session(engine, refresh_hash="l")
    live = await seed_session(engine, refresh_hash="v")
    async with engine.connect() as conn:
        repo = SqlSessionRepository(conn)
        await repo.revoke(early.id, NOW + timedelta(seconds=1), "logout")
        await repo.revoke(late.id, NOW + timedelta(seconds=10), "password_changed")
        await conn.commit()
    revocations = SqlSessionRevocations(engine)
    found = await revocations.revoked_since(NOW + timedelta(seconds=5))
    assert {(r.session_id, r.revoked_at) for r in found} >= {(late.id, NOW + timedelta(seconds=10))}
    assert early.id not in {r.session_id for r in found}
    everything = {r.session_id for r in await revocations.revoked_since(NOW)}
    assert {early.id, late.id} <= everything
    assert live.id not in everything
    assert all(r.revoked_at.tzinfo is not None for r in found)


@pytest.mark.postgres
async def test_an_unreachable_database_is_dependency_unavailable() -> None:
    from sqlalchemy.ext.asyncio import create_async_engine

    from tests.services import free_port

    engine = create_async_engine(f"postgresql+asyncpg://postgres@127.0.0.1:{free_port()}/none")
    try:
        with pytest.raises(DependencyUnavailable):
            await SqlSessionStatus(engine).is_revoked("any")
        with pytest.raises(DependencyUnavailable):
            await SqlSessionRevocations(engine).revoked_since(NOW)
    finally:
        await engine.dispose()


async def test_rotation_never_extends_a_session_past_its_absolute_lifetime(
    engine: AsyncEngine,
) -> None:
    """The new expiry is min(sliding, created_at + lifetime), decided in the store; a session
    past its lifetime (a dev one past its shorter one) matches nothing."""
    await seed_session(engine)
    lifetime, dev_lifetime = timedelta(hours=2), timedelta(minutes=30)
    async with engine.connect() as conn:
        repo = SqlSessionRepository(conn)
        at = NOW + timedelta(minutes=90)
        won = await repo.rotate(
            "h0",
            "h1",
            "s",
            at,
            at + timedelta(hours=1),
            lifetime=lifetime,
            dev_lifetime=dev_lifetime,
        )
        assert won is not None
        assert won.expires_at == NOW + lifetime  # not at + 1 h
        late = NOW + lifetime
        assert (
            await repo.rotate("h1", "h2", "s", late, LATER, lifetime=lifetime) is None
        )  # at its absolute end, though unexpired for a sliding rule
        await conn.commit()


async def test_a_dev_session_rotates_only_within_its_shorter_lifetime(engine: AsyncEngine) -> None:
    session = await seed_session(engine)
    async with engine.connect() as conn:
        await conn.execute(
            sa.text("UPDATE sessions SET scope = 'dev' WHERE id = :id"), {"id": session.id}
        )
        await conn.commit()
        repo = SqlSessionRepository(conn)
        lifetime, dev_lifetime = timedelta(days=30), timedelta(hours=12)
        early = NOW + timedelta(hours=11)
        won = await repo.rotate(
            "h0", "h1", "s", early, LATER, lifetime=lifetime, dev_lifetime=dev_lifetime
        )
        assert won is not None
        assert won.expires_at == NOW + dev_lifetime
        late = NOW + timedelta(hours=12, seconds=1)
        assert (
            await repo.rotate(
                "h1", "h2", "s", late, LATER, lifetime=lifetime, dev_lifetime=dev_lifetime
            )
            is None
        )
        await conn.commit()
