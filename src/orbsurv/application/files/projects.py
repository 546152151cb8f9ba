"""Projects: a user's uploaded files with a name, a description and a visibility.

Upload policy, in order:
1. Fields and the file name are checked before a byte is stored; a declared size (the request's
   ``Content-Length``) past ``MAX_UPLOAD_BYTES`` is refused at once (413).
2. The declared size is reserved against the user's quota with one conditional UPDATE and a
   cleanup marker for the object key is written, both committed before the bytes stream: two
   concurrent uploads cannot both squeeze under the quota, and a crash mid-stream leaves a marker
   the worker's sweep turns into a removed object and a released reservation.
3. No database connection is held from here until the bytes have all arrived (a client paces
   them): the bytes stream to storage while they are hashed (by the storage) and scanned (by the
   ``MalwareScanner``, fed the same chunks); the limit (the smaller of the reservation and
   ``MAX_UPLOAD_BYTES``) is enforced as bytes arrive. Any failure (too large, a client that went
   away, storage or scanner down) removes the object, releases the reservation and the marker.
4. An empty file is refused (422). Malware is refused (422 ``malware_detected``): nothing is
   kept, a ``malware.detected`` audit event raises the "malware found" alert.
5. Otherwise the row, the quota settlement (reservation → stored bytes) and the marker's removal
   commit in one transaction (a short one of its own, like the reservation's).

Deleting (the owner; another user's project is a console write, so a dev in a dev session)
removes the row, frees the bytes and writes a "delete" marker in one
transaction, then removes the object and the marker: the row and the object both go, and a crash
between the two leaves a marker the sweep finishes. Authorization is per object: a project the
caller may not see answers 404 (never 403), so ids of private projects do not leak.
"""

from __future__ import annotations

import asyncio
import logging
import uuid
from collections.abc import AsyncIterable, AsyncIterator, Callable
from dataclasses import dataclass, field
from datetime import timedelta

from orbsurv.application.errors import (
    MalwareDetected,
    ObjectTooLarge,
    StorageFull,
    StorageUnavailable,
)
from orbsurv.application.faults import log_failure
from orbsurv.application.files.ports import (
    Cleanup,
    FilesTransactions,
    ObjectCleanups,
    ProjectChanges,
    ProjectDownloads,
    ProjectRepository,
    QuotaUsage,
    StorageQuota,
)
from orbsurv.application.identity.ports import RateLimiter, UserRepository
from orbsurv.application.ports import (
    AuditLog,
    Clock,
    MalwareScanner,
    ObjectStorage,
    ScanSession,
    UnitOfWork,
)
from orbsurv.domain.audit import AuditEvent, RequestContext, malware_detected
from orbsurv.domain.errors import DomainError, FieldInvalid, Forbidden, NotFound, RateLimited
from orbsurv.domain.files import (
    Project,
    Visibility,
    check_description,
    check_file_name,
    check_project_name,
    check_version,
)
from orbsurv.domain.identity import Permission, Principal
from orbsurv.domain.pagination import Page, PageRequest

logger = logging.getLogger("orbsurv.files")

PROJECT_CONTENT_TYPE = "application/octet-stream"
PROJECT_PREFIX = "projects/"  # object keys: projects/<owner id>/<project id>
STALE_UPLOAD_SECONDS = 24 * 3600  # an upload marker this old belongs to a crashed request
STALE_DELETE_SECONDS = 60  # a delete marker this old belongs to a crashed request


@dataclass(frozen=True, slots=True)
class FilesPolicy:
    max_upload_bytes: int = 5 * 1024**3
    allowed_extensions: frozenset[str] = frozenset()
    uploads_per_hour: int = 100  # project uploads one user may start within an hour


UPLOAD_WINDOW_SECONDS = 3600


