"""Project rows, per-user storage quota and cleanup markers, in SQLAlchemy Core.

The quota rule lives in one statement: ``reserve`` is
``UPDATE storage_usage SET reserved_bytes = reserved_bytes + :n WHERE user_id = :u AND
used_bytes + reserved_bytes + :n <= COALESCE(quota_bytes, :default) RETURNING ...``. On
PostgreSQL a second concurrent reservation waits on the row lock and then re-evaluates the
condition against the committed row (READ COMMITTED), so both cannot fit; SQLite serialises
writers with ``BEGIN IMMEDIATE``. The row is created first with ``INSERT ... ON CONFLICT DO
NOTHING``, so there is never a read-then-write.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from orbsurv.adapters.persistence.tables import object_cleanups, projects, storage_usage
from orbsurv.application.errors import QuotaExceeded
from orbsurv.application.files.ports import Cleanup, QuotaUsage
from orbsurv.domain.files import Project, Visibility
from orbsurv.domain.pagination import Page, PageRequest


def _insert(conn: AsyncConnection, table: sa.Table) -> Any:
    dialect = postgresql if conn.dialect.name == "postgresql" else sqlite
    return dialect.insert(table)


def _like(text: str) -> str:
    escaped = text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
    return f"%{escaped.lower()}%"


def _project(row: sa.Row[Any]) -> Project:
    m = row._mapping
    return Project(
        id=m["id"],
        owner_id=m["owner_id"],
        name=m["name"],
        description=m["description"],
        version=m["version"],
        visibility=Visibility(m["visibility"]),
        file_name=m["file_name"],
        object_key=m["object_key"],
        size=int(m["size"]),
        sha256=m["sha256"],
        content_type=m["content_type"],
        downloads=int(m["downloads"]),
        created_at=m["created_at"],
        updated_at=m["updated_at"],
    )


class SqlProjectRepository:
    def __init__(self, connection: AsyncConnection) -> None:
        self._conn = connection

    async def add(self, project: Project) -> None:
        await self._conn.execute(
            projects.insert().values(
                id=project.id,
                owner_id=project.owner_id,
                name=project.name,
                description=project.description,
                version=project.version,
                visibility=project.visibility.value,
                file_name=project.file_name,
                object_key=project.object_key,
                size=project.size,
                sha256=project.sha256,
                content_type=project.content_type,
                downloads=project.downloads,
                created_at=project.created_at,
                updated_at=project.updated_at,
            )
        )

    async def get(self, project_id: str) -> Project | None:
        row = (
            await self._conn.execute(sa.select(projects).where(projects.c.id == project_id))
        ).first()
        return None if row is None else _project(row)

    async def list_visible(
        self, viewer_id: str, page: PageRequest, *, query: str | None, is_admin: bool
    ) -> Page[Project]:
        conditions: list[Any] = []
        if not is_admin:
            conditions.append(
                sa.or_(
                    projects.c.visibility == Visibility.PUBLIC.value,
                    projects.c.owner_id == viewer_id,
                )
            )
        if query:
            pattern = _like(query)
            conditions.append(
                sa.or_(
                    sa.func.lower(projects.c.name).like(pattern, escape="\\"),
                    sa.func.lower(projects.c.description).like(pattern, escape="\\"),
                )
            )
        where = sa.and_(sa.true(), *conditions)
        total = (
            await self._conn.execute(sa.select(sa.func.count()).select_from(projects).where(where))
        ).scalar_one()
        rows = await self._conn.execute(
            sa.select(projects)
            .where(where)
            .order_by(projects.c.created_at.desc(), projects.c.id.desc())
            .limit(page.page_size)
            .offset(page.offset)
        )
        return Page(
            items=[_project(row) for row in rows],
            total=int(total),
            page=page.page,
            page_size=page.page_size,
        )

    async def update(self, project: Project) -> None:
        await self._conn.execute(
            projects.update()
            .where(projects.c.id == project.id)
            .values(
                name=project.name,
                description=project.description,
                visibility=project.visibility.value,
                updated_at=project.updated_at,
            )
        )

    async def delete(self, project_id: str) -> Project | None:
        row = (
            await self._conn.execute(
                projects.delete().where(projects.c.id == project_id).returning(*projects.c)
            )
        ).first()
        return None if row is None else _project(row)

    async def count_download(self, project_id: str) -> None:
        await self._conn.execute(
            projects.update()
            .where(projects.c.id == project_id)
            .values(downloads=projects.c.downloads + 1)
        )


class SqlProjectDownloads:
    """Lookups and counting for downloads on short connections of their own, so a long
    transfer holds no pooled connection while it streams."""

    def __init__(self, engine: AsyncEngine) -> None:
        self._engine = engine

    async def find(self, project_id: str) -> Project | None:
        async with self._engine.connect() as conn:
            return await SqlProjectRepository(conn).get(project_id)

    async def count(self, project_id: str) -> None:
        async with self._engine.begin() as conn:
            await SqlProjectRepository(conn).count_download(project_id)


class SqlStorageQuota:
    """``StorageQuota`` on the ``storage_usage`` table (see the module docstring)."""

    def __init__(self, connection: AsyncConnection, default_quota: int) -> None:
        self._conn = connection
        self._default = default_quota

    async def _ensure(self, user_id: str) -> None:
        await self._conn.execute(
            _insert(self._conn, storage_usage)
            .values(user_id=user_id, used_bytes=0, reserved_bytes=0)
            .on_conflict_do_nothing(index_elements=["user_id"])
        )

    def _quota(self) -> Any:
        return sa.func.coalesce(storage_usage.c.quota_bytes, self._default)

    async def reserve(self, user_id: str, size: int) -> QuotaUsage:
        await self._ensure(user_id)
        c = storage_usage.c
        row = (
            await self._conn.execute(
                storage_usage.update()
                .where(
                    c.user_id == user_id, c.used_bytes + c.reserved_bytes + size <= self._quota()
                )
                .values(reserved_bytes=c.reserved_bytes + size)
                .returning(c.used_bytes, c.reserved_bytes, self._quota())
            )
        ).first()
        if row is None:
            usage = await self.usage(user_id)
            raise QuotaExceeded(
                f"The upload does not fit in the storage quota ({usage.free} of "
                f"{usage.quota} bytes free)."
            )
        return QuotaUsage(int(row[0]), int(row[1]), int(row[2]))

    async def _shift(self, user_id: str, reserved: int, stored: int) -> None:
        c = storage_usage.c
        await self._ensure(user_id)
        await self._conn.execute(
            storage_usage.update()
            .where(c.user_id == user_id)
            .values(
                reserved_bytes=sa.case(
                    (c.reserved_bytes >= reserved, c.reserved_bytes - reserved), else_=0
                ),
                used_bytes=sa.case((c.used_bytes + stored >= 0, c.used_bytes + stored), else_=0),
            )
        )

    async def commit(self, user_id: str, reserved: int, stored: int) -> None:
        await self._shift(user_id, reserved, stored)

    async def release(self, user_id: str, reserved: int) -> None:
        await self._shift(user_id, reserved, 0)

    async def free(self, user_id: str, stored: int) -> None:
        await self._shift(user_id, 0, -stored)

    async def usage(self, user_id: str) -> QuotaUsage:
        c = storage_usage.c
        row = (
            await self._conn.execute(
                sa.select(c.used_bytes, c.reserved_bytes, c.quota_bytes).where(c.user_id == user_id)
            )
        ).first()
        if row is None:
            return QuotaUsage(0, 0, self._default)
        quota = self._default if row[2] is None else int(row[2])
        return QuotaUsage(int(row[0]), int(row[1]), quota)

    async def set_quota(self, user_id: str, quota: int | None) -> None:
        await self._ensure(user_id)
        await self._conn.execute(
            storage_usage.update()
            .where(storage_usage.c.user_id == user_id)
            .values(quota_bytes=quota)
        )


class SqlObjectCleanups:
    def __init__(self, connection: AsyncConnection) -> None:
        self._conn = connection

    async def add(self, cleanup: Cleanup) -> None:
        await self._conn.execute(
            _insert(self._conn, object_cleanups)
            .values(
                object_key=cleanup.object_key,
                kind=cleanup.kind,
                user_id=cleanup.user_id,
                reserved_bytes=cleanup.reserved_bytes,
                created_at=cleanup.created_at,
            )
            .on_conflict_do_nothing(index_elements=["object_key"])
        )

    async def remove(self, object_key: str) -> bool:
        gone = await self._conn.execute(
            object_cleanups.delete()
            .where(object_cleanups.c.object_key == object_key)
            .returning(object_cleanups.c.object_key)
        )
        return gone.first() is not None

    async def due(
        self, *, uploads_before: datetime, deletes_before: datetime, limit: int
    ) -> list[Cleanup]:
        c = object_cleanups.c
        rows = await self._conn.execute(
            sa.select(object_cleanups)
            .where(
                sa.or_(
                    sa.and_(c.kind == "upload", c.created_at < uploads_before),
                    sa.and_(c.kind != "upload", c.created_at < deletes_before),
                )
            )
            .order_by(c.created_at)
            .limit(limit)
        )
        return [
            Cleanup(
                object_key=m["object_key"],
                kind=m["kind"],
                user_id=m["user_id"],
                reserved_bytes=int(m["reserved_bytes"]),
                created_at=m["created_at"],
            )
            for m in (row._mapping for row in rows)
        ]
