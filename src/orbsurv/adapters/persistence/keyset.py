"""Keyset pagination over newest-first streams: a deep page costs the same as the first."""

from __future__ import annotations

from collections.abc import AsyncIterator, Sequence
from typing import Any

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from orbsurv.domain.pagination import Cursor


async def newest_first(
    conn: AsyncConnection,
    query: sa.Select[Any],
    *,
    created_at: sa.ColumnElement[Any],
    id_: sa.ColumnElement[Any],
    cursor: Cursor | None,
    limit: int,
) -> tuple[Sequence[sa.Row[Any]], Cursor | None]:
    """Rows strictly after ``cursor`` in (created_at DESC, id DESC) order, plus the next cursor."""
    if cursor is not None:
        # A row-value comparison: with an index ending in (created_at, id) the database seeks
        # straight to the cursor (an OR of the two conditions makes it walk there instead).
        query = query.where(
            sa.tuple_(created_at, id_)
            < sa.tuple_(sa.literal(cursor.created_at, created_at.type), sa.literal(cursor.id))
        )
    rows = (
        await conn.execute(query.order_by(created_at.desc(), id_.desc()).limit(limit + 1))
    ).all()
    if len(rows) <= limit:
        return rows, None
    rows = rows[:limit]
    last = rows[-1]._mapping
    return rows, Cursor(created_at=last[created_at], id=last[id_])


EXPORT_BATCH = 1000  # rows per short transaction of an export


async def newest_first_batches(
    engine: AsyncEngine,
    query: sa.Select[Any],
    *,
    created_at: sa.ColumnElement[Any],
    id_: sa.ColumnElement[Any],
    batch: int = EXPORT_BATCH,
) -> AsyncIterator[sa.Row[Any]]:
    """Every row of ``query``, newest first, read ``batch`` rows per short connection.

    For exports a client downloads at its own pace: no connection is held between batches, so a
    slow or stalled reader holds none (a server-side cursor would keep one for the whole
    download). Rows written during the export are newer than its first batch and not included.
    """
    cursor: Cursor | None = None
    while True:
        async with engine.connect() as conn:
            rows, cursor = await newest_first(
                conn, query, created_at=created_at, id_=id_, cursor=cursor, limit=batch
            )
        for row in rows:
            yield row
        if cursor is None:
            return