@dataclass(frozen=True, slots=True)
class Viewer:
    """Who asks: a user id, whether they may see every project (admins, and devs in a dev
    session), whether they hold the console-write permission (a dev session: needed to delete
    another user's project), and the code a refused console write answers
    (``dev_session_required`` for a dev without the second factor, else ``forbidden``)."""

    user_id: str
    is_admin: bool = False
    context: RequestContext = field(default_factory=RequestContext)
    console_write: bool = False
    refusal_code: str = "forbidden"


@dataclass(frozen=True, slots=True)
class NewProject:
    name: str
    description: str
    version: str | None
    is_public: bool
    file_name: str
    declared_size: int  # bytes the client announced (an upper bound of the file's size)
    # how many of those may be fields after the file (a form's bound on them), not the file's
    after_file_max: int = 0


def project_not_found() -> NotFound:
    return NotFound("No such project.", code="project_not_found")


@dataclass(frozen=True, slots=True)
class UploadProject:
    """Holds no pooled connection while the bytes stream (house plan, "When things fail"): the
    reservation is one short transaction before them, the row (or the undo) one short
    transaction after them, so a client that stalls mid-body ties up nothing but its socket."""

    transactions: FilesTransactions
    storage: ObjectStorage
    scanner: MalwareScanner
    clock: Clock
    policy: FilesPolicy
    limiter: RateLimiter

    async def __call__(
        self,
        viewer: Viewer,
        new: NewProject,
        chunks: AsyncIterable[bytes],
        *,
        complete: Callable[[], NewProject] | None = None,
    ) -> Project:
        """Store one project file; raise ``FieldInvalid`` (422), ``ObjectTooLarge`` or
        ``QuotaExceeded`` (413), ``RateLimited`` (429: more than ``PROJECT_UPLOADS_PER_HOUR``
        uploads of this user within the hour, counted per user id), ``MalwareDetected`` (422),
        ``StorageUnavailable`` or ``ScannerUnavailable`` (503). Whatever ``chunks`` raises (a
        body that timed out, a client that went away) is raised again once the upload is
        undone.

        ``complete``, when given, is called once ``chunks`` is exhausted and returns the whole
        declaration: a multipart form may carry fields after its file, so ``new`` holds only
        those that came first (checked at once when present, so a bad one stores nothing) and
        the rest are checked after the bytes, before the row is written; a refusal then
        removes the stored bytes like any other."""
        early = complete is None or new.name != ""
        name = check_project_name(new.name) if early else ""
        description = check_description(new.description)
        version = check_version(new.version)
        file_name = check_file_name(new.file_name, self.policy.allowed_extensions)
        if new.declared_size - new.after_file_max > self.policy.max_upload_bytes:
            raise ObjectTooLarge(
                f"The file is larger than the limit of {self.policy.max_upload_bytes} bytes."
            )
        decision = await self.limiter.hit(
            f"project_upload:{viewer.user_id}",
            limit=self.policy.uploads_per_hour,
            window_seconds=UPLOAD_WINDOW_SECONDS,
        )
        if not decision.allowed:
            raise RateLimited(
                f"You have uploaded {self.policy.uploads_per_hour} projects within the hour "
                "(PROJECT_UPLOADS_PER_HOUR); try again later.",
                retry_after=decision.retry_after,
            )
        owner = viewer.user_id
        project_id = str(uuid.uuid4())
        key = f"{PROJECT_PREFIX}{owner}/{project_id}"
        reserved = max(0, new.declared_size)
        now = self.clock.now()
        async with self.transactions() as work:
            await work.quota.reserve(owner, reserved)
            await work.cleanups.add(Cleanup(key, "upload", owner, reserved, now))
            await work.uow.commit()

        session: ScanSession | None = None
        try:
            session = await self.scanner.open()
            stored = await self.storage.put(
                key,
                _scanned(chunks, session),
                max_size=min(reserved, self.policy.max_upload_bytes),
                content_type=PROJECT_CONTENT_TYPE,
            )
            verdict = await session.finish()
            if stored.size == 0:
                raise FieldInvalid("file", "The file is empty.")
            if verdict.signature is not None:
                raise MalwareDetected("file", verdict.signature)
            if complete is not None:  # the fields after the file, now that it was read
                new = complete()
                name = check_project_name(new.name)
                description = check_description(new.description)
                version = check_version(new.version)
        except BaseException as error:
            if session is not None:
                await asyncio.shield(session.abort())
            # A storage that just failed would only fail the removal too, after as long again:
            # its marker is left for the sweep and the client is answered at once.
            unreachable = isinstance(error, StorageUnavailable) and not isinstance(
                error, StorageFull
            )
            await asyncio.shield(self._discard(key, owner, reserved, remove=not unreachable))
            if isinstance(error, MalwareDetected):
                await self._record_malware(viewer, key, file_name, error.signature)
            raise
        assert stored.sha256 is not None
        project = Project(
            id=project_id,
            owner_id=owner,
            name=name,
            description=description,
            version=version,
            visibility=Visibility.PUBLIC if new.is_public else Visibility.PRIVATE,
            file_name=file_name,
            object_key=key,
            size=stored.size,
            sha256=stored.sha256,
            content_type=PROJECT_CONTENT_TYPE,
            downloads=0,
            created_at=self.clock.now(),
            updated_at=self.clock.now(),
        )
        try:
            async with self.transactions() as work:
                await work.projects.add(project)
                await work.quota.commit(owner, reserved, stored.size)
                await work.cleanups.remove(key)
                await work.audit.record(
                    AuditEvent(
                        "project.uploaded",
                        project.created_at,
                        viewer.context,
                        actor_user_id=owner,
                        target_type="project",
                        target_id=project_id,
                        metadata={"size": stored.size, "sha256": stored.sha256},
                    )
                )
                await work.uow.commit()
        except BaseException:
            await asyncio.shield(self._discard(key, owner, reserved))
            raise
        return project

    async def _discard(self, key: str, owner: str, reserved: int, *, remove: bool = True) -> None:
        """Undo a failed upload: release the reservation and remove the object. When the
        object cannot be removed now (storage down, or ``remove`` false because it just
        failed), its marker becomes a "delete" marker the sweep retries within a minute. If
        even that fails, the upload marker stays for it."""
        try:
            removed = False
            if remove:
                try:
                    await self.storage.delete(key)
                    removed = True
                except DomainError:
                    removed = False
            async with self.transactions() as work:
                await work.quota.release(owner, reserved)
                await work.cleanups.remove(key)
                if not removed:
                    await work.cleanups.add(Cleanup(key, "delete", owner, 0, self.clock.now()))
                await work.uow.commit()
        except Exception as exc:  # noqa: BLE001 (log_failure keeps a bug's traceback)
            log_failure(logger, exc, "upload cleanup of %s left to the sweep", key)

    async def _record_malware(
        self, viewer: Viewer, key: str, file_name: str, signature: str
    ) -> None:
        async with self.transactions() as work:
            await work.audit.record(
                malware_detected(
                    self.clock.now(),
                    viewer.context,
                    actor_user_id=viewer.user_id,
                    target_type="project",
                    target_id=key,
                    signature=signature,
                    file_name=file_name,
                )
            )
            await work.uow.commit()


