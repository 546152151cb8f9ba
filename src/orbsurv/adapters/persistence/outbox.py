"""The mail outbox in SQL: written in the caller's transaction, claimed by workers with a lease."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncConnection

from orbsurv.adapters.persistence.lease import lease_due
from orbsurv.adapters.persistence.tables import outbox_messages
from orbsurv.application.ports import Clock, OutgoingEmail, QueuedMessage

PENDING, SENT, DEAD = "pending", "sent", "dead"
ENQUEUE = outbox_messages.insert()  # built once; the values come as parameters


def outbox_row(message: OutgoingEmail, now: datetime) -> dict[str, Any]:
    """The parameters of ``ENQUEUE`` for one message, due at once."""
    return {
        "id": str(uuid.uuid4()),
        "created_at": now,
        "recipient": message.to,
        "subject": message.subject[:255],
        "text_body": message.text,
        "html_body": message.html,
        "status": PENDING,
        "attempts": 0,
        "next_attempt_at": now,
    }


class SqlOutbox:
    def __init__(self, connection: AsyncConnection, clock: Clock) -> None:
        self._conn = connection
        self._clock = clock

    async def enqueue(self, message: OutgoingEmail) -> None:
        await self._conn.execute(ENQUEUE, outbox_row(message, self._clock.now()))

    async def claim(self, now: datetime, lease_until: datetime, limit: int) -> list[QueuedMessage]:
        rows = await lease_due(
            self._conn,
            outbox_messages,
            due=sa.and_(
                outbox_messages.c.status == PENDING, outbox_messages.c.next_attempt_at <= now
            ),
            order_by=[outbox_messages.c.next_attempt_at, outbox_messages.c.id],
            now=now,
            lease_until=lease_until,
            limit=limit,
        )
        return [_queued(row) for row in rows]

    async def mark_sent(self, message_id: str, now: datetime) -> None:
        await self._conn.execute(
            outbox_messages.update()
            .where(outbox_messages.c.id == message_id)
            .values(status=SENT, sent_at=now, claimed_until=None, last_error=None)
        )

    async def mark_failed(
        self, message_id: str, error: str, attempts: int, retry_at: datetime | None
    ) -> None:
        values: dict[str, Any] = {"attempts": attempts, "claimed_until": None, "last_error": error}
        if retry_at is None:
            values["status"] = DEAD
        else:
            values["next_attempt_at"] = retry_at
        await self._conn.execute(
            outbox_messages.update().where(outbox_messages.c.id == message_id).values(**values)
        )

    async def recent(self, limit: int) -> list[sa.Row[Any]]:
        """The newest messages, for ``orbsurv mail list``."""
        rows = await self._conn.execute(
            sa.select(outbox_messages)
            .order_by(outbox_messages.c.created_at.desc(), outbox_messages.c.id.desc())
            .limit(limit)
        )
        return list(rows)


def _queued(row: sa.Row[Any]) -> QueuedMessage:
    return QueuedMessage(
        id=row.id,
        message=OutgoingEmail(
            to=row.recipient, subject=row.subject, text=row.text_body, html=row.html_body
        ),
        attempts=row.attempts,
    )
