"""Public-form submissions, client errors and analytics in SQL.

Upserts use ``INSERT … ON CONFLICT`` (PostgreSQL and SQLite both have it), so a crash loop or
two concurrent acknowledgements are settled by the database itself. Waitlist sign-ups are
written by ``waitlist.GroupCommitWaitlist``.
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from datetime import datetime, timedelta
from typing import Any

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.ext.asyncio import AsyncConnection

from orbsurv.adapters.persistence.keyset import newest_first
from orbsurv.adapters.persistence.tables import (
    analytics_events,
    client_errors,
    contact_messages,
    form_acknowledgements,
    investor_interests,
    pilot_requests,
    waitlist_entries,
)
from orbsurv.domain.analytics import AnalyticsEvent, EventType
from orbsurv.domain.audit import bounded
from orbsurv.domain.errors import NotFound
from orbsurv.domain.leads import ClientError, Form, Lead, Submitter
from orbsurv.domain.pagination import Cursor, CursorPage

FORM_TABLES = {
    Form.WAITLIST: waitlist_entries,
    Form.CONTACT: contact_messages,
    Form.INVESTOR_INTEREST: investor_interests,
    Form.PILOT_REQUEST: pilot_requests,
}
LISTS = {
    **{form.value: table for form, table in FORM_TABLES.items()},
    "client_errors": client_errors,
    "cookie_consent": analytics_events,
}


def _insert(conn: AsyncConnection, table: sa.Table) -> Any:
    dialect = postgresql if conn.dialect.name == "postgresql" else sqlite
    return dialect.insert(table)


def _claim(dialect: Any) -> Any:
    statement = dialect.insert(form_acknowledgements)
    return statement.on_conflict_do_update(
        index_elements=["email"],
        set_={"last_sent_at": statement.excluded.last_sent_at},
        where=form_acknowledgements.c.last_sent_at <= sa.bindparam("ack_due"),
    ).returning(form_acknowledgements.c.email)


# Parameters ``email``, ``last_sent_at`` and ``ack_due`` (the cut-off); one row or many. Built
# once per dialect: building the intake statements per request (values, ON CONFLICT clauses,
# their cache keys) was a fifth of a POST /waitlist's CPU.
CLAIM_ACKNOWLEDGEMENT = {"postgresql": _claim(postgresql), "sqlite": _claim(sqlite)}


def as_dict(row: sa.Row[Any]) -> dict[str, Any]:
    return {str(key): value for key, value in row._mapping.items()}


class SqlLeadRepository:
    def __init__(self, connection: AsyncConnection) -> None:
        self._conn = connection

    async def add(self, lead: Lead, by: Submitter) -> None:
        if lead.form is Form.WAITLIST:
            raise ValueError("waitlist sign-ups go through the Waitlist port")
        await self._conn.execute(
            FORM_TABLES[lead.form]
            .insert()
            .values(
                id=str(uuid.uuid4()),
                created_at=by.at,
                email=lead.email,
                ip=by.ip,
                user_agent=by.user_agent,
                **lead.fields,
            )
        )

    async def record_error(self, error: ClientError, by: Submitter) -> None:
        statement = _insert(self._conn, client_errors).values(
            id=str(uuid.uuid4()),
            fingerprint=error.fingerprint,
            message=error.message,
            stack=error.stack,
            url=error.url,
            line=error.line,
            column=error.column,
            user_agent=error.user_agent,
            ip=by.ip,
            count=1,
            created_at=by.at,
            last_seen_at=by.at,
        )
        await self._conn.execute(
            statement.on_conflict_do_update(
                index_elements=["fingerprint"],
                set_={"count": client_errors.c.count + 1, "last_seen_at": by.at},
            )
        )

    async def claim_acknowledgement(self, email: str, now: datetime, every_seconds: int) -> bool:
        claimed = await self._conn.execute(
            CLAIM_ACKNOWLEDGEMENT[self._conn.dialect.name],
            {
                "email": email,
                "last_sent_at": now,
                "ack_due": now - timedelta(seconds=every_seconds),
            },
        )
        return claimed.first() is not None

    async def page(
        self, kind: str, cursor: Cursor | None, limit: int
    ) -> CursorPage[dict[str, Any]]:
        table = LISTS.get(kind)
        if table is None:
            raise NotFound(f"No list called {kind!r}.")
        query = sa.select(table)
        if kind == "cookie_consent":
            query = query.where(table.c.event_type == EventType.COOKIE_CONSENT.value)
        rows, next_cursor = await newest_first(
            self._conn,
            query,
            created_at=table.c.created_at,
            id_=table.c.id,
            cursor=cursor,
            limit=limit,
        )
        return CursorPage(items=[as_dict(row) for row in rows], next_cursor=next_cursor)

    async def count(self, kind: str) -> int:
        table = LISTS[kind]
        query = sa.select(sa.func.count()).select_from(table)
        if kind == "cookie_consent":
            query = query.where(table.c.event_type == EventType.COOKIE_CONSENT.value)
        return int((await self._conn.execute(query)).scalar_one())


class SqlAnalyticsStore:
    def __init__(self, connection: AsyncConnection) -> None:
        self._conn = connection

    async def append(
        self,
        events: Sequence[AnalyticsEvent],
        *,
        actor_user_id: str | None,
        ip: str | None,
        user_agent: str | None,
        request_id: str | None,
        received_at: datetime,
    ) -> None:
        await self._conn.execute(
            analytics_events.insert(),
            [
                {
                    "id": str(uuid.uuid4()),
                    "created_at": received_at,
                    "occurred_at": event.occurred_at,
                    "event_type": event.event_type.value,
                    "action": event.action,
                    "page": event.page,
                    "client_id": event.client_id,
                    "actor_user_id": actor_user_id,
                    "ip": ip,
                    "user_agent": user_agent,
                    "request_id": request_id,
                    "details": bounded(event.metadata),
                }
                for event in events
            ],
        )

    async def consent(
        self, *, client_id: str | None, user_id: str | None, cursor: Cursor | None, limit: int
    ) -> CursorPage[dict[str, Any]]:
        query = sa.select(analytics_events).where(
            analytics_events.c.event_type == EventType.COOKIE_CONSENT.value
        )
        if client_id is not None:
            query = query.where(analytics_events.c.client_id == client_id)
        if user_id is not None:
            query = query.where(analytics_events.c.actor_user_id == user_id)
        rows, next_cursor = await newest_first(
            self._conn,
            query,
            created_at=analytics_events.c.created_at,
            id_=analytics_events.c.id,
            cursor=cursor,
            limit=limit,
        )
        return CursorPage(items=[as_dict(row) for row in rows], next_cursor=next_cursor)