async def _scanned(chunks: AsyncIterable[bytes], session: ScanSession) -> AsyncIterator[bytes]:
    async for chunk in chunks:
        await session.feed(chunk)
        yield chunk


@dataclass(frozen=True, slots=True)
class GetProject:
    projects: ProjectRepository

    async def __call__(self, viewer: Viewer | None, project_id: str) -> Project:
        """The project, or ``NotFound`` when it does not exist or the viewer may not see it."""
        project = await self.projects.get(project_id)
        user_id = viewer.user_id if viewer else None
        is_admin = viewer.is_admin if viewer else False
        if project is None or not project.visible_to(user_id, is_admin=is_admin):
            raise project_not_found()
        return project


@dataclass(frozen=True, slots=True)
class FindDownload:
    downloads: ProjectDownloads

    async def __call__(self, viewer: Viewer, project_id: str) -> Project:
        """The project to download, or ``NotFound`` (missing, or not visible to the viewer:
        owners and admins may download private projects)."""
        project = await self.downloads.find(project_id)
        if project is None or not project.visible_to(viewer.user_id, is_admin=viewer.is_admin):
            raise project_not_found()
        return project


@dataclass(frozen=True, slots=True)
class CountDownload:
    downloads: ProjectDownloads

    async def __call__(self, project_id: str) -> None:
        """Count one completed full transfer (never a range request or a HEAD)."""
        await self.downloads.count(project_id)


