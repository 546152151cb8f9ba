"""Resources in SQL. Every change bumps the ``resources`` row of ``content_revisions`` in the same
transaction, so a retrieval index anywhere can tell with one primary-key read that it is stale."""

from __future__ import annotations

from typing import Any

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from orbsurv.adapters.persistence.tables import content_revisions, resources
from orbsurv.application.content.ports import ResourceFilter
from orbsurv.domain.content import Resource, ResourceType
from orbsurv.domain.errors import Conflict
from orbsurv.domain.pagination import Page, PageRequest

REVISION_NAME = "resources"
MAX_QUERY_WORDS = 8


def _to_resource(row: sa.Row[Any]) -> Resource:
    m = row._mapping
    return Resource(
        id=m["id"],
        slug=m["slug"],
        title=m["title"],
        type=ResourceType(m["type"]),
        description=m["description"],
        url=m["url"],
        body=m["body"],
        published=m["published"],
        created_by=m["created_by"],
        created_at=m["created_at"],
        updated_at=m["updated_at"],
    )


def _values(resource: Resource) -> dict[str, Any]:
    return {
        "slug": resource.slug,
        "title": resource.title,
        "type": resource.type.value,
        "description": resource.description,
        "url": resource.url,
        "body": resource.body,
        "published": resource.published,
        "updated_at": resource.updated_at,
    }


def _escape_like(word: str) -> str:
    return word.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")


async def resources_revision(conn: AsyncConnection) -> int:
    """The resources revision (0 before any change)."""
    value = (
        await conn.execute(
            sa.select(content_revisions.c.revision).where(content_revisions.c.name == REVISION_NAME)
        )
    ).scalar()
    return int(value or 0)


class SqlResourceRepository:
    def __init__(self, connection: AsyncConnection) -> None:
        self._conn = connection

    async def _bump(self) -> None:
        dialect = postgresql if self._conn.dialect.name == "postgresql" else sqlite
        insert = dialect.insert(content_revisions).values(name=REVISION_NAME, revision=1)
        await self._conn.execute(
            insert.on_conflict_do_update(
                index_elements=[content_revisions.c.name],
                set_={"revision": content_revisions.c.revision + 1},
            )
        )

    async def _write(self, statement: sa.Insert | sa.Update) -> None:
        try:
            async with self._conn.begin_nested():
                await self._conn.execute(statement)
        except IntegrityError as exc:
            raise Conflict(
                "A resource with this slug exists (slugs ignore case).", code="slug_taken"
            ) from exc
        await self._bump()

    async def add(self, resource: Resource) -> None:
        await self._write(
            resources.insert().values(
                id=resource.id,
                created_at=resource.created_at,
                created_by=resource.created_by,
                **_values(resource),
            )
        )

    async def get(self, slug: str) -> Resource | None:
        row = (
            await self._conn.execute(sa.select(resources).where(resources.c.slug == slug))
        ).first()
        return _to_resource(row) if row is not None else None

    async def slug_exists(self, slug: str) -> bool:
        found = await self._conn.execute(
            sa.select(resources.c.id).where(resources.c.slug == slug).limit(1)
        )
        return found.first() is not None

    async def update(self, resource: Resource, previous_slug: str) -> None:
        await self._write(
            resources.update().where(resources.c.slug == previous_slug).values(**_values(resource))
        )

    async def delete(self, slug: str) -> bool:
        result = await self._conn.execute(resources.delete().where(resources.c.slug == slug))
        if not result.rowcount:
            return False
        await self._bump()
        return True

    async def page(self, where: ResourceFilter, page: PageRequest) -> Page[Resource]:
        conditions: list[sa.ColumnElement[bool]] = []
        if not where.include_drafts:
            conditions.append(resources.c.published.is_(True))
        if where.type is not None:
            conditions.append(resources.c.type == where.type.value)
        for word in (where.q or "").lower().split()[:MAX_QUERY_WORDS]:
            pattern = f"%{_escape_like(word)}%"
            conditions.append(
                sa.or_(
                    *(
                        sa.func.lower(column).like(pattern, escape="\\")
                        for column in (resources.c.title, resources.c.description, resources.c.body)
                    )
                )
            )
        total = (
            await self._conn.execute(
                sa.select(sa.func.count()).select_from(resources).where(*conditions)
            )
        ).scalar_one()
        rows = await self._conn.execute(
            sa.select(resources)
            .where(*conditions)
            .order_by(resources.c.created_at.desc(), resources.c.id.desc())
            .limit(page.page_size)
            .offset(page.offset)
        )
        return Page(
            items=[_to_resource(row) for row in rows],
            total=total,
            page=page.page,
            page_size=page.page_size,
        )


class SqlPublishedResources:
    """The published resources for the retrieval index, on short connections of their own."""

    def __init__(self, engine: AsyncEngine) -> None:
        self._engine = engine

    async def revision(self) -> int:
        async with self._engine.connect() as conn:
            return await resources_revision(conn)

    async def snapshot(self) -> tuple[int, list[Resource]]:
        """The revision, then every published resource. The revision is read first, so a change
        landing in between only makes the next check rebuild once more, never miss a change."""
        async with self._engine.connect() as conn:
            revision = await resources_revision(conn)
            rows = await conn.execute(
                sa.select(resources)
                .where(resources.c.published.is_(True))
                .order_by(resources.c.created_at, resources.c.id)
            )
            return revision, [_to_resource(row) for row in rows]
