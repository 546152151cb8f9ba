"""The knowledge base's use cases: anyone reads published resources, content managers (admin,
and dev in a dev session) also read drafts and create, change and delete; every change is
audited with the fields it touched.

Slugs are normalised by the domain, so the database's unique index on the slug also refuses case
variants: a duplicate is a 409 ``slug_taken``, decided by the database, never a 500. A slug made
from the title takes the first free ``-2``, ``-3``... suffix instead, since nobody chose it.
Checking for a free slug and inserting it are two statements, so a parallel request with the same
title can take the slug in between: the database refuses the second insert, and a generated slug
is then looked for again (the winner's is now visible), at most ``GENERATED_SLUG_RACES`` times
(each lost race means another request took a slug, so parallel requests settle quickly), then
once with a random suffix. Only a slug the client chose is answered 409.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass

from orbsurv.application.content.ports import ResourceFilter, ResourceRepository
from orbsurv.application.ports import AuditLog, Clock, UnitOfWork
from orbsurv.domain.audit import AuditEvent, RequestContext
from orbsurv.domain.content import Resource, ResourceChange, ResourceDraft, slugify
from orbsurv.domain.errors import Conflict, NotFound
from orbsurv.domain.identity import Permission, Principal
from orbsurv.domain.pagination import Page, PageRequest

GENERATED_SLUG_TRIES = 50
GENERATED_SLUG_RACES = 20


def _random_suffix(base: str) -> str:
    return f"{base[:111].rstrip('-')}-{uuid.uuid4().hex[:8]}"


def can_manage(principal: Principal | None) -> bool:
    return principal is not None and principal.can(Permission.MANAGE_CONTENT)


def _missing(slug: str) -> NotFound:
    return NotFound(f"No resource with slug {slug!r}.", code="resource_not_found")


@dataclass(frozen=True, slots=True)
class ListResources:
    resources: ResourceRepository

    async def __call__(
        self, reader: Principal | None, where: ResourceFilter, page: PageRequest
    ) -> Page[Resource]:
        visible = ResourceFilter(
            type=where.type, q=where.q, include_drafts=where.include_drafts and can_manage(reader)
        )
        return await self.resources.page(visible, page)


@dataclass(frozen=True, slots=True)
class GetResource:
    resources: ResourceRepository

    async def __call__(self, reader: Principal | None, slug: str) -> Resource:
        """``NotFound`` for an unknown slug and for a draft the reader may not see."""
        resource = await self.resources.get(slug)
        if resource is None or not resource.visible_to(can_manage(reader)):
            raise _missing(slug)
        return resource


@dataclass(frozen=True, slots=True)
class CreateResource:
    resources: ResourceRepository
    audit: AuditLog
    uow: UnitOfWork
    clock: Clock

    async def _free_slug(self, title: str) -> str:
        base = slugify(title)
        for attempt in range(1, GENERATED_SLUG_TRIES + 1):
            suffix = "" if attempt == 1 else f"-{attempt}"
            candidate = base[: 120 - len(suffix)].rstrip("-") + suffix
            if not await self.resources.slug_exists(candidate):
                return candidate
        return _random_suffix(base)

    async def _added(self, resource: Resource, title: str) -> None:
        """Insert ``resource`` under a generated slug, looking again when a parallel request
        took it first (``Conflict`` ``slug_taken`` from the database's unique index)."""
        for _ in range(GENERATED_SLUG_RACES):
            resource.slug = await self._free_slug(title)
            try:
                await self.resources.add(resource)
                return
            except Conflict as exc:
                if exc.code != "slug_taken":
                    raise
        resource.slug = _random_suffix(slugify(title))
        await self.resources.add(resource)

    async def __call__(
        self, editor: Principal, draft: ResourceDraft, context: RequestContext
    ) -> Resource:
        """Raise ``Conflict`` (``slug_taken``) when the client's own slug exists."""
        now = self.clock.now()
        resource = Resource(
            slug=draft.slug or "",
            title=draft.title,
            type=draft.type,
            description=draft.description,
            url=draft.url,
            body=draft.body,
            published=draft.published,
            created_at=now,
            updated_at=now,
            created_by=editor.user_id,
        )
        if draft.slug is not None:
            await self.resources.add(resource)
        else:
            await self._added(resource, draft.title)
        slug = resource.slug
        await self.audit.record(
            AuditEvent(
                action="resource.created",
                occurred_at=now,
                context=context,
                actor_user_id=editor.user_id,
                target_type="resource",
                target_id=resource.id,
                metadata={"slug": slug, "published": resource.published},
            )
        )
        await self.uow.commit()
        return resource


@dataclass(frozen=True, slots=True)
class UpdateResource:
    resources: ResourceRepository
    audit: AuditLog
    uow: UnitOfWork
    clock: Clock

    async def __call__(
        self, editor: Principal, slug: str, change: ResourceChange, context: RequestContext
    ) -> Resource:
        resource = await self.resources.get(slug)
        if resource is None:
            raise _missing(slug)
        previous_slug = resource.slug
        now = self.clock.now()
        changed = change.apply(resource, now)
        if not changed:
            return resource
        await self.resources.update(resource, previous_slug)
        await self.audit.record(
            AuditEvent(
                action="resource.updated",
                occurred_at=now,
                context=context,
                actor_user_id=editor.user_id,
                target_type="resource",
                target_id=resource.id,
                metadata={"slug": resource.slug, "from_slug": previous_slug, "fields": changed},
            )
        )
        await self.uow.commit()
        return resource


@dataclass(frozen=True, slots=True)
class DeleteResource:
    resources: ResourceRepository
    audit: AuditLog
    uow: UnitOfWork
    clock: Clock

    async def __call__(self, editor: Principal, slug: str, context: RequestContext) -> None:
        resource = await self.resources.get(slug)
        if resource is None or not await self.resources.delete(resource.slug):
            raise _missing(slug)
        await self.audit.record(
            AuditEvent(
                action="resource.deleted",
                occurred_at=self.clock.now(),
                context=context,
                actor_user_id=editor.user_id,
                target_type="resource",
                target_id=resource.id,
                metadata={"slug": resource.slug},
            )
        )
        await self.uow.commit()
