"""Software packages: resumable upload sessions, versions and their rules.

An upload session receives the bytes of one package version in order. Its state machine:

    created ──append──► receiving ──begin_finalizing──► finalizing ──complete──► completed
       │                   │                               │
       └──── abort / expire (any state but completed) ─────┴──► aborted | expired

The offset is the number of bytes durably stored. ``append(offset, n)`` accepts bytes only at
the current offset (tus 1.0 core, "PATCH": the ``Upload-Offset`` must equal the resource's
offset), and never past the declared length (tus 1.0, "Upload-Length"), so no sequence of
appends, retries, interruptions and completes can leave a gap, an overlap or a size beyond the
declared one. Finalizing needs every declared byte; a completed session keeps its result so a
retried completion returns the same answer.
"""

from __future__ import annotations

import enum
import re
from dataclasses import dataclass
from datetime import datetime

from orbsurv.domain.audit import AuditEvent, RequestContext
from orbsurv.domain.errors import Conflict, DomainError, FieldInvalid, NotFound

SHA256_HEX = re.compile(r"^[0-9a-f]{64}$")


class UploadState(enum.StrEnum):
    CREATED = "created"
    RECEIVING = "receiving"
    FINALIZING = "finalizing"
    COMPLETED = "completed"
    ABORTED = "aborted"
    EXPIRED = "expired"

    @property
    def open(self) -> bool:
        """Bytes may still arrive."""
        return self in {UploadState.CREATED, UploadState.RECEIVING}


class OffsetMismatch(Conflict):
    """The client's ``Upload-Offset`` is not the session's offset (HTTP 409)."""

    code = "offset_mismatch"

    def __init__(self, expected: int, given: int) -> None:
        super().__init__(f"The upload is at offset {expected}, not {given}; resume from there.")
        self.expected = expected
        self.given = given


class UploadTooLarge(DomainError):
    """A chunk would go past the declared ``Upload-Length`` (HTTP 413)."""

    code = "upload_too_large"


class UploadClosed(Conflict):
    """The session no longer accepts bytes (finalizing, completed or aborted; HTTP 409)."""

    code = "upload_closed"


COMPLETED_UPLOAD = (
    "This upload is completed and its version published; a version cannot be deleted on its "
    "own: delete its package (DELETE /software-packages/{package_id}, the package_id that GET "
    "on this upload names)."
)


class UploadExpired(DomainError):
    """The session passed its ``expires_at`` (HTTP 410, tus expiration extension)."""

    code = "upload_expired"


class UploadIncomplete(Conflict):
    """Completion before every declared byte arrived (HTTP 409)."""

    code = "upload_incomplete"


class UploadBusy(DomainError):
    """Another request is writing to this upload right now (HTTP 423)."""

    code = "upload_locked"


class ChecksumMismatch(DomainError):
    """The chunk's ``Upload-Checksum`` does not match its bytes (HTTP 460, tus checksum)."""

    code = "checksum_mismatch"


class DigestMismatch(Conflict):
    """The assembled bytes do not have the SHA-256 declared at creation (HTTP 409)."""

    code = "sha256_mismatch"


def precedence_of(version: str) -> str:
    """A normalised SemVer version without its build metadata (``1.0.0-rc.1+b7`` gives
    ``1.0.0-rc.1``): versions equal here have the same precedence (SemVer 2.0.0 section 10), so a
    package holds one of them."""
    return version.partition("+")[0]


class VersionExists(Conflict):
    """The package already holds this version, or one that differs only in build metadata
    (HTTP 409)."""

    code = "version_exists"


class PackageNameTaken(Conflict):
    """The owner has a package whose name differs from the given one only in case (HTTP 409):
    package names are compared case-insensitively, so ``casepkg`` beside ``CasePkg`` would be
    a second package that reads as the first (Unicode TR39 identifier confusion)."""

    code = "package_name_taken"

    def __init__(self, given: str, existing: str) -> None:
        super().__init__(
            f"You already have a package named {existing!r}; package names ignore case, so "
            f"publish under {existing!r} (or choose another name than {given!r})."
        )
        self.existing = existing


class TooManyOpenUploads(Conflict):
    """The owner already has as many open upload sessions as allowed (HTTP 409): finish or
    cancel one first. Each holds a storage multipart upload and a quota reservation."""

    code = "too_many_open_uploads"


class TooManyVersions(Conflict):
    """The package already holds ``PACKAGE_MAX_VERSIONS`` versions (HTTP 409): delete the
    package, or publish under another name. Checked when an upload opens and again, under a
    lock on the package row, in the transaction that adds the version."""

    code = "too_many_versions"


class PackageNotFound(NotFound):
    code = "package_not_found"


class UploadNotFound(NotFound):
    code = "upload_not_found"


@dataclass(frozen=True, slots=True)
class UploadResult:
    package_id: str
    version_id: str
    sha256: str
    size: int


