"""``SqlLock``: the ``Lock`` port on the database, for deployments without Redis.

One row per held name in ``locks`` (name, owner token, expires_at). Taking a lock is an
``INSERT`` that the primary key refuses while the name has a row, else one conditional
``UPDATE ... WHERE expires_at <= now`` (a dead holder's row is taken over); extend and release
compare the owner token in the same statement, so there is no read-then-write. Each call is a
short transaction of its own.
"""

from __future__ import annotations

import secrets
from datetime import UTC, datetime, timedelta

import sqlalchemy as sa
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncEngine

from orbsurv.adapters.persistence.tables import locks


def _now() -> datetime:
    return datetime.now(UTC)


class SqlLock:
    def __init__(self, engine: AsyncEngine) -> None:
        self._engine = engine

    async def acquire(self, name: str, ttl_seconds: float) -> str | None:
        token = secrets.token_hex(16)
        now = _now()
        until = now + timedelta(seconds=ttl_seconds)
        # A free name has no row (release deletes it): the insert is the usual path, one
        # statement; only a held or abandoned name costs the conditional take-over too.
        try:
            async with self._engine.begin() as conn:
                await conn.execute(locks.insert().values(name=name, owner=token, expires_at=until))
        except IntegrityError:
            pass
        else:
            return token
        async with self._engine.begin() as conn:
            taken = await conn.execute(
                locks.update()
                .where(locks.c.name == name, locks.c.expires_at <= now)
                .values(owner=token, expires_at=until)
            )
            return token if taken.rowcount == 1 else None

    async def extend(self, name: str, token: str, ttl_seconds: float) -> bool:
        now = _now()
        async with self._engine.begin() as conn:
            done = await conn.execute(
                locks.update()
                .where(locks.c.name == name, locks.c.owner == token, locks.c.expires_at > now)
                .values(expires_at=now + timedelta(seconds=ttl_seconds))
            )
            return done.rowcount == 1

    async def release(self, name: str, token: str) -> None:
        async with self._engine.begin() as conn:
            await conn.execute(sa.delete(locks).where(locks.c.name == name, locks.c.owner == token))
