"""SqlUserRepository's conditional writes on SQLite and PostgreSQL: a write based on a stale read
is refused, a sign-in writes only what it owns and only over the hash it verified, and a TOTP step
is spent once."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime

import pytest
from sqlalchemy.ext.asyncio import AsyncEngine

from orbsurv.adapters.persistence.unit_of_work import SqlUnitOfWork
from orbsurv.adapters.persistence.users import SqlUserRepository
from orbsurv.domain.errors import Conflict
from orbsurv.domain.identity import Role, User, new_id

T0 = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)
T1 = datetime(2026, 3, 1, 13, 0, tzinfo=UTC)


async def _stored(engine: AsyncEngine, **fields: object) -> User:
    user = User(
        id=new_id(),
        email="ada@example.com",
        password_hash="$argon2id$old",
        role=Role.USER,
        created_at=T0,
        updated_at=T0,
    )
    user = replace(user, **fields)  # type: ignore[arg-type]
    async with engine.connect() as conn:
        await SqlUserRepository(conn).add(user)
        await SqlUnitOfWork(conn).commit()
    return user


async def _get(engine: AsyncEngine, user_id: str) -> User:
    async with engine.connect() as conn:
        user = await SqlUserRepository(conn).get(user_id)
    assert user is not None
    return user


async def test_a_write_based_on_a_stale_read_is_refused(engine: AsyncEngine) -> None:
    user = await _stored(engine)
    first, second = await _get(engine, user.id), await _get(engine, user.id)
    async with engine.connect() as conn:
        first.is_active = False
        await SqlUserRepository(conn).update(first)
        await SqlUnitOfWork(conn).commit()
    assert first.version == second.version + 1
    async with engine.connect() as conn:
        second.name = "Ada"  # would write is_active=True back
        with pytest.raises(Conflict) as refused:
            await SqlUserRepository(conn).update(second)
    assert refused.value.code == "concurrent_update"
    stored = await _get(engine, user.id)
    assert (stored.is_active, stored.name) == (False, None)


async def test_update_never_writes_last_login_back(engine: AsyncEngine) -> None:
    user = await _stored(engine)
    stale = await _get(engine, user.id)
    async with engine.connect() as conn:
        assert await SqlUserRepository(conn).record_login(user.id, "$argon2id$old", T1)
        await SqlUnitOfWork(conn).commit()
    async with engine.connect() as conn:
        stale.name = "Ada"
        await SqlUserRepository(conn).update(stale)  # a sign-in does not bump the version
        await SqlUnitOfWork(conn).commit()
    stored = await _get(engine, user.id)
    assert (stored.name, stored.last_login_at) == ("Ada", T1)


async def test_a_sign_in_writes_only_over_the_hash_it_verified(engine: AsyncEngine) -> None:
    user = await _stored(engine)
    async with engine.connect() as conn:
        users = SqlUserRepository(conn)
        assert not await users.record_login(user.id, "$argon2id$other", T1, "$argon2id$rehash")
        assert await users.record_login(user.id, "$argon2id$old", T1, "$argon2id$rehash")
        await SqlUnitOfWork(conn).commit()
    assert (await _get(engine, user.id)).password_hash == "$argon2id$rehash"
    inactive = await _stored(engine, email="off@example.com", is_active=False)
    async with engine.connect() as conn:
        assert not await SqlUserRepository(conn).record_login(inactive.id, "$argon2id$old", T1)


async def test_a_totp_step_is_spent_once(engine: AsyncEngine) -> None:
    user = await _stored(engine, otp_enabled=True, otp_secret="SECRET")
    async with engine.connect() as conn:
        users = SqlUserRepository(conn)
        assert await users.claim_otp_step(user.id, "SECRET", 100)
        assert not await users.claim_otp_step(user.id, "SECRET", 100)
        assert not await users.claim_otp_step(user.id, "SECRET", 99)
        assert not await users.claim_otp_step(user.id, "OTHER", 101)
        assert await users.claim_otp_step(user.id, "SECRET", 101)
        await SqlUnitOfWork(conn).commit()
    assert (await _get(engine, user.id)).otp_last_step == 101
