"""Ports of the software-packages context."""

from __future__ import annotations

from collections.abc import Collection, Iterable, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Protocol

from orbsurv.application.ports import UploadedPart
from orbsurv.domain.audit import AuditEvent, RequestContext
from orbsurv.domain.packages import UploadResult, UploadSession, UploadState
from orbsurv.domain.pagination import Page, PageRequest


class AuditTrail(Protocol):
    async def record(self, event: AuditEvent) -> None:
        """Append one event (alert rules apply) and commit it at once, in a transaction of its
        own: for use cases that hold no request transaction."""
        ...


class VersionScheme(Protocol):
    """How versions are written and ordered (SemVer 2.0.0: https://semver.org)."""

    def normalise(self, text: str) -> str:
        """The canonical spelling of ``text``; ``FieldInvalid("version")`` when it is not a
        version of the scheme."""
        ...

    def highest(self, versions: Iterable[str]) -> str | None:
        """The version of highest precedence (SemVer section 11), ``None`` for none."""
        ...


@dataclass(frozen=True, slots=True)
class UploadDetails:
    """What the client declared when it opened the upload (the version to create)."""

    package_name: str
    version: str
    file_name: str
    description: str = ""
    category: str | None = None
    language: str | None = None
    is_public: bool = False
    content_type: str | None = None
    sha256: str | None = None  # hex, declared by the client, verified at completion


@dataclass(frozen=True, slots=True)
class StagedTail:
    """Bytes shorter than the storage's minimum part size, kept as an object of their own."""

    key: str
    size: int


@dataclass(slots=True)
class UploadRecord:
    session: UploadSession
    details: UploadDetails
    protocol: str  # "orbsurv" (/uploads/init) or "tus" (tus creation)
    storage_key: str
    multipart_id: str | None
    tail: StagedTail | None = None


class UploadStore(Protocol):
    """Upload sessions, their parts and staged tails. Every call is a short transaction of its
    own (a PATCH may stream for minutes; no transaction stays open while bytes arrive)."""

    async def create(self, record: UploadRecord, now: datetime, *, max_open: int | None) -> None:
        """Store the session and reserve its length in the owner's quota, in one transaction.
        Raises ``QuotaExceeded``, or ``TooManyOpenUploads`` when ``max_open`` is given and the
        owner already has that many sessions open and unexpired (counted after the quota row is
        locked, so concurrent creations by one owner cannot all pass)."""
        ...

    async def get(self, upload_id: str) -> UploadRecord | None: ...

    async def parts(self, upload_id: str) -> list[UploadedPart]:
        """Recorded parts by ascending number."""
        ...

    async def reserve_part_number(self, upload_id: str) -> int:
        """A part number never handed out before for this upload (one atomic increment)."""
        ...

    async def confirm(
        self, upload_id: str, *, offset: int, now: datetime, reserve_part: bool
    ) -> int | None:
        """One conditional statement for a writer that holds the lock and read the session
        before taking it: ``None`` unless the session is still open, unexpired and at
        ``offset`` (then it is exactly as read: its tail changes only with its offset or
        state). Otherwise ``0``, or with ``reserve_part`` a part number never handed out
        before (the same atomic increment as ``reserve_part_number``)."""
        ...

    async def record_progress(
        self,
        upload_id: str,
        *,
        expected_offset: int,
        new_offset: int,
        part: UploadedPart | None,
        tail: StagedTail | None,
        drop_tail: bool,
        now: datetime,
    ) -> bool:
        """Move the offset from ``expected_offset`` to ``new_offset`` while the session is
        open, adding ``part`` and replacing the staged tail (``drop_tail`` removes it, ``tail``
        sets it), in one transaction. ``False`` (nothing changed) when the offset or the state
        moved meanwhile: a fence against a writer whose lock expired."""
        ...

    async def move(
        self, upload_id: str, *, from_states: Sequence[UploadState], to: UploadState, now: datetime
    ) -> bool:
        """One conditional state change; ``False`` when the state was not one of ``from_states``."""
        ...

    async def expired(self, now: datetime, limit: int) -> list[UploadRecord]:
        """Open sessions past ``expires_at`` (and ended ones kept for retries past it)."""
        ...

    async def awaiting_publication(
        self, now: datetime, *, changed_before: datetime, limit: int
    ) -> list[UploadRecord]:
        """Unexpired sessions with every byte stored whose publication is pending: those in
        ``finalizing``, and tus sessions still ``receiving`` at their full length; only those
        last changed before ``changed_before``, oldest change first, at most ``limit``."""
        ...

    async def delete(self, upload_id: str) -> None:
        """The session row with its parts and tail rows."""
        ...

    async def free_bytes(self, owner_id: str) -> int:
        """Bytes the owner may still store: the quota less stored and reserved bytes (≥ 0)."""
        ...

    async def in_flight_bytes(self, owner_id: str) -> int:
        """Bytes declared by the owner's open sessions (they count against the quota)."""
        ...

    async def existing(self, upload_ids: Collection[str]) -> set[str]:
        """The ids among ``upload_ids`` that have a session row (in any state)."""
        ...


