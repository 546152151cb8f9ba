"""Ports shared by every context."""

from __future__ import annotations

from collections.abc import AsyncIterable, AsyncIterator, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Protocol

from orbsurv.domain.audit import AuditEvent, SecurityAlert


class Clock(Protocol):
    def now(self) -> datetime:
        """The current time, timezone-aware UTC."""
        ...


class UnitOfWork(Protocol):
    """One transaction. Nothing is kept unless ``commit`` is called."""

    async def commit(self) -> None: ...

    async def rollback(self) -> None: ...


class DependencyNotReady(Exception):
    """The dependency answers but cannot serve yet; ``state`` says why and what fixes it.

    ``state`` is shown to operators (``orbsurv check``, ``/readyz``): it must name the gap and
    the command that closes it, and never carry a secret.
    """

    def __init__(self, state: str) -> None:
        super().__init__(state)
        self.state = state


class DependencyProbe(Protocol):
    """Answers whether one backing service can serve right now."""

    @property
    def name(self) -> str: ...

    async def check(self) -> None:
        """Return when the dependency answers; raise when it does not.

        Raises ``DependencyNotReady`` when it answers but is not usable as it is (a database
        that is not migrated); any other exception counts as unavailable.
        """
        ...


@dataclass(frozen=True, slots=True)
class StoredObject:
    """What a finished write left behind: ``size`` in bytes, ``sha256`` (hex) when known."""

    key: str
    size: int
    sha256: str | None = None


@dataclass(frozen=True, slots=True)
class ObjectInfo:
    """Metadata of one stored object.

    ``size`` in bytes; ``modified_at`` timezone-aware UTC; ``sha256`` (hex) when the adapter
    recorded it at ``put``; ``content_type`` as given to ``put`` or ``create_multipart``."""

    key: str
    size: int
    modified_at: datetime
    sha256: str | None = None
    content_type: str | None = None


@dataclass(frozen=True, slots=True)
class UploadedPart:
    """One stored part of a multipart upload: ``number`` 1..10000 (as S3), an opaque ``etag``
    as ``upload_part`` returned it, and ``size`` in bytes."""

    number: int
    etag: str
    size: int


@dataclass(frozen=True, slots=True)
class PendingMultipart:
    """A multipart upload that was created and neither completed nor aborted."""

    key: str
    upload_id: str
    started_at: datetime


@dataclass(frozen=True, slots=True)
class ListedObject:
    """One object found by ``ObjectStorage.list_objects``: ``size`` in bytes, ``modified_at``
    timezone-aware UTC (when the object was last written)."""

    key: str
    size: int
    modified_at: datetime


MAX_PART_NUMBER = 10_000  # S3's limit on part numbers


