"""Pre-orders and their registration links in SQL.

Every change that guards something is one statement: issuing a link is an ``INSERT … ON CONFLICT
(email) DO UPDATE … WHERE`` the old link is used, expired, or issued before every order it stood
for was cancelled (so a live link that still opens an order is never replaced, and two concurrent
orders issue at most one: the second re-checks the row the first wrote), spending a token is an
``UPDATE … WHERE used_at IS NULL AND expires_at > now RETURNING``, completing and cancelling
orders are conditional updates.
Tokens are stored as HMAC-SHA256 under a key of their own: the table alone yields no usable link.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
from collections.abc import AsyncIterator
from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from orbsurv.adapters.persistence.keyset import newest_first, newest_first_batches
from orbsurv.adapters.persistence.tables import order_links, orders, users
from orbsurv.domain.orders import Order, OrderStatus, RegistrationLink
from orbsurv.domain.pagination import Cursor, CursorPage, Page, PageRequest


def _to_order(row: sa.Row[Any]) -> Order:
    return Order(
        id=row.id,
        email=row.email,
        name=row.name,
        plan_type=row.plan_type,
        price_cents=row.price_cents,
        currency=row.currency,
        status=OrderStatus(row.status),
        created_at=row.created_at,
        updated_at=row.updated_at,
        user_id=row.user_id,
        ip=row.ip,
        user_agent=row.user_agent,
    )


class SqlOrderRepository:
    def __init__(self, connection: AsyncConnection) -> None:
        self._conn = connection

    async def add(self, order: Order) -> None:
        await self._conn.execute(
            orders.insert().values(
                id=order.id,
                created_at=order.created_at,
                updated_at=order.updated_at,
                email=order.email,
                name=order.name,
                plan_type=order.plan_type,
                price_cents=order.price_cents,
                currency=order.currency,
                status=order.status.value,
                user_id=order.user_id,
                ip=order.ip,
                user_agent=order.user_agent,
            )
        )

    async def _one(self, query: sa.Select[Any]) -> Order | None:
        row = (await self._conn.execute(query)).first()
        return _to_order(row) if row is not None else None

    async def get(self, order_id: str) -> Order | None:
        return await self._one(sa.select(orders).where(orders.c.id == order_id))

    async def latest_pending_for_email(self, email: str) -> Order | None:
        return await self._one(
            sa.select(orders)
            .where(orders.c.email == email, orders.c.status == OrderStatus.PENDING.value)
            .order_by(orders.c.created_at.desc(), orders.c.id.desc())
            .limit(1)
        )

    async def take_turn(self, email: str) -> None:
        if self._conn.dialect.name == "postgresql":
            # A transaction-scoped advisory lock on the address's hash: released at commit or
            # rollback, and no row needs to exist yet (the first order has no link row to lock).
            key = sa.func.hashtextextended(f"orbsurv:orders:{email}", 0)
            await self._conn.execute(sa.select(sa.func.pg_advisory_xact_lock(key)))
        # SQLite: a writing transaction already holds the database's one write lock from its
        # BEGIN IMMEDIATE (``database.py``), so placements take turns anyway.

    async def all_cancelled_at(self, email: str) -> datetime | None:
        pending = (
            sa.select(orders.c.id)
            .where(orders.c.email == email, orders.c.status == OrderStatus.PENDING.value)
            .exists()
        )
        latest = await self._conn.execute(
            sa.select(sa.func.max(orders.c.updated_at)).where(
                orders.c.email == email,
                orders.c.status == OrderStatus.CANCELLED.value,
                ~pending,
            )
        )
        value: datetime | None = latest.scalar_one()
        return value

    async def complete_pending(self, email: str, user_id: str, now: datetime) -> int:
        result = await self._conn.execute(
            orders.update()
            .where(orders.c.email == email, orders.c.status == OrderStatus.PENDING.value)
            .values(status=OrderStatus.COMPLETED.value, user_id=user_id, updated_at=now)
        )
        return int(result.rowcount)

    async def claim_unlinked(self, email: str, user_id: str, now: datetime) -> int:
        result = await self._conn.execute(
            orders.update()
            .where(orders.c.email == email, orders.c.user_id.is_(None))
            .values(user_id=user_id, updated_at=now)
        )
        return int(result.rowcount)

    async def cancel(self, order_id: str, now: datetime) -> bool:
        result = await self._conn.execute(
            orders.update()
            .where(orders.c.id == order_id, orders.c.status != OrderStatus.CANCELLED.value)
            .values(status=OrderStatus.CANCELLED.value, updated_at=now)
        )
        return bool(result.rowcount)

    async def mine(self, user_id: str, page: PageRequest) -> Page[Order]:
        verified_address = (
            sa.select(users.c.email)
            .where(users.c.id == user_id, users.c.email_verified.is_(True))
            .scalar_subquery()
        )
        where = sa.or_(
            orders.c.user_id == user_id,
            sa.and_(orders.c.user_id.is_(None), orders.c.email == verified_address),
        )
        total = (
            await self._conn.execute(sa.select(sa.func.count()).select_from(orders).where(where))
        ).scalar_one()
        rows = await self._conn.execute(
            sa.select(orders)
            .where(where)
            .order_by(orders.c.created_at.desc(), orders.c.id.desc())
            .limit(page.page_size)
            .offset(page.offset)
        )
        return Page(
            items=[_to_order(row) for row in rows],
            total=int(total),
            page=page.page,
            page_size=page.page_size,
        )

    async def page(
        self, status: OrderStatus | None, cursor: Cursor | None, limit: int
    ) -> CursorPage[Order]:
        query = sa.select(orders)
        if status is not None:
            query = query.where(orders.c.status == status.value)
        rows, next_cursor = await newest_first(
            self._conn,
            query,
            created_at=orders.c.created_at,
            id_=orders.c.id,
            cursor=cursor,
            limit=limit,
        )
        return CursorPage(items=[_to_order(row) for row in rows], next_cursor=next_cursor)


class SqlRegistrationLinks:
    def __init__(self, connection: AsyncConnection, key: bytes) -> None:
        self._conn = connection
        self._key = key

    def _hash(self, token: str) -> str:
        return hmac.new(self._key, token.encode(), hashlib.sha256).hexdigest()

    async def issue(
        self,
        email: str,
        now: datetime,
        expires_at: datetime,
        replace_issued_by: datetime | None = None,
    ) -> str | None:
        token = secrets.token_urlsafe(32)
        dialect = postgresql if self._conn.dialect.name == "postgresql" else sqlite
        values = {
            "token_hash": self._hash(token),
            "created_at": now,
            "expires_at": expires_at,
            "used_at": None,
        }
        statement = dialect.insert(order_links).values(email=email, **values)
        replaceable = [order_links.c.used_at.is_not(None), order_links.c.expires_at <= now]
        if replace_issued_by is not None:
            replaceable.append(order_links.c.created_at <= replace_issued_by)
        issued = await self._conn.execute(
            statement.on_conflict_do_update(
                index_elements=["email"], set_=values, where=sa.or_(*replaceable)
            ).returning(order_links.c.email)
        )
        return token if issued.first() is not None else None

    async def find(self, token: str) -> RegistrationLink | None:
        row = (
            await self._conn.execute(
                sa.select(order_links).where(order_links.c.token_hash == self._hash(token))
            )
        ).first()
        if row is None:
            return None
        return RegistrationLink(email=row.email, expires_at=row.expires_at, used_at=row.used_at)

    async def consume(self, token: str, now: datetime) -> str | None:
        row = (
            await self._conn.execute(
                order_links.update()
                .where(
                    order_links.c.token_hash == self._hash(token),
                    order_links.c.used_at.is_(None),
                    order_links.c.expires_at > now,
                )
                .values(used_at=now)
                .returning(order_links.c.email)
            )
        ).first()
        return str(row.email) if row is not None else None


class SqlOrderExport:
    """Streams every order in batches, each read on a short connection of its own, so a client
    that downloads slowly holds no connection."""

    HIDDEN = frozenset({"ip", "user_agent"})  # personal data the export does not need

    def __init__(self, engine: AsyncEngine) -> None:
        self._engine = engine

    def columns(self) -> list[str]:
        return [column.name for column in orders.columns if column.name not in self.HIDDEN]

    async def rows(self, status: OrderStatus | None = None) -> AsyncIterator[dict[str, Any]]:
        query = sa.select(orders)
        if status is not None:
            query = query.where(orders.c.status == status.value)
        async for row in newest_first_batches(
            self._engine, query, created_at=orders.c.created_at, id_=orders.c.id
        ):
            yield {str(key): value for key, value in row._mapping.items()}