@dataclass(frozen=True, slots=True)
class ListProjects:
    projects: ProjectRepository

    async def __call__(self, viewer: Viewer, page: PageRequest, query: str | None) -> Page[Project]:
        if query is not None:
            query = query.strip()
            if "\x00" in query or any(0xD800 <= ord(c) <= 0xDFFF for c in query):
                raise FieldInvalid("q", "q contains characters that cannot be searched.")
            if len(query) > 200:
                raise FieldInvalid("q", "q is longer than 200 characters.")
        return await self.projects.list_visible(
            viewer.user_id, page, query=query or None, is_admin=viewer.is_admin
        )


@dataclass(frozen=True, slots=True)
class UpdateProject:
    projects: ProjectRepository
    audit: AuditLog
    uow: UnitOfWork
    clock: Clock

    async def __call__(self, viewer: Viewer, project_id: str, changes: ProjectChanges) -> Project:
        """Owner only: another user's visible project is 403, an invisible one 404."""
        project = await self.projects.get(project_id)
        if project is None or not project.visible_to(viewer.user_id, is_admin=viewer.is_admin):
            raise project_not_found()
        if not project.editable_by(viewer.user_id):
            raise Forbidden("Only the owner may change a project.")
        if changes.name is not None:
            project.name = check_project_name(changes.name)
        if changes.description is not None:
            project.description = check_description(changes.description)
        if changes.visibility is not None:
            project.visibility = changes.visibility
        project.updated_at = self.clock.now()
        await self.projects.update(project)
        await self.audit.record(
            AuditEvent(
                "project.updated",
                project.updated_at,
                viewer.context,
                actor_user_id=viewer.user_id,
                target_type="project",
                target_id=project.id,
            )
        )
        await self.uow.commit()
        return project


@dataclass(frozen=True, slots=True)
class DeleteProject:
    projects: ProjectRepository
    quota: StorageQuota
    cleanups: ObjectCleanups
    storage: ObjectStorage
    audit: AuditLog
    uow: UnitOfWork
    clock: Clock

    async def __call__(self, viewer: Viewer, project_id: str) -> None:
        """The owner, or (a console write) a dev in a dev session. The row goes with the quota,
        a "delete" marker and the ``project.deleted`` event in one transaction; the object goes
        next, and the marker with it (or later, by the sweep). Raises ``NotFound`` (invisible)
        or ``Forbidden`` (``viewer.refusal_code``)."""
        project = await self.projects.get(project_id)
        if project is None or not project.visible_to(viewer.user_id, is_admin=viewer.is_admin):
            raise project_not_found()
        if not (project.editable_by(viewer.user_id) or viewer.console_write):
            raise Forbidden(
                "Only the owner, or a dev in a dev session, may delete this project.",
                code=viewer.refusal_code,
            )
        now = self.clock.now()
        deleted = await self.projects.delete(project_id)
        if deleted is None:  # a concurrent delete won
            raise project_not_found()
        await self.quota.free(deleted.owner_id, deleted.size)
        await self.cleanups.add(Cleanup(deleted.object_key, "delete", deleted.owner_id, 0, now))
        await self.audit.record(
            AuditEvent(
                "project.deleted",
                now,
                viewer.context,
                actor_user_id=viewer.user_id,
                target_type="project",
                target_id=project_id,
                metadata={"owner_id": deleted.owner_id, "size": deleted.size},
            )
        )
        await self.uow.commit()
        try:
            await self.storage.delete(deleted.object_key)
            await self.cleanups.remove(deleted.object_key)
            await self.uow.commit()
        except DomainError as exc:
            log_failure(logger, exc, "object %s left to the sweep", deleted.object_key)