class ObjectStorage(Protocol):
    """Bytes by key. Writes stream; nothing reads a whole object into memory.

    Every method raises ``StorageUnavailable`` (503, ``storage_unavailable``) when the backend
    cannot be reached. Multipart uploads follow S3's model (CreateMultipartUpload, UploadPart,
    ListParts, CompleteMultipartUpload, AbortMultipartUpload): every part but the last must be
    at least ``min_part_size`` bytes, part numbers run 1..10000, and an object appears under its
    key only when the upload completes."""

    min_part_size: int
    """Smallest size in bytes the backend accepts for every part but the last (S3: 5 MiB)."""

    async def put(
        self,
        key: str,
        chunks: AsyncIterable[bytes],
        *,
        max_size: int | None = None,
        content_type: str | None = None,
    ) -> StoredObject:
        """Store the chunks under ``key``, replacing any object there, and return its size and
        SHA-256 (computed as the bytes pass).

        Past ``max_size`` bytes raise ``ObjectTooLarge`` as soon as the limit is crossed and
        keep nothing (an earlier object under ``key`` stays). If ``chunks`` raises, nothing is
        kept either."""
        ...

    def read(self, key: str, *, start: int = 0, end: int | None = None) -> AsyncIterator[bytes]:
        """Stream bytes ``start..end`` (inclusive; ``end=None`` means to the last byte) of
        ``key``.

        Raise ``ObjectNotFound`` when it is missing."""
        ...

    async def size(self, key: str) -> int | None:
        """The size of ``key`` in bytes, or ``None`` when it does not exist."""
        ...

    async def stat(self, key: str) -> ObjectInfo | None:
        """Metadata of ``key``, or ``None`` when it does not exist."""
        ...

    async def copy(self, source: str, target: str) -> None:
        """Copy ``source`` to ``target`` (content, SHA-256 and content type), replacing
        ``target``. Raise ``ObjectNotFound`` when ``source`` is missing."""
        ...

    async def delete(self, key: str) -> None:
        """Remove ``key``; removing a missing key is not an error."""
        ...

    async def create_multipart(self, key: str, *, content_type: str | None = None) -> str:
        """Start a multipart upload to ``key``; return its upload id (opaque)."""
        ...

    async def upload_part(
        self,
        key: str,
        upload_id: str,
        number: int,
        chunks: AsyncIterable[bytes],
        *,
        max_size: int | None = None,
        offset: int | None = None,
    ) -> UploadedPart:
        """Store part ``number`` (1..10000) of an upload, replacing an earlier part with that
        number.

        ``offset`` (bytes) is a hint: where the part's first byte will sit in the completed
        object, when the caller knows it. An adapter may store the bytes there at once so that
        completion need not copy them (local files do; S3 ignores it). Completion still joins
        exactly the parts it is given, whatever was written with which hint.

        Raise ``ObjectNotFound`` when the upload does not exist (completed, aborted or never
        created), ``ValueError`` for a number outside 1..10000, and ``ObjectTooLarge`` past
        ``max_size`` bytes (the part is then not kept)."""
        ...

    async def list_parts(self, key: str, upload_id: str) -> list[UploadedPart]:
        """The parts stored so far, by ascending number. ``ObjectNotFound`` for no upload."""
        ...

    async def complete_multipart(
        self, key: str, upload_id: str, parts: Sequence[UploadedPart]
    ) -> StoredObject:
        """Join ``parts`` (ascending numbers, each as ``upload_part`` or ``list_parts`` gave
        it) into the object ``key`` and end the upload.

        Raise ``ObjectNotFound`` when the upload does not exist and ``InvalidMultipart`` when
        the parts are out of order, unknown, or too small (all but the last below
        ``min_part_size``)."""
        ...

    async def abort_multipart(self, key: str, upload_id: str) -> None:
        """Drop the upload and its parts. Aborting an unknown or finished upload is not an
        error (idempotent)."""
        ...

    async def list_multipart_uploads(
        self, *, started_before: datetime | None = None
    ) -> list[PendingMultipart]:
        """Uploads neither completed nor aborted, optionally only those started before the
        given instant (for a sweep of abandoned uploads)."""
        ...

    def list_objects(self, prefix: str) -> AsyncIterator[ListedObject]:
        """Every stored object whose key starts with ``prefix`` (a plain string prefix, as S3's
        ListObjectsV2), in no promised order. It streams: keys are fetched a page (at most
        1000) at a time, so any number of objects can be walked in bounded memory. Parts of
        unfinished multipart uploads are not objects and are not listed. Deleting listed
        objects while walking is allowed; objects written meanwhile may or may not appear."""
        ...


@dataclass(frozen=True, slots=True)
class ScanVerdict:
    """The outcome of one scan: ``signature`` names what was found, ``None`` when clean."""

    signature: str | None = None

    @property
    def infected(self) -> bool:
        return self.signature is not None


