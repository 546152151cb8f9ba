"""Leasing due rows to one worker at a time (the outbox, mail requests).

A lease is a ``claimed_until`` time: claimed rows are invisible to other claims until it passes,
so a worker that dies mid-batch only delays its rows. On PostgreSQL concurrent claims skip each
other's locked rows; SQLite has one writer at a time, and this single statement takes the write
lock before it reads.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncConnection


async def lease_due(
    conn: AsyncConnection,
    table: sa.Table,
    *,
    due: sa.ColumnElement[bool],
    order_by: Sequence[sa.ColumnElement[Any]],
    now: datetime,
    lease_until: datetime,
    limit: int,
) -> Sequence[sa.Row[Any]]:
    free = sa.or_(table.c.claimed_until.is_(None), table.c.claimed_until <= now)
    ids = sa.select(table.c.id).where(due, free).order_by(*order_by).limit(limit)
    if conn.dialect.name == "postgresql":
        ids = ids.with_for_update(skip_locked=True)
    rows = await conn.execute(
        table.update()
        .where(table.c.id.in_(ids.scalar_subquery()))
        .values(claimed_until=lease_until)
        .returning(*table.c)
    )
    return rows.all()
