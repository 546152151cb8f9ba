"""SqlUserRepository on SQLite and PostgreSQL, plus keyset paging over the same rows."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
import sqlalchemy as sa
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncEngine

from orbsurv.adapters.persistence.keyset import newest_first
from orbsurv.adapters.persistence.tables import users
from orbsurv.adapters.persistence.unit_of_work import SqlUnitOfWork
from orbsurv.adapters.persistence.users import SqlUserLookup, SqlUserRepository
from orbsurv.domain.errors import Conflict
from orbsurv.domain.identity import Role, User, new_id
from orbsurv.domain.pagination import Cursor, PageRequest

T0 = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)


def make_user(
    email: str, *, at: datetime = T0, username: str | None = None, id: str | None = None
) -> User:
    return User(
        id=id or new_id(),
        email=email,
        password_hash="$argon2id$fake",
        role=Role.USER,
        created_at=at,
        updated_at=at,
        username=username,
    )


async def test_add_and_read_back(engine: AsyncEngine) -> None:
    user = make_user("ada@example.com", username="ada")
    async with engine.connect() as conn:
        await SqlUserRepository(conn).add(user)
        await SqlUnitOfWork(conn).commit()
    async with engine.connect() as conn:
        repo = SqlUserRepository(conn)
        assert await repo.get(user.id) == user
        assert await repo.get_by_email("ada@example.com") == user
        assert await repo.get("missing") is None
        loaded = await repo.get(user.id)
        assert loaded is not None
        assert loaded.created_at.tzinfo is not None


async def test_uncommitted_work_is_rolled_back(engine: AsyncEngine) -> None:
    async with engine.connect() as conn:
        await SqlUserRepository(conn).add(make_user("ghost@example.com"))
    async with engine.connect() as conn:
        assert await SqlUserRepository(conn).get_by_email("ghost@example.com") is None


@pytest.mark.parametrize(
    ("second", "code"),
    [
        ({"email": "ada@example.com"}, "email_taken"),
        ({"email": "b@example.com", "username": "ada"}, "username_taken"),
        # The words in the quoted row do not decide the code: the constraint does.
        ({"email": "ada@example.com", "username": "username"}, "email_taken"),
    ],
)
async def test_duplicates_are_conflicts_and_the_transaction_survives(
    engine: AsyncEngine, second: dict[str, str], code: str
) -> None:
    async with engine.connect() as conn:
        repo = SqlUserRepository(conn)
        await repo.add(make_user("ada@example.com", username="ada"))
        with pytest.raises(Conflict) as caught:
            await repo.add(make_user(second["email"], username=second.get("username")))
        assert caught.value.code == code
        await repo.add(make_user("c@example.com"))  # the transaction is still usable
        await SqlUnitOfWork(conn).commit()
    async with engine.connect() as conn:
        count = (await conn.execute(sa.select(sa.func.count()).select_from(users))).scalar_one()
    assert count == 2


async def test_other_integrity_errors_are_not_reported_as_a_taken_email(
    engine: AsyncEngine,
) -> None:
    async with engine.connect() as conn:
        repo = SqlUserRepository(conn)
        user = make_user("ada@example.com")
        await repo.add(user)
        with pytest.raises(IntegrityError):  # the same id again: a fault of ours, not a 409
            await repo.add(make_user("other@example.com", id=user.id))


async def seed(engine: AsyncEngine, n: int) -> list[User]:
    # Pairs share a timestamp so the id tie-break is exercised.
    made = [make_user(f"u{i}@example.com", at=T0 + timedelta(seconds=i // 2)) for i in range(n)]
    async with engine.connect() as conn:
        repo = SqlUserRepository(conn)
        for user in made:
            await repo.add(user)
        await conn.commit()
    return sorted(made, key=lambda u: (u.created_at, u.id), reverse=True)


async def test_pages_are_newest_first_with_a_stable_tie_break(engine: AsyncEngine) -> None:
    expected = await seed(engine, 7)
    async with engine.connect() as conn:
        repo = SqlUserRepository(conn)
        pages = [await repo.list(PageRequest(page=p, page_size=3)) for p in (1, 2, 3, 4)]
    assert [u.id for page in pages for u in page.items] == [u.id for u in expected]
    assert pages[0].total == 7
    assert pages[0].pages == 3
    assert pages[3].items == []


async def test_keyset_paging_matches_offset_order(engine: AsyncEngine) -> None:
    expected = await seed(engine, 9)
    seen: list[str] = []
    cursor: Cursor | None = None
    async with engine.connect() as conn:
        for _ in range(10):
            rows, cursor = await newest_first(
                conn,
                sa.select(users),
                created_at=users.c.created_at,
                id_=users.c.id,
                cursor=cursor,
                limit=4,
            )
            seen.extend(row.id for row in rows)
            if cursor is None:
                break
    assert seen == [u.id for u in expected]


async def test_profile_lookup_never_queues_behind_a_writer(engine: AsyncEngine) -> None:
    """The authenticated read path reads while another transaction holds the write lock.

    On SQLite a connection that began IMMEDIATE would wait in the busy handler until the writer
    commits (here: never, so "database is locked" after the busy timeout); under load that wait
    was the one-second stall of GET /users/me.
    """
    user = make_user("reader@example.com")
    async with engine.connect() as conn:
        await SqlUserRepository(conn).add(user)
        await SqlUnitOfWork(conn).commit()
    async with engine.connect() as writer:
        await writer.execute(users.update().where(users.c.id == user.id).values(name="Writing"))
        assert await SqlUserLookup(engine).get(user.id) == user  # the committed row
        await writer.rollback()
