"""The console's queries: totals, user search, the audit trail and alerts by keyset, exports."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from orbsurv.adapters.persistence.database import reads_only
from orbsurv.adapters.persistence.keyset import newest_first, newest_first_batches
from orbsurv.adapters.persistence.leads import LISTS, as_dict
from orbsurv.adapters.persistence.tables import (
    audit_events,
    client_errors,
    contact_messages,
    investor_interests,
    orders,
    packages,
    pilot_requests,
    projects,
    security_alerts,
    sessions,
    users,
    waitlist_entries,
)
from orbsurv.adapters.persistence.users import _to_user
from orbsurv.application.console.ports import AuditFilter, UserDetail
from orbsurv.domain.identity import Role, User
from orbsurv.domain.pagination import Cursor, CursorPage, Page, PageRequest


def _count(table: sa.Table, *where: sa.ColumnElement[bool]) -> sa.ScalarSelect[int]:
    return sa.select(sa.func.count()).select_from(table).where(*where).scalar_subquery()


def _like(text: str) -> str:
    escaped = text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
    return f"%{escaped.lower()}%"


class SqlConsoleReader:
    def __init__(self, connection: AsyncConnection) -> None:
        self._conn = connection

    async def totals(self) -> dict[str, int]:
        counts = {
            "users": _count(users),
            "waitlist": _count(waitlist_entries),
            "contacts": _count(contact_messages),
            "pilot_requests": _count(pilot_requests),
            "investor_interest": _count(investor_interests),
            "client_errors": _count(client_errors),
            "orders": _count(orders),
            "projects": _count(projects),
            "open_alerts": _count(security_alerts, security_alerts.c.acknowledged_at.is_(None)),
            "packages": _count(packages),
        }
        row = (await self._conn.execute(sa.select(*counts.values()))).one()
        return {name: int(value) for name, value in zip(counts, row, strict=True)}

    async def users(self, q: str | None, role: Role | None, page: PageRequest) -> Page[User]:
        where: list[sa.ColumnElement[bool]] = []
        if q:
            pattern = _like(q)
            where.append(
                sa.or_(
                    users.c.email.like(pattern, escape="\\"),
                    sa.func.lower(users.c.name).like(pattern, escape="\\"),
                    users.c.username.like(pattern, escape="\\"),
                )
            )
        if role is not None:
            where.append(users.c.role == role.value)
        total = (
            await self._conn.execute(sa.select(sa.func.count()).select_from(users).where(*where))
        ).scalar_one()
        rows = await self._conn.execute(
            sa.select(users)
            .where(*where)
            .order_by(users.c.created_at.desc(), users.c.id.desc())
            .limit(page.page_size)
            .offset(page.offset)
        )
        return Page(
            items=[_to_user(row) for row in rows],
            total=total,
            page=page.page,
            page_size=page.page_size,
        )

    async def user(self, user_id: str, now: datetime) -> UserDetail | None:
        row = (await self._conn.execute(sa.select(users).where(users.c.id == user_id))).first()
        if row is None:
            return None
        live = _count(
            sessions,
            sessions.c.user_id == user_id,
            sessions.c.revoked_at.is_(None),
            sessions.c.expires_at > now,
        )
        count = (await self._conn.execute(sa.select(live))).scalar_one()
        user = _to_user(row)
        return UserDetail(user=user, sessions=int(count), last_login_at=user.last_login_at)

    async def lock_active(self, role: Role) -> int:
        # FOR UPDATE in id order (no deadlock between two callers); a row another transaction
        # changed meanwhile is re-checked against the WHERE once its lock is released.
        # SQLite has no row locks: its single writer serialises the whole transaction instead.
        rows = await self._conn.execute(
            sa.select(users.c.id)
            .where(users.c.role == role.value, users.c.is_active.is_(True))
            .order_by(users.c.id)
            .with_for_update()
        )
        return len(rows.all())

    async def audit(
        self, where: AuditFilter, cursor: Cursor | None, limit: int
    ) -> CursorPage[dict[str, Any]]:
        query = sa.select(audit_events)
        if where.action:
            query = query.where(audit_events.c.action == where.action)
        if where.actor_user_id:
            query = query.where(audit_events.c.actor_user_id == where.actor_user_id)
        if where.ip:
            query = query.where(audit_events.c.ip == where.ip)
        if where.since:
            query = query.where(audit_events.c.occurred_at >= where.since)
        if where.until:
            query = query.where(audit_events.c.occurred_at < where.until)
        rows, next_cursor = await newest_first(
            self._conn,
            query,
            created_at=audit_events.c.occurred_at,
            id_=audit_events.c.id,
            cursor=cursor,
            limit=limit,
        )
        return CursorPage(items=[as_dict(row) for row in rows], next_cursor=next_cursor)

    async def alerts(
        self, only_unacknowledged: bool, severity: str | None, cursor: Cursor | None, limit: int
    ) -> CursorPage[dict[str, Any]]:
        query = sa.select(security_alerts)
        if only_unacknowledged:
            query = query.where(security_alerts.c.acknowledged_at.is_(None))
        if severity:
            query = query.where(security_alerts.c.severity == severity)
        rows, next_cursor = await newest_first(
            self._conn,
            query,
            created_at=security_alerts.c.raised_at,
            id_=security_alerts.c.id,
            cursor=cursor,
            limit=limit,
        )
        return CursorPage(items=[as_dict(row) for row in rows], next_cursor=next_cursor)

    async def acknowledge(self, alert_id: str, by: str, now: datetime) -> dict[str, Any] | None:
        await self._conn.execute(
            security_alerts.update()
            .where(security_alerts.c.id == alert_id, security_alerts.c.acknowledged_at.is_(None))
            .values(acknowledged_at=now, acknowledged_by=by)
        )
        row = (
            await self._conn.execute(
                sa.select(security_alerts).where(security_alerts.c.id == alert_id)
            )
        ).first()
        return as_dict(row) if row is not None else None


class SqlSubmissionExport:
    """Streams a whole list in batches, each read on a short connection of its own, so an export
    of any size holds one batch in memory and no connection while the client reads."""

    def __init__(self, engine: AsyncEngine) -> None:
        self._engine = reads_only(engine)

    def columns(self, kind: str) -> list[str]:
        hidden = {"ip", "user_agent"}  # personal data the export does not need
        return [column.name for column in LISTS[kind].columns if column.name not in hidden]

    async def rows(self, kind: str) -> AsyncIterator[dict[str, Any]]:
        table = LISTS[kind]
        query = sa.select(table)
        async for row in newest_first_batches(
            self._engine, query, created_at=table.c.created_at, id_=table.c.id
        ):
            yield as_dict(row)
