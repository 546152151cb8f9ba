"""SqlOrderRepository, SqlRegistrationLinks and SqlOrderExport on SQLite and PostgreSQL."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta

import asyncpg
import pytest
import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncEngine

from orbsurv.adapters.persistence.orders import (
    SqlOrderExport,
    SqlOrderRepository,
    SqlRegistrationLinks,
)
from orbsurv.adapters.persistence.tables import order_links, users
from orbsurv.adapters.persistence.users import SqlUserRepository
from orbsurv.domain.identity import Role, User, new_id
from orbsurv.domain.orders import DEFAULT_PLANS, LinkState, Order, OrderStatus, PlanCatalogue
from orbsurv.domain.pagination import PageRequest

T0 = datetime(2026, 11, 30, 12, 0, tzinfo=UTC)
WEEK = timedelta(days=7)
KEY = b"k" * 32
CATALOGUE = PlanCatalogue.parse(DEFAULT_PLANS)


def order(email: str = "a@example.com", *, plan: str = "starter", at: datetime = T0) -> Order:
    return Order.place(
        order_id=new_id(), email=email, name="Ada", plan=CATALOGUE.find(plan), now=at
    )


async def add_user(engine: AsyncEngine, email: str) -> str:
    user = User(
        id=new_id(), email=email, password_hash="x", role=Role.USER, created_at=T0, updated_at=T0
    )
    async with engine.connect() as conn:
        await SqlUserRepository(conn).add(user)
        await conn.commit()
    return user.id


async def test_orders_round_trip_and_lists(engine: AsyncEngine) -> None:
    placed = [order(at=T0 + timedelta(minutes=n)) for n in range(3)]
    other = order("b@example.com", plan="perimeter", at=T0 + timedelta(minutes=9))
    async with engine.connect() as conn:
        repo = SqlOrderRepository(conn)
        for item in [*placed, other]:
            await repo.add(item)
        await conn.commit()
        assert await repo.get(placed[0].id) == placed[0]
        assert await repo.get("missing") is None
        assert await repo.latest_pending_for_email("a@example.com") == placed[2]
        assert await repo.latest_pending_for_email("nobody@example.com") is None
        first = await repo.page(None, None, 3)
        assert [o.id for o in first.items] == [other.id, placed[2].id, placed[1].id]
        assert first.next_cursor is not None
        rest = await repo.page(None, first.next_cursor, 3)
        assert [o.id for o in rest.items] == [placed[0].id]
        assert rest.next_cursor is None
        assert (await repo.page(OrderStatus.CANCELLED, None, 10)).items == []
    assert other.price_cents == 64900


async def test_the_latest_pending_order_skips_cancelled_ones(engine: AsyncEngine) -> None:
    placed = [order(at=T0 + timedelta(minutes=n)) for n in range(2)]
    async with engine.connect() as conn:
        repo = SqlOrderRepository(conn)
        for item in placed:
            await repo.add(item)
        assert await repo.cancel(placed[1].id, T0 + timedelta(hours=1))
        assert await repo.latest_pending_for_email("a@example.com") == placed[0]
        assert await repo.cancel(placed[0].id, T0 + timedelta(hours=1))
        assert await repo.latest_pending_for_email("a@example.com") is None


async def test_completing_links_pending_orders_only(engine: AsyncEngine) -> None:
    user_id = await add_user(engine, "a@example.com")
    first, second, gone = (order(at=T0 + timedelta(seconds=n)) for n in range(3))
    async with engine.connect() as conn:
        repo = SqlOrderRepository(conn)
        for item in (first, second, gone, order("b@example.com")):
            await repo.add(item)
        assert await repo.cancel(gone.id, T0 + timedelta(minutes=1))
        later = T0 + timedelta(minutes=2)
        assert await repo.complete_pending("a@example.com", user_id, later) == 2
        assert await repo.complete_pending("a@example.com", user_id, later) == 0
        await conn.commit()
        mine = await repo.mine(user_id, PageRequest(page=1, page_size=10))
        assert mine.total == 2
        assert [o.id for o in mine.items] == [second.id, first.id]
        assert all(o.status is OrderStatus.COMPLETED and o.updated_at == later for o in mine.items)
        cancelled = await repo.get(gone.id)
        assert cancelled is not None
        assert (cancelled.status, cancelled.user_id) == (OrderStatus.CANCELLED, None)
        assert (await repo.mine("someone-else", PageRequest())).total == 0


async def test_claiming_takes_the_unlinked_orders_of_the_address_only(
    engine: AsyncEngine,
) -> None:
    owner = await add_user(engine, "a@example.com")
    someone = await add_user(engine, "c@example.com")
    unlinked, cancelled = order(), order(at=T0 + timedelta(seconds=1))
    held = Order.place(
        order_id=new_id(),
        email="a@example.com",
        name="Ada",
        plan=CATALOGUE.find("starter"),
        now=T0,
        user_id=someone,
    )
    async with engine.connect() as conn:
        repo = SqlOrderRepository(conn)
        for item in (unlinked, cancelled, held, order("b@example.com")):
            await repo.add(item)
        assert await repo.cancel(cancelled.id, T0 + timedelta(minutes=1))
        later = T0 + timedelta(minutes=2)
        assert await repo.claim_unlinked("a@example.com", owner, later) == 2
        assert await repo.claim_unlinked("a@example.com", owner, later) == 0
        await conn.commit()
        mine = await repo.mine(owner, PageRequest(page=1, page_size=10))
        assert {(o.id, o.status) for o in mine.items} == {
            (unlinked.id, OrderStatus.PENDING),
            (cancelled.id, OrderStatus.CANCELLED),
        }
        assert all(o.updated_at == later for o in mine.items)
        assert [o.id for o in (await repo.mine(someone, PageRequest())).items] == [held.id]


async def test_the_unlinked_orders_of_a_verified_address_are_the_accounts(
    engine: AsyncEngine,
) -> None:
    """An order placed while its address was being verified may miss the claim (it read the
    account unverified, and the claim ran before it was stored): it is still listed."""
    user_id = await add_user(engine, "a@example.com")
    late, elsewhere = order(), order("b@example.com")
    async with engine.connect() as conn:
        repo = SqlOrderRepository(conn)
        for item in (late, elsewhere):
            await repo.add(item)
        await conn.commit()
        assert (await repo.mine(user_id, PageRequest())).total == 0  # not verified yet
        await conn.execute(users.update().where(users.c.id == user_id).values(email_verified=True))
        await conn.commit()
        mine = await repo.mine(user_id, PageRequest())
        assert (mine.total, [o.id for o in mine.items]) == (1, [late.id])


async def test_cancel_is_one_conditional_update(engine: AsyncEngine) -> None:
    placed = order()
    async with engine.connect() as conn:
        repo = SqlOrderRepository(conn)
        await repo.add(placed)
        assert await repo.cancel(placed.id, T0 + timedelta(minutes=1))
        assert not await repo.cancel(placed.id, T0 + timedelta(minutes=2))  # already cancelled
        assert not await repo.cancel("missing", T0)
        await conn.commit()
        stored = await repo.get(placed.id)
    assert stored is not None
    assert stored.status is OrderStatus.CANCELLED
    assert stored.updated_at == T0 + timedelta(minutes=1)


async def test_all_cancelled_at_is_the_last_cancellation_while_none_is_pending(
    engine: AsyncEngine,
) -> None:
    first, second = order(), order(plan="perimeter", at=T0 + timedelta(minutes=1))
    async with engine.connect() as conn:
        repo = SqlOrderRepository(conn)
        assert await repo.all_cancelled_at("a@example.com") is None  # no order at all
        await repo.add(first)
        await repo.add(second)
        await repo.cancel(first.id, T0 + timedelta(hours=1))
        assert await repo.all_cancelled_at("a@example.com") is None  # the second is pending
        await repo.cancel(second.id, T0 + timedelta(hours=2))
        assert await repo.all_cancelled_at("a@example.com") == T0 + timedelta(hours=2)
        assert await repo.all_cancelled_at("b@example.com") is None


async def test_a_live_link_issued_before_every_cancellation_is_replaced_once(
    engine: AsyncEngine,
) -> None:
    cancelled_at = T0 + timedelta(hours=1)
    async with engine.connect() as conn:
        links = SqlRegistrationLinks(conn, KEY)
        old = await links.issue("a@example.com", T0, T0 + WEEK)
        assert old
        later = T0 + timedelta(hours=2)
        new = await links.issue(
            "a@example.com", later, later + WEEK, replace_issued_by=cancelled_at
        )
        assert new
        # A concurrent order computed the same cancellation time: the new link is after it.
        again = T0 + timedelta(hours=3)
        assert await links.issue("a@example.com", again, again + WEEK, cancelled_at) is None
        await conn.commit()
        assert await links.find(old) is None  # the old token is gone with its hash
        found = await links.find(new)
        assert found is not None
        assert found.state(later) is LinkState.LIVE


@pytest.mark.parametrize("contenders", [2, 8])
async def test_parallel_orders_after_a_cancellation_issue_one_link(
    engine: AsyncEngine, contenders: int
) -> None:
    async with engine.connect() as conn:
        assert await SqlRegistrationLinks(conn, KEY).issue("a@example.com", T0, T0 + WEEK)
        await conn.commit()
    cancelled_at = T0 + timedelta(hours=1)

    async def contend(index: int) -> str | None:
        now = T0 + timedelta(hours=2, seconds=index)
        async with engine.connect() as conn:
            token = await SqlRegistrationLinks(conn, KEY).issue(
                "a@example.com", now, now + WEEK, replace_issued_by=cancelled_at
            )
            await conn.commit()
            return token

    results = await asyncio.gather(*(contend(i) for i in range(contenders)))
    assert sum(token is not None for token in results) == 1


async def test_one_live_link_per_address(engine: AsyncEngine) -> None:
    async with engine.connect() as conn:
        links = SqlRegistrationLinks(conn, KEY)
        token = await links.issue("a@example.com", T0, T0 + WEEK)
        assert token is not None
        assert await links.issue("a@example.com", T0 + timedelta(days=1), T0 + 2 * WEEK) is None
        other = await links.issue("b@example.com", T0, T0 + WEEK)
        assert other is not None
        assert other != token
        await conn.commit()
        found = await links.find(token)
        assert found is not None
        assert (found.email, found.state(T0)) == ("a@example.com", LinkState.LIVE)
        stored = (await conn.execute(sa.select(order_links.c.token_hash))).scalars().all()
        assert token not in stored  # only the keyed hash is kept
        assert await SqlRegistrationLinks(conn, b"another key").find(token) is None


async def test_a_token_is_spent_once_and_never_after_expiry(engine: AsyncEngine) -> None:
    async with engine.connect() as conn:
        links = SqlRegistrationLinks(conn, KEY)
        token = await links.issue("a@example.com", T0, T0 + WEEK)
        expiring = await links.issue("b@example.com", T0, T0 + WEEK)
        assert token
        assert expiring
        assert await links.consume("not-a-token", T0) is None
        assert await links.consume(expiring, T0 + WEEK) is None  # expiry is exclusive
        assert await links.consume(token, T0 + timedelta(hours=1)) == "a@example.com"
        assert await links.consume(token, T0 + timedelta(hours=2)) is None
        await conn.commit()
        spent = await links.find(token)
        assert spent is not None
        assert spent.state(T0) is LinkState.USED
        stale = await links.find(expiring)
        assert stale is not None
        assert stale.state(T0 + WEEK) is LinkState.EXPIRED


async def test_a_used_or_expired_link_is_replaced_by_a_new_one(engine: AsyncEngine) -> None:
    async with engine.connect() as conn:
        links = SqlRegistrationLinks(conn, KEY)
        used = await links.issue("a@example.com", T0, T0 + WEEK)
        expired = await links.issue("b@example.com", T0, T0 + WEEK)
        assert used
        assert expired
        assert await links.consume(used, T0)
        fresh_a = await links.issue("a@example.com", T0 + timedelta(hours=1), T0 + 2 * WEEK)
        fresh_b = await links.issue("b@example.com", T0 + WEEK, T0 + 2 * WEEK)
        assert fresh_a
        assert fresh_b
        await conn.commit()
        assert await links.find(used) is None  # the old hash is gone with its row
        assert await links.find(expired) is None
        renewed = await links.find(fresh_a)
        assert renewed is not None
        assert renewed.state(T0 + timedelta(hours=2)) is LinkState.LIVE


@pytest.mark.parametrize("contenders", [2, 8])
async def test_parallel_orders_issue_one_link(engine: AsyncEngine, contenders: int) -> None:
    async def contend() -> str | None:
        async with engine.connect() as conn:
            token = await SqlRegistrationLinks(conn, KEY).issue("a@example.com", T0, T0 + WEEK)
            await conn.commit()
            return token

    results = await asyncio.gather(*(contend() for _ in range(contenders)))
    assert sum(token is not None for token in results) == 1


@pytest.mark.parametrize("contenders", [2, 8])
async def test_parallel_spending_has_one_winner(engine: AsyncEngine, contenders: int) -> None:
    async with engine.connect() as conn:
        token = await SqlRegistrationLinks(conn, KEY).issue("a@example.com", T0, T0 + WEEK)
        await conn.commit()
    assert token is not None

    async def contend() -> str | None:
        async with engine.connect() as conn:
            email = await SqlRegistrationLinks(conn, KEY).consume(token, T0 + timedelta(hours=1))
            await conn.commit()
            return email

    results = await asyncio.gather(*(contend() for _ in range(contenders)))
    assert results.count("a@example.com") == 1
    assert results.count(None) == contenders - 1


async def test_the_export_streams_every_order_without_personal_network_data(
    engine: AsyncEngine,
) -> None:
    placed = [order(f"u{n}@example.com", at=T0 + timedelta(seconds=n)) for n in range(5)]
    async with engine.connect() as conn:
        repo = SqlOrderRepository(conn)
        for item in placed:
            await repo.add(item)
        assert await repo.cancel(placed[3].id, T0 + timedelta(hours=1))
        await conn.commit()
    export = SqlOrderExport(engine)
    columns = export.columns()
    assert "ip" not in columns
    assert "user_agent" not in columns
    assert {"email", "plan_type", "price_cents", "currency", "status"} <= set(columns)
    rows = [row async for row in export.rows()]
    assert [row["email"] for row in rows] == [f"u{n}@example.com" for n in reversed(range(5))]
    cancelled = [row async for row in export.rows(OrderStatus.CANCELLED)]
    assert [row["email"] for row in cancelled] == ["u3@example.com"]
    pending = [row["email"] async for row in export.rows(OrderStatus.PENDING)]
    assert pending == [f"u{n}@example.com" for n in (4, 2, 1, 0)]


async def test_placements_for_one_address_take_turns(engine: AsyncEngine) -> None:
    if engine.dialect.name != "postgresql":
        pytest.skip("SQLite: a writing transaction holds the one write lock from BEGIN IMMEDIATE")
    dsn = engine.url.render_as_string(hide_password=False).replace("+asyncpg", "")

    async def waiting() -> bool:
        conn = await asyncpg.connect(dsn)
        try:
            count = await conn.fetchval(
                "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() "
                "AND wait_event_type = 'Lock' AND wait_event = 'advisory'"
            )
        finally:
            await conn.close()
        return bool(count)

    async def place(email: str) -> None:
        async with engine.connect() as conn:
            await SqlOrderRepository(conn).take_turn(email)
            await conn.commit()

    async with engine.connect() as first:
        await SqlOrderRepository(first).take_turn("a@example.com")
        await asyncio.wait_for(place("b@example.com"), 30)  # another address: no wait
        second = asyncio.create_task(place("a@example.com"))
        deadline = asyncio.get_running_loop().time() + 30
        while not await waiting():
            assert not second.done(), "the second placement did not wait for its turn"
            assert asyncio.get_running_loop().time() < deadline
            await asyncio.sleep(0.01)  # polling for a state, with a deadline
        await first.commit()  # ends the first turn
    await asyncio.wait_for(second, 30)
