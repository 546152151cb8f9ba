"""Sessions (refresh-token families) and their refresh tokens, in SQL."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

import sqlalchemy as sa
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from orbsurv.adapters.persistence.database import reads_only
from orbsurv.adapters.persistence.tables import refresh_tokens, sessions
from orbsurv.application.identity.ports import RefreshTokenRecord, Revocation
from orbsurv.domain.errors import DependencyUnavailable
from orbsurv.domain.identity import Scope, Session


def _to_session(row: sa.Row[Any]) -> Session:
    return Session(
        id=row.id,
        user_id=row.user_id,
        scope=Scope(row.scope),
        amr=tuple(row.amr.split()),
        created_at=row.created_at,
        last_used_at=row.last_used_at,
        expires_at=row.expires_at,
        ip=row.ip,
        user_agent=row.user_agent,
        revoked_at=row.revoked_at,
    )


def _live(now: datetime) -> sa.ColumnElement[bool]:
    return sa.and_(sessions.c.revoked_at.is_(None), sessions.c.expires_at > now)


def _young(
    now: datetime, lifetime: timedelta | None, dev_lifetime: timedelta | None
) -> list[sa.ColumnElement[bool]]:
    """Sessions younger than their absolute lifetime (``dev_lifetime`` for the dev scope)."""
    found: list[sa.ColumnElement[bool]] = []
    if lifetime is not None:
        found.append(sessions.c.created_at > now - lifetime)
    if dev_lifetime is not None:
        found.append(
            sa.or_(sessions.c.scope != Scope.DEV.value, sessions.c.created_at > now - dev_lifetime)
        )
    return found


class SqlSessionRepository:
    def __init__(self, connection: AsyncConnection) -> None:
        self._conn = connection

    async def add(self, session: Session, refresh_hash: str) -> None:
        await self._conn.execute(
            sessions.insert().values(
                id=session.id,
                user_id=session.user_id,
                scope=session.scope.value,
                amr=" ".join(session.amr),
                created_at=session.created_at,
                last_used_at=session.last_used_at,
                expires_at=session.expires_at,
                ip=session.ip,
                user_agent=session.user_agent,
            )
        )
        await self._conn.execute(
            refresh_tokens.insert().values(
                token_hash=refresh_hash, session_id=session.id, issued_at=session.created_at
            )
        )

    async def get(self, session_id: str) -> Session | None:
        row = (
            await self._conn.execute(sa.select(sessions).where(sessions.c.id == session_id))
        ).first()
        return _to_session(row) if row is not None else None

    async def list_live(self, user_id: str, now: datetime) -> list[Session]:
        rows = await self._conn.execute(
            sa.select(sessions)
            .where(sessions.c.user_id == user_id, _live(now))
            .order_by(sessions.c.created_at.desc(), sessions.c.id.desc())
        )
        return [_to_session(row) for row in rows]

    async def rotate(
        self,
        refresh_hash: str,
        child_hash: str,
        sealed_child: str,
        now: datetime,
        expires_at: datetime,
        *,
        lifetime: timedelta | None = None,
        dev_lifetime: timedelta | None = None,
    ) -> Session | None:
        # The one conditional update that decides the winner: a spent token matches nothing,
        # nor does a token of a session past its absolute lifetime (counted from ``created_at``,
        # which never changes, so a lifetime lowered since the sign-in holds at once).
        young = _young(now, lifetime, dev_lifetime)
        spent = await self._conn.execute(
            refresh_tokens.update()
            .where(
                refresh_tokens.c.token_hash == refresh_hash,
                refresh_tokens.c.used_at.is_(None),
                refresh_tokens.c.session_id.in_(sa.select(sessions.c.id).where(_live(now), *young)),
            )
            .values(used_at=now, child_hash=child_hash, sealed_child=sealed_child)
            .returning(refresh_tokens.c.session_id)
        )
        session_id = spent.scalar_one_or_none()
        if session_id is None:
            return None
        await self._conn.execute(
            refresh_tokens.insert().values(
                token_hash=child_hash, session_id=session_id, issued_at=now
            )
        )
        # ``created_at`` and ``scope`` never change: reading them is no read-then-write.
        opened = (
            await self._conn.execute(
                sa.select(sessions.c.created_at, sessions.c.scope).where(
                    sessions.c.id == session_id
                )
            )
        ).one()
        created_at: datetime = opened.created_at
        dev = opened.scope == Scope.DEV.value
        cap = dev_lifetime if dev and dev_lifetime is not None else lifetime
        if cap is not None:
            expires_at = min(expires_at, created_at + cap)
        row = (
            await self._conn.execute(
                sessions.update()
                .where(sessions.c.id == session_id)
                .values(last_used_at=now, expires_at=expires_at)
                .returning(*sessions.c)
            )
        ).one()
        return _to_session(row)

    async def find_token(self, refresh_hash: str) -> RefreshTokenRecord | None:
        child = refresh_tokens.alias("child")
        row = (
            await self._conn.execute(
                sa.select(refresh_tokens, child.c.used_at.label("child_used_at"))
                .outerjoin(child, child.c.token_hash == refresh_tokens.c.child_hash)
                .where(refresh_tokens.c.token_hash == refresh_hash)
            )
        ).first()
        if row is None:
            return None
        return RefreshTokenRecord(
            token_hash=row.token_hash,
            session_id=row.session_id,
            issued_at=row.issued_at,
            used_at=row.used_at,
            child_hash=row.child_hash,
            sealed_child=row.sealed_child,
            child_used=row.child_used_at is not None,
        )

    async def revoke_by_token(
        self, refresh_hash: str, now: datetime, reason: str, *, used_since: datetime
    ) -> Session | None:
        # One statement: a rotation or revocation committed first makes it match nothing (on
        # PostgreSQL the update waits for the session row and checks it live again).
        child = refresh_tokens.alias("child")
        holder = (
            sa.select(refresh_tokens.c.session_id)
            .outerjoin(child, child.c.token_hash == refresh_tokens.c.child_hash)
            .where(
                refresh_tokens.c.token_hash == refresh_hash,
                sa.or_(
                    refresh_tokens.c.used_at.is_(None),
                    sa.and_(
                        refresh_tokens.c.used_at >= used_since,
                        refresh_tokens.c.sealed_child.is_not(None),
                        child.c.used_at.is_(None),
                    ),
                ),
            )
            .scalar_subquery()
        )
        row = (
            await self._conn.execute(
                sessions.update()
                .where(sessions.c.id == holder, _live(now))
                .values(revoked_at=now, revoked_reason=reason)
                .returning(*sessions.c)
            )
        ).first()
        return _to_session(row) if row is not None else None

    async def revoke(self, session_id: str, now: datetime, reason: str) -> bool:
        result = await self._conn.execute(
            sessions.update()
            .where(sessions.c.id == session_id, sessions.c.revoked_at.is_(None))
            .values(revoked_at=now, revoked_reason=reason)
            .returning(sessions.c.id)
        )
        return result.first() is not None

    async def revoke_all(
        self, user_id: str, now: datetime, reason: str, *, keep: str | None = None
    ) -> list[str]:
        condition = sa.and_(sessions.c.user_id == user_id, _live(now))
        if keep is not None:
            condition = sa.and_(condition, sessions.c.id != keep)
        result = await self._conn.execute(
            sessions.update()
            .where(condition)
            .values(revoked_at=now, revoked_reason=reason)
            .returning(sessions.c.id)
        )
        return list(result.scalars())


# What a database that is down, refusing, hung (a checkout or statement timeout) or cut mid-query
# raises here: asyncpg's refused connection is a bare OSError, SQLAlchemy wraps the rest.
_UNAVAILABLE = (SQLAlchemyError, OSError, TimeoutError)


def _unavailable() -> DependencyUnavailable:
    return DependencyUnavailable(
        "The database is unavailable, so the session cannot be checked; try again shortly."
    )


class SqlSessionStatus:
    """Revocation from the source of truth, for when the denylist cache cannot answer."""

    def __init__(self, engine: AsyncEngine) -> None:
        self._engine = reads_only(engine)

    async def is_revoked(self, session_id: str) -> bool:
        try:
            async with self._engine.connect() as conn:
                revoked_at = (
                    await conn.execute(
                        sa.select(sessions.c.revoked_at).where(sessions.c.id == session_id)
                    )
                ).first()
        except _UNAVAILABLE as exc:
            raise _unavailable() from exc
        return revoked_at is None or revoked_at[0] is not None


class SqlSessionRevocations:
    """Recent revocations, read outside any request transaction (``ix_sessions_revoked_at``)."""

    def __init__(self, engine: AsyncEngine) -> None:
        self._engine = reads_only(engine)

    async def revoked_since(self, cutoff: datetime) -> list[Revocation]:
        try:
            async with self._engine.connect() as conn:
                rows = await conn.execute(
                    sa.select(sessions.c.id, sessions.c.revoked_at).where(
                        sessions.c.revoked_at >= cutoff
                    )
                )
                found = [Revocation(row.id, row.revoked_at) for row in rows]
        except _UNAVAILABLE as exc:
            raise _unavailable() from exc
        return found
