"""Reading and managing published packages.

Object-level authorization on every route: a package is visible to everyone when public, to its
owner, and to admins; anything else answers 404 exactly like a package that does not exist, so
ids cannot be probed (OWASP API Security Top 10, API1:2023). Metadata changes only through
``UpdatePackage`` (the owner), never as a side effect of an upload. Deleting a package drops one
blob reference per version; a blob whose last reference went is deleted from storage after the
rows are gone (a crash in between leaves an object with no row, which costs bytes, never
correctness).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from orbsurv.application.packages.ports import (
    PackageCatalog,
    PackageFilter,
    PackageSummary,
    PackageView,
    VersionScheme,
    VersionView,
)
from orbsurv.application.packages.versions import MAX_TEXT, latest, optional_text
from orbsurv.application.ports import Clock, ObjectStorage
from orbsurv.domain.errors import Forbidden
from orbsurv.domain.identity import Permission, Principal
from orbsurv.domain.packages import PackageNotFound
from orbsurv.domain.pagination import Page, PageRequest


def _is_admin(principal: Principal) -> bool:
    return principal.can(Permission.READ_CONSOLE)


def _visible(package: PackageView, principal: Principal) -> bool:
    return package.is_public or package.owner_id == principal.user_id or _is_admin(principal)


async def visible_package(
    catalog: PackageCatalog, principal: Principal, package_id: str
) -> PackageView:
    """The package when ``principal`` may see it; ``PackageNotFound`` otherwise."""
    package = await catalog.get(package_id)
    if package is None or not _visible(package, principal):
        raise PackageNotFound("No such package.")
    return package


@dataclass(frozen=True, slots=True)
class PackageListing:
    package: PackageView
    latest_version: str | None


@dataclass(frozen=True, slots=True)
class ListPackages:
    """Public packages and the caller's own (admins: all), newest first, filtered."""

    catalog: PackageCatalog
    versions: VersionScheme

    async def __call__(
        self,
        principal: Principal,
        page: PageRequest,
        *,
        q: str | None = None,
        category: str | None = None,
        language: str | None = None,
        every: bool = False,
    ) -> Page[PackageListing]:
        filters = PackageFilter(
            viewer_id=principal.user_id,
            is_admin=every and _is_admin(principal),
            q=optional_text(q, "q", MAX_TEXT["description"]) if q else None,
            category=optional_text(category, "category"),
            language=optional_text(language, "language"),
        )
        found = await self.catalog.find(filters, page)
        items = [
            PackageListing(p, latest(self.versions, ((v, v) for v in p.version_names)))
            for p in found.items
        ]
        return Page(items=items, total=found.total, page=found.page, page_size=found.page_size)


@dataclass(frozen=True, slots=True)
class VersionListing:
    package: PackageView
    versions: list[VersionView]
    latest: VersionView | None


@dataclass(frozen=True, slots=True)
class ListVersions:
    """Versions newest first; ``latest`` is the highest SemVer precedence. Raises
    ``PackageNotFound``."""

    catalog: PackageCatalog
    scheme: VersionScheme

    async def __call__(self, principal: Principal, package_id: str) -> VersionListing:
        package = await visible_package(self.catalog, principal, package_id)
        versions = await self.catalog.versions(package_id)
        return VersionListing(
            package, versions, latest(self.scheme, ((v.version, v) for v in versions))
        )


@dataclass(frozen=True, slots=True)
class FindVersion:
    """One version for download. Raises ``PackageNotFound``."""

    catalog: PackageCatalog

    async def __call__(
        self, principal: Principal, package_id: str, version_id: str
    ) -> tuple[PackageView, VersionView]:
        package = await visible_package(self.catalog, principal, package_id)
        for version in await self.catalog.versions(package_id):
            if version.id == version_id:
                return package, version
        raise PackageNotFound("No such version.")


@dataclass(frozen=True, slots=True)
class CountPackageDownload:
    catalog: PackageCatalog

    async def __call__(self, version_id: str) -> None:
        await self.catalog.count_download(version_id)


@dataclass(frozen=True, slots=True)
class PackageChanges:
    """Only the fields given change; ``None`` leaves a field as it is."""

    description: str | None = None
    category: str | None = None
    language: str | None = None
    is_public: bool | None = None


@dataclass(frozen=True, slots=True)
class UpdatePackage:
    """The owner edits metadata. Raises ``PackageNotFound`` (invisible) or ``Forbidden`` (a
    visible package of someone else), ``FieldInvalid``."""

    catalog: PackageCatalog
    clock: Clock

    async def __call__(
        self, principal: Principal, package_id: str, changes: PackageChanges
    ) -> PackageView:
        package = await visible_package(self.catalog, principal, package_id)
        if package.owner_id != principal.user_id:
            raise Forbidden("Only the owner may edit this package.", code="not_owner")
        values: dict[str, Any] = {}
        if changes.description is not None:
            values["description"] = optional_text(changes.description, "description") or ""
        if changes.category is not None:
            values["category"] = optional_text(changes.category, "category")
        if changes.language is not None:
            values["language"] = optional_text(changes.language, "language")
        if changes.is_public is not None:
            values["is_public"] = changes.is_public
        if values:
            await self.catalog.update(package_id, values, self.clock.now())
        updated = await self.catalog.get(package_id)
        assert updated is not None
        return updated


@dataclass(frozen=True, slots=True)
class DeletePackage:
    """Owner or admin. Raises ``PackageNotFound`` or ``Forbidden``."""

    catalog: PackageCatalog
    storage: ObjectStorage

    async def __call__(self, principal: Principal, package_id: str) -> None:
        package = await visible_package(self.catalog, principal, package_id)
        if package.owner_id != principal.user_id and not _is_admin(principal):
            raise Forbidden("Only the owner or an admin may delete this package.")
        for key in await self.catalog.delete(package_id):
            await self.storage.delete(key)


@dataclass(frozen=True, slots=True)
class SummarisePackages:
    catalog: PackageCatalog

    async def __call__(self) -> PackageSummary:
        return await self.catalog.summary()