@dataclass(frozen=True, slots=True)
class Publication:
    """A completed upload turned into a version. ``redundant_key``: the upload's own object,
    to delete because identical bytes were already stored (content addressing)."""

    result: UploadResult
    redundant_key: str | None


@dataclass(frozen=True, slots=True)
class PackageView:
    id: str
    owner_id: str
    owner_email: str | None
    name: str
    description: str
    category: str | None
    language: str | None
    is_public: bool
    created_at: datetime
    updated_at: datetime
    versions: int = 0
    downloads: int = 0
    size: int = 0  # bytes, every version
    version_names: Sequence[str] = field(default_factory=tuple)


@dataclass(frozen=True, slots=True)
class VersionView:
    id: str
    package_id: str
    version: str
    file_name: str
    content_type: str | None
    size: int
    sha256: str
    storage_key: str
    downloads: int
    created_at: datetime


@dataclass(frozen=True, slots=True)
class PackageFilter:
    viewer_id: str
    is_admin: bool = False
    q: str | None = None
    category: str | None = None
    language: str | None = None


@dataclass(frozen=True, slots=True)
class PackageSummary:
    packages: int
    versions: int
    bytes: int
    downloads: int
    top_languages: Sequence[tuple[str, int]]
    top_categories: Sequence[tuple[str, int]]


class PackageCatalog(Protocol):
    """Published packages. Each change records its audit events in the transaction that makes
    it (a publication, an edit and a deletion leave a trail, or nothing happened)."""

    async def publish(
        self,
        record: UploadRecord,
        *,
        sha256: str,
        version_id: str,
        package_id: str,
        now: datetime,
        heal_blob: bool = False,
        max_versions: int | None = None,
        context: RequestContext | None = None,
    ) -> Publication:
        """In one transaction: take a reference on the blob (or create it with the upload's
        object), find or create the owner's package by name (metadata only at creation), add
        the version, mark the session completed, and record ``publication_events`` (``context``
        is the publishing request, ``None`` for the worker). With ``heal_blob`` an existing
        blob takes the upload's object as its own (its object was lost; ``redundant_key`` is
        then the lost key). Raises ``VersionExists``, and ``TooManyVersions`` when the package
        already holds ``max_versions`` versions (counted under a lock on the package row, so
        concurrent publications cannot pass it together)."""
        ...

    async def blob_key(self, sha256: str) -> str | None:
        """The storage key of the blob holding the bytes of ``sha256`` (hex), ``None`` when
        no blob does."""
        ...

    async def version_exists(self, owner_id: str, package_name: str, version: str) -> bool:
        """Whether the owner's package of that name (compared case-insensitively) holds a
        version of ``version``'s precedence."""
        ...

    async def spelling(self, owner_id: str, package_name: str) -> str | None:
        """The name of the owner's package whose name equals ``package_name`` but for case, as
        it was first published (``CasePkg`` for ``casepkg``); ``None`` when there is none."""
        ...

    async def version_count(self, owner_id: str, package_name: str) -> int:
        """How many versions the owner's package of that name holds (0 when there is none)."""
        ...

    async def find(self, filters: PackageFilter, page: PageRequest) -> Page[PackageView]: ...

    async def get(self, package_id: str) -> PackageView | None: ...

    async def versions(self, package_id: str) -> list[VersionView]: ...

    async def version_page(self, package_id: str, page: PageRequest) -> Page[VersionView]:
        """One page of the package's versions, newest first (tie-break on id), with the total."""
        ...

    async def version_names(self, package_id: str) -> list[tuple[str, str]]:
        """``(version id, version)`` of every version of the package (for ``latest``)."""
        ...

    async def update(
        self, package_id: str, changes: dict[str, object], now: datetime, event: AuditEvent
    ) -> bool:
        """Apply ``changes`` and record ``event`` in one transaction; ``False`` (nothing
        recorded) when the package is gone."""
        ...

    async def delete(self, package_id: str, event: AuditEvent) -> list[str] | None:
        """Remove the package and its versions, dropping one blob reference per version, and
        record ``event``, in one transaction; the storage keys of blobs no longer referenced
        (their rows are gone), or ``None`` when the package was already gone."""
        ...

    async def referenced_keys(self, keys: Collection[str]) -> set[str]:
        """The storage keys among ``keys`` that a blob stores its bytes under (so some version
        needs them)."""
        ...

    async def count_download(self, version_id: str) -> None: ...

    async def summary(self) -> PackageSummary: ...
