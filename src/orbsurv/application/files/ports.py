"""Ports of the files context: project rows, the per-user storage quota, cleanup markers."""

from __future__ import annotations

from contextlib import AbstractAsyncContextManager
from dataclasses import dataclass
from datetime import datetime
from typing import Protocol

from orbsurv.application.ports import AuditLog, UnitOfWork
from orbsurv.domain.files import Project, Visibility
from orbsurv.domain.pagination import Page, PageRequest


@dataclass(frozen=True, slots=True)
class QuotaUsage:
    """Bytes stored, bytes reserved by uploads in flight, and the quota that applies."""

    used: int
    reserved: int
    quota: int

    @property
    def free(self) -> int:
        return max(0, self.quota - self.used - self.reserved)


class StorageQuota(Protocol):
    """Per-user storage accounting shared by every context that stores user files (projects,
    software packages). Every method runs in the caller's transaction; the caller commits.

    An upload ``reserve``s its declared size before it streams, then either ``commit``s (the
    reservation becomes stored bytes) or ``release``s it. Deleting a file ``free``s its bytes.
    ``reserve`` is one conditional ``UPDATE ... WHERE used + reserved + n <= quota``, so two
    concurrent uploads can never both fit under a quota only one of them fits under."""

    async def reserve(self, user_id: str, size: int) -> QuotaUsage:
        """Reserve ``size`` bytes; raise ``QuotaExceeded`` (413) when they do not fit."""
        ...

    async def commit(self, user_id: str, reserved: int, stored: int) -> None:
        """Turn a reservation of ``reserved`` bytes into ``stored`` bytes in use."""
        ...

    async def release(self, user_id: str, reserved: int) -> None:
        """Give back a reservation of ``reserved`` bytes (the upload failed)."""
        ...

    async def free(self, user_id: str, stored: int) -> None:
        """Give back ``stored`` bytes in use (a file was deleted)."""
        ...

    async def usage(self, user_id: str) -> QuotaUsage: ...

    async def set_quota(self, user_id: str, quota: int | None) -> None:
        """An operator's quota for one user in bytes; ``None`` restores the default."""
        ...


@dataclass(frozen=True, slots=True)
class Cleanup:
    """A marker for an object a crash could leave behind (see ``ObjectCleanups``)."""

    object_key: str
    kind: str  # "upload" (in flight) or "delete" (its row is gone)
    user_id: str | None
    reserved_bytes: int
    created_at: datetime


class ObjectCleanups(Protocol):
    """Markers written (and committed) before an object is written or after its row is deleted,
    removed when the request finishes. A marker that outlives its request names an object a
    crash left behind; the worker's sweep removes the object and the marker."""

    async def add(self, cleanup: Cleanup) -> None: ...

    async def remove(self, object_key: str) -> bool:
        """Remove the marker; ``False`` when it was already gone."""
        ...

    async def due(
        self, *, uploads_before: datetime, deletes_before: datetime, limit: int
    ) -> list[Cleanup]:
        """Upload markers older than ``uploads_before`` and delete markers older than
        ``deletes_before``, oldest first."""
        ...


@dataclass(frozen=True, slots=True)
class ProjectChanges:
    name: str | None = None
    description: str | None = None
    visibility: Visibility | None = None


class ProjectRepository(Protocol):
    async def add(self, project: Project) -> None: ...

    async def get(self, project_id: str) -> Project | None: ...

    async def list_visible(
        self, viewer_id: str, page: PageRequest, *, query: str | None, is_admin: bool
    ) -> Page[Project]:
        """Public projects and the viewer's own (every project for admins), newest first,
        filtered by ``query`` (case-insensitive substring of name or description)."""
        ...

    async def update(self, project: Project) -> None: ...

    async def delete(self, project_id: str) -> Project | None:
        """Delete the row and return it, or ``None`` when it was already gone."""
        ...

    async def count_download(self, project_id: str) -> None:
        """Add one completed full download (one conditional-free atomic increment)."""
        ...


class ProjectDownloads(Protocol):
    """Download-time lookups and counting, each on a short connection of its own (a transfer
    may last minutes and must not hold a pooled connection)."""

    async def find(self, project_id: str) -> Project | None: ...

    async def count(self, project_id: str) -> None:
        """Add one completed full download (an atomic increment)."""
        ...


@dataclass(frozen=True, slots=True)
class FilesWork:
    """The files context's repositories on one transaction (``FilesTransactions``)."""

    projects: ProjectRepository
    quota: StorageQuota
    cleanups: ObjectCleanups
    audit: AuditLog
    uow: UnitOfWork


class FilesTransactions(Protocol):
    """Short transactions for use cases that outlive a request's transaction (an upload that
    streams for as long as its client takes): ``async with transactions() as work:`` takes one
    pooled connection and gives it back when the block ends; what ``work.uow`` did not commit
    is rolled back. Nothing is held between two blocks."""

    def __call__(self) -> AbstractAsyncContextManager[FilesWork]: ...
