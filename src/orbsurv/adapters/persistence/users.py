from __future__ import annotations

from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from orbsurv.adapters.persistence.database import reads_only
from orbsurv.adapters.persistence.tables import users
from orbsurv.domain.errors import Conflict
from orbsurv.domain.identity import Role, User
from orbsurv.domain.pagination import Page, PageRequest


def _unique_column(exc: IntegrityError) -> str | None:
    """The ``users`` column whose unique constraint ``exc`` violated, if it was one: asyncpg
    names the constraint (``uq_users_<column>``), SQLite says ``UNIQUE constraint failed:
    users.<column>``. Read from the error's fields, never from the row values it quotes."""
    constraint = getattr(exc.orig.__cause__, "constraint_name", None) if exc.orig else None
    if isinstance(constraint, str) and constraint.startswith("uq_users_"):
        return constraint.removeprefix("uq_users_")
    prefix = "UNIQUE constraint failed: users."
    message = str(exc.orig)
    if message.startswith(prefix):
        return message.removeprefix(prefix).split(",")[0].strip()
    return None


def _to_user(row: sa.Row[Any]) -> User:
    return User(
        id=row.id,
        email=row.email,
        username=row.username,
        name=row.name,
        organization=row.organization,
        password_hash=row.password_hash,
        role=Role(row.role),
        is_active=row.is_active,
        email_verified=row.email_verified,
        otp_secret=row.otp_secret,
        otp_enabled=row.otp_enabled,
        otp_last_step=row.otp_last_step,
        last_login_at=row.last_login_at,
        created_at=row.created_at,
        updated_at=row.updated_at,
        version=row.version,
    )


def _values(user: User) -> dict[str, Any]:
    """The fields a use case may change; ``last_login_at`` belongs to sign-in alone."""
    return {
        "email": user.email,
        "username": user.username,
        "name": user.name,
        "organization": user.organization,
        "password_hash": user.password_hash,
        "role": user.role.value,
        "is_active": user.is_active,
        "email_verified": user.email_verified,
        "otp_secret": user.otp_secret,
        "otp_enabled": user.otp_enabled,
        "otp_last_step": user.otp_last_step,
        "created_at": user.created_at,
        "updated_at": user.updated_at,
    }


def _credential_changed(values: dict[str, Any]) -> sa.ColumnElement[bool]:
    """True when the new values differ from the row's in a credential: the SET clause of an
    UPDATE sees the old row, so the database itself decides, in the same statement."""
    return sa.or_(
        users.c.password_hash != values["password_hash"],
        users.c.email != values["email"],
        users.c.is_active != values["is_active"],
        users.c.role != values["role"],  # an operator's role change ends the links too
    )


class SqlUserRepository:
    def __init__(self, connection: AsyncConnection) -> None:
        self._conn = connection

    async def add(self, user: User) -> None:
        values = _values(user)
        await self._write(
            users.insert().values(id=user.id, last_login_at=user.last_login_at, **values), user
        )

    async def update(self, user: User) -> None:
        values = _values(user)
        generation = users.c.credential_generation
        statement = (
            users.update()
            .where(users.c.id == user.id, users.c.version == user.version)
            .values(
                **values,
                version=users.c.version + 1,
                credential_generation=sa.case(
                    (_credential_changed(values), generation + 1), else_=generation
                ),
            )
            .returning(users.c.version)
        )
        version = await self._write(statement, user)
        if version is None:
            raise Conflict(
                "The account changed while this request was being handled; try again.",
                code="concurrent_update",
            )
        user.version = version

    async def record_login(
        self, user_id: str, verified_hash: str, now: datetime, new_hash: str | None = None
    ) -> bool:
        # Conditional on the hash that was verified: a password change (or a deactivation)
        # committed meanwhile makes this match nothing, and nothing it did not own is written.
        row = (
            await self._conn.execute(
                users.update()
                .where(
                    users.c.id == user_id,
                    users.c.password_hash == verified_hash,
                    users.c.is_active.is_(True),
                )
                .values(last_login_at=now, password_hash=new_hash or verified_hash)
                .returning(users.c.id)
            )
        ).first()
        return row is not None

    async def claim_otp_step(self, user_id: str, secret: str, step: int) -> bool:
        row = (
            await self._conn.execute(
                users.update()
                .where(
                    users.c.id == user_id,
                    users.c.otp_enabled.is_(True),
                    users.c.otp_secret == secret,
                    sa.or_(users.c.otp_last_step.is_(None), users.c.otp_last_step < step),
                )
                .values(otp_last_step=step, version=users.c.version + 1)
                .returning(users.c.id)
            )
        ).first()
        return row is not None

    async def _write(self, statement: sa.Insert | sa.Update, user: User) -> Any:
        """Execute in a savepoint; the first column of the returned row, if any."""
        try:
            async with self._conn.begin_nested():
                result = await self._conn.execute(statement)
                return result.scalar() if result.returns_rows else None
        except IntegrityError as exc:
            column = _unique_column(exc)
            if column == "username":
                raise Conflict("This username is taken.", code="username_taken") from exc
            if column == "email":
                raise Conflict(
                    "An account with this email already exists.", code="email_taken"
                ) from exc
            raise  # not a client's doing: any other constraint is a fault of ours

    async def _one(self, condition: sa.ColumnElement[bool]) -> User | None:
        row = (await self._conn.execute(sa.select(users).where(condition))).first()
        return _to_user(row) if row is not None else None

    async def get(self, user_id: str) -> User | None:
        return await self._one(users.c.id == user_id)

    async def get_by_email(self, email: str) -> User | None:
        return await self._one(users.c.email == email)

    async def get_by_username(self, username: str) -> User | None:
        return await self._one(users.c.username == username.lower())

    async def list(self, page: PageRequest) -> Page[User]:
        total = (
            await self._conn.execute(sa.select(sa.func.count()).select_from(users))
        ).scalar_one()
        rows = await self._conn.execute(
            sa.select(users)
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


class SqlUserLookup:
    """One user by id on a short connection of its own, outside any request transaction."""

    def __init__(self, engine: AsyncEngine) -> None:
        self._engine = reads_only(engine)

    async def get(self, user_id: str) -> User | None:
        async with self._engine.connect() as conn:
            return await SqlUserRepository(conn).get(user_id)