class ScanSession(Protocol):
    """One scan of one byte stream, fed as the bytes pass (an upload as it streams, or a
    stored object read back), so nothing has to hold the whole stream."""

    async def feed(self, chunk: bytes) -> None:
        """Scan the next bytes. Raise ``ScannerUnavailable`` when the scanner is gone."""
        ...

    async def finish(self) -> ScanVerdict:
        """End the stream and return the verdict over all of it.

        Raise ``ScannerUnavailable`` when no verdict could be had (never a silent pass)."""
        ...

    async def abort(self) -> None:
        """Give the scan up (the stream failed); safe to call more than once."""
        ...


class MalwareScanner(Protocol):
    """Scans byte streams for malware."""

    async def open(self) -> ScanSession:
        """Start one scan. Raise ``ScannerUnavailable`` when the scanner cannot be reached."""
        ...


async def scan_stream(scanner: MalwareScanner, chunks: AsyncIterable[bytes]) -> ScanVerdict:
    """Scan a whole stream (for example ``ObjectStorage.read(key)``) and return the verdict."""
    session = await scanner.open()
    try:
        async for chunk in chunks:
            await session.feed(chunk)
        return await session.finish()
    except BaseException:
        await session.abort()
        raise


@dataclass(frozen=True, slots=True)
class OutgoingEmail:
    to: str
    subject: str
    text: str
    html: str | None = None


class Mailer(Protocol):
    async def send(self, message: OutgoingEmail) -> None:
        """Deliver one message or raise ``MailDeliveryFailed``."""
        ...


class AuditLog(Protocol):
    async def record(self, event: AuditEvent) -> None:
        """Append one event, in the caller's transaction."""
        ...


class AlertSink(Protocol):
    async def raise_alert(self, alert: SecurityAlert) -> bool:
        """Store one alert in the caller's transaction; ``False`` when an equal one (same rule
        and subject) is still unacknowledged, so nothing new was stored."""
        ...


class Outbox(Protocol):
    async def enqueue(self, message: OutgoingEmail) -> None:
        """Queue one message in the caller's transaction; a worker delivers it later."""
        ...


@dataclass(frozen=True, slots=True)
class QueuedMessage:
    id: str
    message: OutgoingEmail
    attempts: int


class OutboxStore(Protocol):
    """The delivery side of the outbox, for the worker."""

    async def claim(self, now: datetime, lease_until: datetime, limit: int) -> list[QueuedMessage]:
        """Lease up to ``limit`` due messages; a leased message is invisible to other claims."""
        ...

    async def mark_sent(self, message_id: str, now: datetime) -> None: ...

    async def mark_failed(
        self, message_id: str, error: str, attempts: int, retry_at: datetime | None
    ) -> None:
        """Record a failed attempt; ``retry_at=None`` gives the message up (dead)."""
        ...


class EmailComposer(Protocol):
    """Fixed templates, text and HTML; nothing a stranger typed is echoed."""

    def verify_email(self, to: str, link: str) -> OutgoingEmail: ...

    def reset_password(self, to: str, link: str) -> OutgoingEmail: ...

    def confirm_new_email(self, to: str, link: str) -> OutgoingEmail: ...

    def email_change_notice(self, to: str) -> OutgoingEmail: ...

    def password_changed(self, to: str) -> OutgoingEmail: ...

    def sign_in_locked(self, to: str, minutes: int) -> OutgoingEmail:
        """Wrong passwords paused sign-ins to the account (from one client or from all) for
        ``minutes``; names no address and echoes nothing the guesser typed."""
        ...

    def form_acknowledgement(self, to: str, form: str) -> OutgoingEmail:
        """Thanks for a public form; names the form, echoes nothing that was submitted."""
        ...

    def order_registration(self, to: str, link: str, plan: str) -> OutgoingEmail:
        """A pre-order's single-use registration link; ``plan`` is the catalogue's name."""
        ...

    def order_received(self, to: str, plan: str) -> OutgoingEmail:
        """A pre-order from an address that has an account: sign in to see it."""
        ...
