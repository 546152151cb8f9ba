"""Ports of the knowledge base."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

from orbsurv.domain.content import Resource, ResourceType
from orbsurv.domain.pagination import Page, PageRequest


@dataclass(frozen=True, slots=True)
class ResourceFilter:
    type: ResourceType | None = None
    q: str | None = None  # every word must appear in the title, description or body
    include_drafts: bool = False


class ResourceRepository(Protocol):
    async def add(self, resource: Resource) -> None:
        """Insert; ``Conflict`` (``slug_taken``) when the slug exists (slugs are normalised, so
        this covers case variants). Bumps the resources revision."""
        ...

    async def get(self, slug: str) -> Resource | None:
        """By normalised slug, drafts included."""
        ...

    async def slug_exists(self, slug: str) -> bool: ...

    async def update(self, resource: Resource, previous_slug: str) -> None:
        """Write every field; ``Conflict`` (``slug_taken``) when a renamed slug exists. Bumps
        the resources revision."""
        ...

    async def delete(self, slug: str) -> bool:
        """``False`` when no such resource. Bumps the resources revision."""
        ...

    async def page(self, where: ResourceFilter, page: PageRequest) -> Page[Resource]:
        """Newest first with a tie-break on id."""
        ...
