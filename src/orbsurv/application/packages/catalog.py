"""Reading and managing published packages.

Object-level authorization on every route: a package is visible to everyone when public, to its
owner, and to admins; anything else answers 404 exactly like a package that does not exist, so
ids cannot be probed (OWASP API Security Top 10, API1:2023). Metadata changes only through
``UpdatePackage`` (the owner), never as a side effect of an upload. Deleting a package drops one
blob reference per version; a blob whose last reference went is deleted from storage after the
rows are gone (a crash in between leaves an object with no row, which costs bytes, never
correctness).

Every change is audited in the transaction that makes it (``package.updated``,
``package.deleted``; publications record theirs in ``PackageCatalog.publish``). Deleting another
user's package is a console write (the dev role in a dev session, like every console write):
an admin reads every package but deletes only their own, and a refusal is a 403 the HTTP
adapter audits as ``access.denied``.
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
from orbsurv.domain.audit import AuditEvent, RequestContext
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
    versions: Page[VersionView]
    latest: tuple[str, str] | None  # (version id, version) of the highest precedence


@dataclass(frozen=True, slots=True)
class ListVersions:
    """One page of versions, newest first; ``latest`` is the highest SemVer precedence among
    every version (not the page's, not the last upload). Raises ``PackageNotFound``."""

    catalog: PackageCatalog
    scheme: VersionScheme

    async def __call__(
        self, principal: Principal, package_id: str, page: PageRequest | None = None
    ) -> VersionListing:
        package = await visible_package(self.catalog, principal, package_id)
        versions = await self.catalog.version_page(package_id, page or PageRequest())
        names = await self.catalog.version_names(package_id)
        return VersionListing(
            package, versions, latest(self.scheme, ((text, (vid, text)) for vid, text in names))
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
    """The owner edits metadata; the change and its ``package.updated`` event (the fields
    changed, and the visibility before and after) commit together. Raises ``PackageNotFound``
    (invisible, or deleted meanwhile) or ``Forbidden`` (a visible package of someone else),
    ``FieldInvalid``."""

    catalog: PackageCatalog
    clock: Clock

    async def __call__(
        self,
        principal: Principal,
        package_id: str,
        changes: PackageChanges,
        context: RequestContext | None = None,
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
            now = self.clock.now()
            event = AuditEvent(
                "package.updated",
                now,
                context or RequestContext(),
                actor_user_id=principal.user_id,
                target_type="package",
                target_id=package_id,
                metadata={
                    "fields": ",".join(sorted(values)),
                    "is_public": values.get("is_public", package.is_public),
                    "from_is_public": package.is_public,
                },
            )
            if not await self.catalog.update(package_id, values, now, event):
                raise PackageNotFound("No such package.")
        updated = await self.catalog.get(package_id)
        if updated is None:
            raise PackageNotFound("No such package.")
        return updated


@dataclass(frozen=True, slots=True)
class DeletePackage:
    """The owner deletes their package; another user's needs the console-write permission
    (``Permission.ADMINISTER``: a dev in a dev session). The rows and the ``package.deleted``
    event (owner, name, versions, bytes) commit together; unreferenced bytes go afterwards.
    Raises ``PackageNotFound`` (invisible, or deleted meanwhile) or ``Forbidden``
    (``dev_session_required`` for a dev without the second factor, ``forbidden`` otherwise)."""

    catalog: PackageCatalog
    storage: ObjectStorage
    clock: Clock

    async def __call__(
        self, principal: Principal, package_id: str, context: RequestContext | None = None
    ) -> None:
        package = await visible_package(self.catalog, principal, package_id)
        own = package.owner_id == principal.user_id
        if not own and not principal.can(Permission.ADMINISTER):
            code = principal.refusal_code(Permission.ADMINISTER)
            raise Forbidden(
                "Deleting another user's package needs a dev session opened with a one-time "
                "code (scope=dev)."
                if code == "dev_session_required"
                else "Only the owner, or a dev in a dev session, may delete this package.",
                code=code,
            )
        event = AuditEvent(
            "package.deleted",
            self.clock.now(),
            context or RequestContext(),
            actor_user_id=principal.user_id,
            target_type="package",
            target_id=package_id,
            metadata={
                "owner_id": package.owner_id,
                "name": package.name,
                "versions": package.versions,
                "size": package.size,
                "is_public": package.is_public,
                "by_owner": own,
            },
        )
        freed = await self.catalog.delete(package_id, event)
        if freed is None:
            raise PackageNotFound("No such package.")
        for key in freed:
            await self.storage.delete(key)


@dataclass(frozen=True, slots=True)
class SummarisePackages:
    catalog: PackageCatalog

    async def __call__(self) -> PackageSummary:
        return await self.catalog.summary()