def publication_events(
    result: UploadResult,
    *,
    owner_id: str,
    package_name: str,
    version: str,
    is_public: bool,
    protocol: str,
    upload_id: str,
    created_package: bool,
    at: datetime,
    context: RequestContext | None,
) -> list[AuditEvent]:
    """The audit events of one publication, recorded in the transaction that adds the version:
    ``package.created`` when the upload made the package, then ``package.version_published``.
    The actor is the owner (only owners publish); ``context`` is the request that published it,
    ``None`` when the worker did (``by: worker``, no address)."""
    by = "worker" if context is None else "request"
    where = context or RequestContext()
    events: list[AuditEvent] = []
    if created_package:
        events.append(
            AuditEvent(
                "package.created",
                at,
                where,
                actor_user_id=owner_id,
                target_type="package",
                target_id=result.package_id,
                metadata={"name": package_name, "is_public": is_public, "by": by},
            )
        )
    events.append(
        AuditEvent(
            "package.version_published",
            at,
            where,
            actor_user_id=owner_id,
            target_type="package",
            target_id=result.package_id,
            metadata={
                "name": package_name,
                "version": version,
                "version_id": result.version_id,
                "size": result.size,
                "sha256": result.sha256,
                "protocol": protocol,
                "upload_id": upload_id,
                "by": by,
            },
        )
    )
    return events


@dataclass(slots=True)
class UploadSession:
    """One resumable upload. ``length`` and ``offset`` are bytes."""

    id: str
    owner_id: str
    length: int
    offset: int
    state: UploadState
    expires_at: datetime
    created_at: datetime
    result: UploadResult | None = None

    def __post_init__(self) -> None:
        if self.length < 1:
            raise ValueError("an upload declares at least one byte")
        if not 0 <= self.offset <= self.length:
            raise ValueError("offset outside 0..length")

    @property
    def remaining(self) -> int:
        return self.length - self.offset

    def expired(self, now: datetime) -> bool:
        return self.state is UploadState.EXPIRED or (self.state.open and now >= self.expires_at)

    def check_writable(self, offset: int, now: datetime) -> None:
        """Raise unless bytes may be appended at ``offset`` now.

        Raises ``UploadExpired``, ``UploadClosed`` or ``OffsetMismatch``."""
        if self.expired(now):
            raise UploadExpired("This upload expired; start a new one.")
        if not self.state.open:
            raise UploadClosed(f"This upload is {self.state.value}; it takes no more bytes.")
        if offset != self.offset:
            raise OffsetMismatch(self.offset, offset)

    def append(self, offset: int, n: int, now: datetime) -> int:
        """Record ``n`` bytes stored at ``offset``; return the new offset.

        Raises what ``check_writable`` raises, and ``UploadTooLarge`` past ``length``."""
        if n < 0:
            raise ValueError("a negative byte count")
        self.check_writable(offset, now)
        if n > self.remaining:
            raise UploadTooLarge(
                f"The chunk goes past the declared size of {self.length} bytes "
                f"({self.remaining} bytes remain)."
            )
        self.offset += n
        if n:
            self.state = UploadState.RECEIVING
        return self.offset

    def begin_finalizing(self, now: datetime) -> None:
        """Move to ``finalizing``: every declared byte is stored. Idempotent while finalizing.

        Raises ``UploadExpired``, ``UploadClosed`` (aborted) or ``UploadIncomplete``."""
        if self.state is UploadState.FINALIZING:
            return
        if self.expired(now):
            raise UploadExpired("This upload expired; start a new one.")
        if not self.state.open:
            raise UploadClosed(f"This upload is {self.state.value}.")
        if self.offset != self.length:
            raise UploadIncomplete(
                f"{self.offset} of {self.length} bytes have arrived; send the rest first."
            )
        self.state = UploadState.FINALIZING

    def complete(self, result: UploadResult) -> None:
        if self.state is not UploadState.FINALIZING:
            raise UploadClosed(f"This upload is {self.state.value}, not finalizing.")
        if result.size != self.length:
            raise ValueError("a result of another size than the declared length")
        self.state = UploadState.COMPLETED
        self.result = result

    def reopen(self) -> None:
        """Back to ``receiving`` after a finalization that failed for a transient reason."""
        if self.state is UploadState.FINALIZING:
            self.state = UploadState.RECEIVING

    def abort(self) -> None:
        """Raises ``UploadClosed`` once completed; aborting twice is not an error."""
        if self.state is UploadState.COMPLETED:
            raise UploadClosed(COMPLETED_UPLOAD)
        if self.state is not UploadState.EXPIRED:
            self.state = UploadState.ABORTED

    def expire(self, now: datetime) -> bool:
        """Mark an open session past ``expires_at`` expired; ``True`` when it changed."""
        if self.state.open and now >= self.expires_at:
            self.state = UploadState.EXPIRED
            return True
        return False


def check_sha256(value: str | None, field: str = "sha256") -> str | None:
    """Lower-case hex SHA-256 or ``None``; raises ``FieldInvalid`` otherwise."""
    if value is None or value == "":
        return None
    lowered = value.strip().lower()
    if not SHA256_HEX.match(lowered):
        raise FieldInvalid(field, "must be 64 hexadecimal characters (a SHA-256 digest)")
    return lowered
