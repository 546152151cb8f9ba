"""SqlActionTokens on SQLite and PostgreSQL: a token redeems only under the credential
generation it was issued in, and only once."""

from __future__ import annotations

import asyncio
from dataclasses import replace
from datetime import UTC, datetime, timedelta

from sqlalchemy.ext.asyncio import AsyncEngine

from orbsurv.adapters.persistence.account import SqlActionTokens
from orbsurv.adapters.persistence.unit_of_work import SqlUnitOfWork
from orbsurv.adapters.persistence.users import SqlUserRepository
from orbsurv.domain.identity import Role, TokenPurpose, User, new_id

T0 = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)
KEYS = {purpose: purpose.value.encode() * 4 for purpose in TokenPurpose}
RESET = (TokenPurpose.RESET_PASSWORD,)


async def _user(engine: AsyncEngine) -> User:
    user = User(
        id=new_id(),
        email="ada@example.com",
        password_hash="$argon2id$old",
        role=Role.USER,
        created_at=T0,
        updated_at=T0,
    )
    async with engine.connect() as conn:
        await SqlUserRepository(conn).add(user)
        await SqlUnitOfWork(conn).commit()
    return user


async def _issue(engine: AsyncEngine, user: User) -> str:
    async with engine.connect() as conn:
        token = await SqlActionTokens(conn, KEYS).issue(
            TokenPurpose.RESET_PASSWORD, user.id, T0, T0 + timedelta(hours=1)
        )
        await SqlUnitOfWork(conn).commit()
    return token


async def _change(engine: AsyncEngine, user_id: str, **fields: object) -> None:
    async with engine.connect() as conn:
        users = SqlUserRepository(conn)
        stored = await users.get(user_id)
        assert stored is not None
        await users.update(replace(stored, **fields))  # type: ignore[arg-type]
        await SqlUnitOfWork(conn).commit()


async def _redeem(engine: AsyncEngine, token: str) -> bool:
    async with engine.connect() as conn:
        spent = await SqlActionTokens(conn, KEYS).consume(RESET, token, T0)
        await SqlUnitOfWork(conn).commit()
    return spent is not None


async def test_a_credential_change_ends_earlier_tokens(engine: AsyncEngine) -> None:
    user = await _user(engine)
    for change in (
        {"password_hash": "$argon2id$new"},
        {"email": "b@example.com"},
        {"role": Role.ADMIN},  # the route promises it: "ends their outstanding mail links"
        {"is_active": False},
    ):
        before = await _issue(engine, user)
        await _change(engine, user.id, **change)
        after = await _issue(engine, user)
        assert not await _redeem(engine, before), change
        assert await _redeem(engine, after), change
        assert not await _redeem(engine, after)  # single use


async def test_other_changes_keep_tokens(engine: AsyncEngine) -> None:
    user = await _user(engine)
    token = await _issue(engine, user)
    await _change(engine, user.id, name="Ada", email_verified=True)
    assert await _redeem(engine, token)


async def _issue_within(engine: AsyncEngine, user: User, now: datetime, limit: int) -> str | None:
    async with engine.connect() as conn:
        token = await SqlActionTokens(conn, KEYS).issue_within(
            TokenPurpose.RESET_PASSWORD,
            user.id,
            now,
            now + timedelta(minutes=30),
            since=now - timedelta(hours=1),
            limit=limit,
        )
        await SqlUnitOfWork(conn).commit()
    return token


async def test_issue_within_counts_the_tokens_sent_and_keeps_one_link_live(
    engine: AsyncEngine,
) -> None:
    user = await _user(engine)
    sent = [await _issue_within(engine, user, T0, limit=3) for _ in range(5)]
    assert [token is not None for token in sent] == [True, True, True, False, False]
    # Once every link sent has expired, the spent budget still lets a new one out: the owner
    # always holds a working link.
    later = T0 + timedelta(minutes=31)
    fresh = await _issue_within(engine, user, later, limit=3)
    assert fresh is not None
    assert await _issue_within(engine, user, later, limit=3) is None
    # A credential change kills the live links: a new one may go out.
    await _change(engine, user.id, password_hash="$argon2id$new")
    assert await _issue_within(engine, user, later, limit=3) is not None


async def test_concurrent_issues_never_pass_the_budget(engine: AsyncEngine) -> None:
    """Eight workers resolving requests for one account at once: the per-account lock makes
    the count and the insert one step, so exactly ``limit`` links go out."""
    user = await _user(engine)
    results = await asyncio.gather(*(_issue_within(engine, user, T0, limit=3) for _ in range(8)))
    assert sum(token is not None for token in results) == 3


async def test_issue_within_keeps_the_new_address_of_an_email_change(
    engine: AsyncEngine,
) -> None:
    """An email-change link issued under the budget carries the address it confirms."""
    user = await _user(engine)
    async with engine.connect() as conn:
        token = await SqlActionTokens(conn, KEYS).issue_within(
            TokenPurpose.CHANGE_EMAIL,
            user.id,
            T0,
            T0 + timedelta(hours=24),
            since=T0 - timedelta(hours=1),
            limit=5,
            new_email="new@example.com",
        )
        await SqlUnitOfWork(conn).commit()
    assert token is not None
    async with engine.connect() as conn:
        spent = await SqlActionTokens(conn, KEYS).consume((TokenPurpose.CHANGE_EMAIL,), token, T0)
        await SqlUnitOfWork(conn).commit()
    assert spent is not None
    assert spent.new_email == "new@example.com"