@dataclass(frozen=True, slots=True)
class SweepObjects:
    """The worker's sweep: finish what crashed requests left (see the module docstring)."""

    cleanups: ObjectCleanups
    quota: StorageQuota
    storage: ObjectStorage
    uow: UnitOfWork
    clock: Clock

    async def __call__(self, limit: int = 100) -> int:
        """Remove up to ``limit`` leftover objects and abort project multipart uploads (a
        crashed S3 ``put``) older than a day; return how many items were finished."""
        now = self.clock.now()
        stale = await self.storage.list_multipart_uploads(
            started_before=now - timedelta(seconds=STALE_UPLOAD_SECONDS)
        )
        aborted = 0
        for pending in stale:
            if pending.key.startswith(PROJECT_PREFIX) and aborted < limit:
                await self.storage.abort_multipart(pending.key, pending.upload_id)
                aborted += 1
        due = await self.cleanups.due(
            uploads_before=now - timedelta(seconds=STALE_UPLOAD_SECONDS),
            deletes_before=now - timedelta(seconds=STALE_DELETE_SECONDS),
            limit=limit,
        )
        await self.uow.rollback()
        done = 0
        for cleanup in due:
            await self.storage.delete(cleanup.object_key)
            if not await self.cleanups.remove(cleanup.object_key):
                await self.uow.rollback()  # its request finished it meanwhile
                continue
            if cleanup.kind == "upload" and cleanup.user_id and cleanup.reserved_bytes:
                await self.quota.release(cleanup.user_id, cleanup.reserved_bytes)
            await self.uow.commit()
            done += 1
        return done + aborted


@dataclass(frozen=True, slots=True)
class SetStorageQuota:
    """A console write: a dev in a dev session sets one user's storage quota (bytes); ``None``
    restores ``USER_QUOTA_BYTES``. A quota below what the user already stores blocks new
    uploads and keeps every stored file. The change and its audit event (``storage.quota_set``,
    with the quota before) commit in one transaction.

    Raises ``Forbidden`` without the console-write permission (the HTTP gate refuses such a
    caller first and audits it), ``NotFound`` (``user_not_found``), ``FieldInvalid`` for a
    negative quota."""

    users: UserRepository
    quota: StorageQuota
    audit: AuditLog
    uow: UnitOfWork
    clock: Clock

    async def __call__(
        self,
        operator: Principal,
        user_id: str,
        quota_bytes: int | None,
        context: RequestContext | None = None,
    ) -> QuotaUsage:
        if not operator.can(Permission.ADMINISTER):
            raise Forbidden("Setting a storage quota needs a dev session.")
        if await self.users.get(user_id) is None:
            raise NotFound("No such user.", code="user_not_found")
        if quota_bytes is not None and quota_bytes < 0:
            raise FieldInvalid("quota_bytes", "quota_bytes must be 0 or more.")
        before = await self.quota.usage(user_id)
        await self.quota.set_quota(user_id, quota_bytes)
        await self.audit.record(
            AuditEvent(
                "storage.quota_set",
                self.clock.now(),
                context or RequestContext(),
                actor_user_id=operator.user_id,
                target_type="user",
                target_id=user_id,
                metadata={"quota_bytes": quota_bytes, "from_quota_bytes": before.quota},
            )
        )
        usage = await self.quota.usage(user_id)
        await self.uow.commit()
        return usage
