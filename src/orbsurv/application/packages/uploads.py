"""Resumable uploads of package versions: open, append, complete, abort.

The policy, and why:

* **Any worker can take the next chunk.** The session, its offset, its stored parts (number,
  ETag, size) and its staged tail are rows; the bytes are an object-storage multipart upload.
  A PATCH on another process reads the rows and goes on. Nothing a later request needs lives
  in a process's memory (the local storage may keep a running digest of the parts it placed
  as a shortcut for completion; without it, completion hashes the stored bytes).
* **Bytes become durable in parts.** Incoming bytes collect in a buffer (at most one part plus
  one chunk); a full buffer becomes a part, recorded with the new offset in one transaction.
  When the request's ``Content-Length`` says its bytes will make a part, the part is written to
  storage while they arrive (with its offset in the object as a hint, so the local backend
  writes it in place); it is recorded only once storage has all of it.
  When the body ends, or the client vanishes, or stays silent past the idle timeout, what is
  buffered is kept too: as a part when it is large enough, otherwise as a *staged tail* object
  (storage refuses parts under ``min_part_size`` except the last). The next PATCH starts its
  buffer with that tail. The offset therefore always equals the bytes durably stored, and a
  client that resumes from HEAD loses nothing that was acknowledged by storage.
* **One writer per upload.** A ``Lock`` (Redis, or the database) named after the upload is held
  for the PATCH, released in ``finally``, and extended only while bytes arrive, so a stalled
  half-open connection gives it up after the idle timeout. A second PATCH meanwhile gets 423. As
  a fence against a writer whose lock expired, every offset change is a conditional update on
  the expected offset, and every part gets a part number never handed out before, so a late
  writer can neither move the offset nor overwrite a recorded part.
* **A checksummed chunk is all or nothing** (tus checksum extension): its parts are stored but
  recorded only once the digest matched; on a mismatch the offset does not move (460).
* **Completion is idempotent.** It assembles the parts, hashes and scans the object (one read:
  the SHA-256 comes from the storage when it computed it while joining, as local files do), and
  publishes the version in one transaction that also marks the session completed with its
  result. A retry returns the stored result; a crash midway leaves a session in ``finalizing``
  that the next call finishes.
* **Publishing is bounded.** Opening an upload (``/uploads/init``, tus creation) and a
  single-request publication count against the owner's ``publishes_per_hour`` (per user id,
  whatever the client sends; 429 ``rate_limited`` with ``Retry-After`` past it), and a package
  holds at most ``max_versions`` versions (409 ``too_many_versions``: checked when the upload
  opens, and again under a lock on the package row in the publishing transaction, so
  concurrent publications cannot pass it together).
* **Every publication is audited** (``package.created``, ``package.version_published``) in the
  transaction that adds the version, with the publishing request's address and id (none when
  the worker publishes).
* **Never "done" before published.** A tus client takes ``Upload-Offset == Upload-Length`` for
  success, so while a publication is pending (the scanner or the storage failed after the last
  byte) HEAD tells one byte short; the client's retry sends the last byte again, and that PATCH
  (or an empty one at the length, or ``/complete``) publishes. The worker's
  ``PublishPendingUploads`` retries too, until the publication succeeds or the session expires.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import contextlib
import hashlib
import logging
import time
import uuid
from collections.abc import AsyncIterable, AsyncIterator, Callable, Coroutine
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any, cast

from orbsurv.application.errors import MalwareDetected, ObjectTooLarge, QuotaExceeded
from orbsurv.application.faults import log_failure
from orbsurv.application.identity.ports import RateLimiter
from orbsurv.application.locking import Lock
from orbsurv.application.packages.ports import (
    AuditTrail,
    PackageCatalog,
    StagedTail,
    UploadDetails,
    UploadRecord,
    UploadStore,
    VersionScheme,
)
from orbsurv.application.packages.versions import check_details
from orbsurv.application.ports import (
    Clock,
    MalwareScanner,
    ObjectStorage,
    UploadedPart,
    scan_stream,
)
from orbsurv.domain.audit import AuditEvent, RequestContext, malware_detected
from orbsurv.domain.errors import (
    DependencyUnavailable,
    DomainError,
    FieldInvalid,
    InvalidInput,
    RateLimited,
)
from orbsurv.domain.identity import Principal
from orbsurv.domain.packages import (
    COMPLETED_UPLOAD,
    ChecksumMismatch,
    DigestMismatch,
    PackageNameTaken,
    TooManyVersions,
    UploadBusy,
    UploadClosed,
    UploadNotFound,
    UploadResult,
    UploadSession,
    UploadState,
    UploadTooLarge,
    VersionExists,
)

logger = logging.getLogger("orbsurv.packages")

CHECKSUM_ALGORITHMS = ("sha256", "sha1", "md5")
SWEEP_BATCH = 100  # sessions per sweep round
ORPHAN_BATCH = 500  # listed objects per database check of the orphan sweep
UPLOADS_PREFIX = "packages/uploads/"  # every upload's objects live under <prefix><upload id>/


@dataclass(frozen=True, slots=True)
class UploadPolicy:
    """Limits and timings of resumable uploads (bytes and seconds)."""

    max_upload_bytes: int = 5 * 1024**3
    session_ttl_seconds: int = 24 * 3600
    idle_timeout_seconds: float = 30.0
    lock_ttl_seconds: float = 10.0
    part_size: int = 8 * 1024 * 1024  # preferred part size; never below the storage's minimum
    max_open_uploads: int = 20  # open sessions per owner
    max_versions: int = 1000  # versions one package may hold
    publishes_per_hour: int = 100  # uploads opened and single-request publications, per user


PUBLISH_WINDOW_SECONDS = 3600


async def check_publishing(
    limiter: RateLimiter,
    catalog: PackageCatalog,
    policy: UploadPolicy,
    owner_id: str,
    details: UploadDetails,
) -> None:
    """Before any byte is stored: count one publication attempt against the owner's hourly
    budget, then refuse a version that exists or a package that is full. Raises
    ``RateLimited`` (429 with ``Retry-After``), ``VersionExists`` or ``TooManyVersions`` (409)."""
    await spend_publication(limiter, policy, owner_id)
    await check_room(catalog, policy, owner_id, details)


async def spend_publication(limiter: RateLimiter, policy: UploadPolicy, owner_id: str) -> None:
    """Count one publication attempt against the owner's hourly budget
    (``PACKAGE_PUBLISHES_PER_HOUR``), keyed by the user id, never by anything the client sent.
    Raises ``RateLimited`` (429 with ``Retry-After``)."""
    decision = await limiter.hit(
        f"package_publish:{owner_id}",
        limit=policy.publishes_per_hour,
        window_seconds=PUBLISH_WINDOW_SECONDS,
    )
    if not decision.allowed:
        raise RateLimited(
            f"You have published {policy.publishes_per_hour} package versions within the hour "
            "(PACKAGE_PUBLISHES_PER_HOUR); try again later.",
            retry_after=decision.retry_after,
        )


async def check_room(
    catalog: PackageCatalog, policy: UploadPolicy, owner_id: str, details: UploadDetails
) -> None:
    """Refuse an upload that could not be published, before any byte: a case variant of one of
    the owner's package names (``PackageNameTaken``: names compare case-insensitively, TR39), a
    version the package holds already (``VersionExists``) or a package that holds
    ``PACKAGE_MAX_VERSIONS`` (``TooManyVersions``), all 409. The publishing transaction checks
    again under the package row's lock, where a unique index on the folded name decides a
    race."""
    existing = await catalog.spelling(owner_id, details.package_name)
    if existing is not None and existing != details.package_name:
        raise PackageNameTaken(details.package_name, existing)
    if await catalog.version_exists(owner_id, details.package_name, details.version):
        raise VersionExists(f"Version {details.version} of {details.package_name} already exists.")
    if await catalog.version_count(owner_id, details.package_name) >= policy.max_versions:
        raise TooManyVersions(
            f"{details.package_name} holds {policy.max_versions} versions, the most one package "
            "may hold: delete it, or publish under another name."
        )


class BodyInterrupted(Exception):
    """The request body ended early: the client disconnected or went silent (idle timeout)."""


def lock_name(upload_id: str) -> str:
    return f"upload:{upload_id}"


async def _load(store: UploadStore, upload_id: str, principal: Principal) -> UploadRecord:
    """The caller's upload; another user's (or none) is 404 (object-level authorization)."""
    record = await store.get(upload_id)
    if record is None or record.session.owner_id != principal.user_id:
        raise UploadNotFound("No such upload.")
    return record


# --- open -------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class OpenUpload:
    details: UploadDetails
    size: int  # bytes
    protocol: str = "orbsurv"


@dataclass(frozen=True, slots=True)
class OpenedUpload:
    upload_id: str
    size: int
    offset: int
    chunk_size: int
    expires_at: datetime


@dataclass(frozen=True, slots=True)
class CreateUpload:
    """Open a session: validate the declaration, count it against the hourly publishing
    budget, refuse a duplicate version or a full package early, start the storage multipart
    upload. Raises ``FieldInvalid``, ``UploadTooLarge``, ``RateLimited``, ``VersionExists``,
    ``TooManyVersions``, ``QuotaExceeded``, ``TooManyOpenUploads``."""

    store: UploadStore
    catalog: PackageCatalog
    storage: ObjectStorage
    versions: VersionScheme
    clock: Clock
    policy: UploadPolicy
    limiter: RateLimiter

    async def __call__(self, principal: Principal, command: OpenUpload) -> OpenedUpload:
        details = check_details(command.details, self.versions)
        if command.size < 1:
            raise FieldInvalid("size", "must be at least 1 byte (an empty file is not a package)")
        if command.size > self.policy.max_upload_bytes:
            raise UploadTooLarge(
                f"The file is larger than the limit of {self.policy.max_upload_bytes} bytes."
            )
        await check_publishing(self.limiter, self.catalog, self.policy, principal.user_id, details)
        now = self.clock.now()
        upload_id = str(uuid.uuid4())
        key = f"{UPLOADS_PREFIX}{upload_id}/object"
        multipart_id = await self.storage.create_multipart(key, content_type=details.content_type)
        session = UploadSession(
            id=upload_id,
            owner_id=principal.user_id,
            length=command.size,
            offset=0,
            state=UploadState.CREATED,
            expires_at=now + timedelta(seconds=self.policy.session_ttl_seconds),
            created_at=now,
        )
        record = UploadRecord(
            session=session,
            details=details,
            protocol=command.protocol,
            storage_key=key,
            multipart_id=multipart_id,
        )
        try:
            await self.store.create(record, now, max_open=self.policy.max_open_uploads)
        except BaseException:
            await self.storage.abort_multipart(key, multipart_id)
            raise
        return OpenedUpload(
            upload_id=upload_id,
            size=command.size,
            offset=0,
            chunk_size=max(self.policy.part_size, self.storage.min_part_size),
            expires_at=session.expires_at,
        )


# --- status -----------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class UploadStatus:
    upload_id: str
    offset: int
    size: int
    state: UploadState
    expires_at: datetime
    details: UploadDetails
    protocol: str
    result: UploadResult | None
    publication_pending: bool = False

    @property
    def resume_offset(self) -> int:
        """The offset a tus client is told (HEAD): the bytes stored, less one while the
        publication that the last byte starts is pending. tus clients take ``Upload-Offset ==
        Upload-Length`` for "done" (tus 1.0 core; tus-js-client reports success on such a HEAD
        without another request), so that is said only of a published upload; one byte short,
        the client sends the last byte again, and that PATCH publishes (see
        ``AppendUploadChunk``)."""
        return self.offset - 1 if self.publication_pending else self.offset


def publication_pending(record: UploadRecord) -> bool:
    """Every byte is stored and the version is not published yet: the session is finalizing
    (a completion began and did not finish), or it is a tus upload whose last byte arrived (a
    tus upload publishes itself; its client never calls ``/complete``)."""
    session = record.session
    if session.offset != session.length:
        return False
    if session.state is UploadState.FINALIZING:
        return True
    return session.state is UploadState.RECEIVING and record.protocol == "tus"


def _status(record: UploadRecord, now: datetime) -> UploadStatus:
    session = record.session
    state = UploadState.EXPIRED if session.expired(now) else session.state
    return UploadStatus(
        upload_id=session.id,
        offset=session.offset,
        size=session.length,
        state=state,
        expires_at=session.expires_at,
        details=record.details,
        protocol=record.protocol,
        result=session.result,
        publication_pending=state is not UploadState.EXPIRED and publication_pending(record),
    )


@dataclass(frozen=True, slots=True)
class GetUploadStatus:
    """HEAD: the durable offset. Raises ``UploadNotFound``."""

    store: UploadStore
    clock: Clock

    async def __call__(self, principal: Principal, upload_id: str) -> UploadStatus:
        return _status(await _load(self.store, upload_id, principal), self.clock.now())


# --- append -----------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Checksum:
    """``Upload-Checksum: <algorithm> <base64 digest>`` (tus checksum extension)."""

    algorithm: str
    digest: bytes

    @classmethod
    def parse(cls, header: str) -> Checksum:
        """Raises ``InvalidInput`` (400) for an unknown algorithm or a malformed digest."""
        algorithm, _, encoded = header.strip().partition(" ")
        algorithm = algorithm.lower()
        if algorithm not in CHECKSUM_ALGORITHMS:
            raise InvalidInput(
                f"Unsupported checksum algorithm; use one of {', '.join(CHECKSUM_ALGORITHMS)}.",
                code="checksum_algorithm_unsupported",
            )
        try:
            digest = base64.b64decode(encoded.strip(), validate=True)
        except (binascii.Error, ValueError):
            raise InvalidInput(
                "Upload-Checksum must be '<algorithm> <base64 digest>'.", code="bad_checksum"
            ) from None
        if len(digest) != hashlib.new(algorithm).digest_size:
            raise InvalidInput("The checksum has the wrong length.", code="bad_checksum")
        return cls(algorithm=algorithm, digest=digest)


@dataclass(frozen=True, slots=True)
class AppendChunk:
    upload_id: str
    offset: int
    body: AsyncIterable[bytes]
    content_length: int | None = None
    checksum: Checksum | None = None
    context: RequestContext | None = None  # the request, for the audit of a tus publication


@dataclass(frozen=True, slots=True)
class Appended:
    upload_id: str
    offset: int
    state: UploadState
    interrupted: bool = False
    result: UploadResult | None = None  # set when a tus upload completed with this chunk
    expires_at: datetime | None = None  # when an upload still open expires (tus expiration)


@dataclass(slots=True)
class _Heartbeat:
    """Extends the lock every third of its TTL while bytes keep arriving."""

    lock: Lock
    name: str
    token: str
    ttl: float
    idle: float
    last_progress: float = field(default_factory=time.monotonic)
    lost: bool = False

    def progress(self) -> None:
        self.last_progress = time.monotonic()

    async def run(self) -> None:
        while True:
            await asyncio.sleep(self.ttl / 3)
            if time.monotonic() - self.last_progress > self.idle:
                continue  # silent client: let the lock run out
            try:
                if not await self.lock.extend(self.name, self.token, self.ttl):
                    self.lost = True
                    return
            except Exception as exc:  # noqa: BLE001 (log_failure keeps a bug's traceback)
                log_failure(logger, exc, "could not extend the lock on %s", self.name)


async def _guarded(body: AsyncIterable[bytes], idle: float) -> AsyncIterator[bytes]:
    """The body's chunks; ``BodyInterrupted`` when it fails or stays silent for ``idle`` s."""
    iterator = aiter(body)
    while True:
        try:
            chunk = await asyncio.wait_for(anext(iterator), idle)
        except StopAsyncIteration:
            return
        except TimeoutError:
            raise BodyInterrupted("no bytes within the idle timeout") from None
        except BodyInterrupted:
            raise
        except Exception as exc:
            raise BodyInterrupted(str(exc)) from exc
        if chunk:
            yield chunk


HASH_IN_THREAD = 256 * 1024  # larger chunks are hashed off the event loop (hashlib frees the GIL)


async def _update(digest: Any, chunk: bytes) -> None:
    if len(chunk) >= HASH_IN_THREAD:
        await asyncio.to_thread(digest.update, chunk)
    else:
        digest.update(chunk)


async def _one(data: bytes | bytearray) -> AsyncIterator[bytes]:
    # A full buffer is handed to storage as it is (no copy); adapters take any bytes-like.
    yield cast(bytes, data)


async def _read_all(storage: ObjectStorage, key: str) -> bytes:
    buffer = bytearray()
    async for chunk in storage.read(key):
        buffer.extend(chunk)
    return bytes(buffer)


class _Abandoned(Exception):
    """The bytes of a streamed part stopped short of a part: storage must not keep them."""


class _PartStream:
    """One part written to storage while its bytes arrive (so the write overlaps the
    receiving): ``feed`` queues bytes, ``finish`` ends the part and answers it once storage has
    it, ``abandon`` makes the write fail so that nothing is kept. The queue holds only bytes
    the request's buffer holds too, so memory stays within one part."""

    def __init__(
        self,
        store: Callable[[AsyncIterable[bytes], int], Coroutine[Any, Any, UploadedPart]],
        offset: int,
    ) -> None:
        self._queue: asyncio.Queue[bytes | None] = asyncio.Queue()
        self._abandoned = False
        self._task: asyncio.Task[UploadedPart] = asyncio.create_task(store(self._chunks(), offset))

    async def _chunks(self) -> AsyncIterator[bytes]:
        while (chunk := await self._queue.get()) is not None:
            yield chunk
        if self._abandoned:
            raise _Abandoned("the part was abandoned")

    def feed(self, chunk: bytes) -> None:
        self._queue.put_nowait(chunk)

    async def finish(self) -> UploadedPart:
        self._queue.put_nowait(None)
        return await self._task

    async def abandon(self) -> None:
        self._abandoned = True
        self._queue.put_nowait(None)
        await asyncio.wait({self._task})
        if not self._task.cancelled():
            self._task.exception()  # retrieved: the failure is the point


@dataclass(frozen=True, slots=True)
class AppendUploadChunk:
    """PATCH: store the bytes at ``offset``. See the module docstring for the policy.

    Raises ``UploadNotFound`` (404), ``OffsetMismatch`` (409), ``UploadClosed`` (409),
    ``UploadExpired`` (410), ``UploadTooLarge`` (413), ``UploadBusy`` (423),
    ``ChecksumMismatch`` (460)."""

    store: UploadStore
    storage: ObjectStorage
    lock: Lock
    clock: Clock
    policy: UploadPolicy
    finish: CompleteUpload

    async def __call__(self, principal: Principal, command: AppendChunk) -> Appended:
        record = await _load(self.store, command.upload_id, principal)
        if _resends_the_end(record, command.offset):
            return await self._publish_again(principal, command, record)
        record.session.check_writable(command.offset, self.clock.now())
        if command.content_length is not None and command.content_length > record.session.remaining:
            raise UploadTooLarge(
                f"The chunk goes past the declared size of {record.session.length} bytes "
                f"({record.session.remaining} bytes remain)."
            )
        name = lock_name(command.upload_id)
        token = await self.lock.acquire(name, self.policy.lock_ttl_seconds)
        if token is None:
            raise UploadBusy("Another request is writing to this upload; retry after HEAD.")
        beat = _Heartbeat(
            self.lock, name, token, self.policy.lock_ttl_seconds, self.policy.idle_timeout_seconds
        )
        beating = asyncio.create_task(beat.run())
        try:
            appended = await self._append(principal, command, beat, record)
        finally:
            beating.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await beating
            with contextlib.suppress(Exception):
                await self.lock.release(name, token)
        if (
            appended.state is UploadState.RECEIVING
            and appended.offset == record.session.length
            and record.protocol == "tus"
        ):
            # tus clients never call /complete: the last byte completes the upload.
            result = await self.finish(principal, command.upload_id, command.context)
            return Appended(
                upload_id=command.upload_id,
                offset=appended.offset,
                state=UploadState.COMPLETED,
                result=result,
            )
        return appended

    async def _publish_again(
        self, principal: Principal, command: AppendChunk, record: UploadRecord
    ) -> Appended:
        """A PATCH at the end of an upload whose bytes are all stored: the last byte again
        (at ``length - 1``, where HEAD put the client) or nothing (at ``length``). The bytes
        are read and dropped (the stored ones are the upload's; a body longer than what is
        left is 413, a wrong ``Upload-Checksum`` 460) and the publication runs, or answers
        its stored result once done. Raises what ``CompleteUpload`` raises: a dependency that
        fails again is 503 and the offset HEAD tells stays one byte short."""
        session = record.session
        allowed = session.length - command.offset
        if command.content_length is not None and command.content_length > allowed:
            raise UploadTooLarge(
                f"The chunk goes past the declared size of {session.length} bytes "
                f"({allowed} bytes remain)."
            )
        hasher = hashlib.new(command.checksum.algorithm) if command.checksum else None
        received = 0
        try:
            async for chunk in _guarded(command.body, self.policy.idle_timeout_seconds):
                received += len(chunk)
                if received > allowed:
                    raise UploadTooLarge(
                        f"The chunk goes past the declared size of {session.length} bytes."
                    )
                if hasher is not None:
                    hasher.update(chunk)
        except BodyInterrupted:  # nothing published: the client resumes from HEAD
            offset = session.length - 1 if publication_pending(record) else session.length
            return Appended(
                command.upload_id,
                offset,
                session.state,
                interrupted=True,
                expires_at=session.expires_at,
            )
        if (
            command.checksum is not None
            and hasher is not None
            and hasher.digest() != command.checksum.digest
        ):
            raise ChecksumMismatch(
                "The chunk does not match its Upload-Checksum; the offset did not move."
            )
        result = await self.finish(principal, command.upload_id, command.context)
        return Appended(
            upload_id=command.upload_id,
            offset=session.length,
            state=UploadState.COMPLETED,
            result=result,
        )

    async def _append(
        self, principal: Principal, command: AppendChunk, beat: _Heartbeat, record: UploadRecord
    ) -> Appended:
        min_part = self.storage.min_part_size
        # ``record`` was read before the lock was taken. One conditional statement under the
        # lock confirms it is still current (same offset, open, unexpired: then its tail is
        # the same too) and, when this request's bytes will make a part, reserves that part's
        # number. If the session moved meanwhile, it is read again and checked.
        tail_size = record.tail.size if record.tail else 0
        makes_part = command.content_length is not None and (
            tail_size + command.content_length >= min_part
            or command.offset + command.content_length == record.session.length
        )
        reserved = await self.store.confirm(
            command.upload_id,
            offset=command.offset,
            now=self.clock.now(),
            reserve_part=makes_part,
        )
        if reserved is None:
            record = await _load(self.store, command.upload_id, principal)
            record.session.check_writable(command.offset, self.clock.now())
        next_number = reserved or None  # the first part's number, when already reserved
        session = record.session
        assert record.multipart_id is not None
        part_size = max(self.policy.part_size, min_part)
        verify = command.checksum
        hasher = hashlib.new(verify.algorithm) if verify else None

        tail = record.tail
        buffer = bytearray(await _read_all(self.storage, tail.key)) if tail else bytearray()
        if tail and len(buffer) != tail.size:
            raise UploadClosed("The staged bytes of this upload are damaged; start again.")
        durable = session.offset  # bytes recorded (the tail included)
        start = durable - len(buffer)  # upload offset of buffer[0]
        remaining = session.remaining
        received = 0
        pending_parts: list[
            tuple[UploadedPart, int]
        ] = []  # checksummed chunks: recorded at the end
        committed_tail = tail
        stale_tails: list[str] = []

        async def store_part(chunks: AsyncIterable[bytes], offset: int) -> UploadedPart:
            nonlocal next_number
            number, next_number = next_number, None
            if number is None:
                number = await self.store.reserve_part_number(session.id)
            part = await self.storage.upload_part(
                record.storage_key, record.multipart_id or "", number, chunks, offset=offset
            )
            beat.progress()
            return part

        async def commit(
            part: UploadedPart | None, new_tail: StagedTail | None, drop_tail: bool, upto: int
        ) -> None:
            nonlocal durable, committed_tail
            if beat.lost:
                raise UploadBusy("This request lost its lock on the upload; resume from HEAD.")
            moved = await self.store.record_progress(
                session.id,
                expected_offset=durable,
                new_offset=upto,
                part=part,
                tail=new_tail,
                drop_tail=drop_tail,
                now=self.clock.now(),
            )
            if not moved:
                raise UploadBusy("The upload moved on meanwhile; resume from HEAD.")
            if committed_tail is not None and (drop_tail or new_tail is not None):
                stale_tails.append(committed_tail.key)
            committed_tail = (
                new_tail if new_tail is not None else (None if drop_tail else committed_tail)
            )
            durable = upto

        stream: _PartStream | None = None  # the part being written while its bytes arrive

        def worth_streaming(coming: int | None) -> bool:
            """Will this request's bytes (``coming`` more, per Content-Length) make the buffer
            a part? Then it is written as it arrives instead of after it is whole."""
            if coming is None:
                return False
            total = len(buffer) + coming
            return total >= min_part or start + total == session.length

        async def drop_stream() -> None:
            nonlocal stream
            if stream is not None:
                current, stream = stream, None
                await current.abandon()

        async def flush(*, final: bool) -> None:
            """Make the buffer durable: a part, or (too small) a staged tail."""
            nonlocal start, buffer, stream
            if not buffer:
                return
            end = start + len(buffer)
            if (
                stream is None
                and end == durable
                and committed_tail is not None
                and len(buffer) == committed_tail.size
            ):
                return  # only the old tail, unchanged
            last = end == session.length
            if len(buffer) >= min_part or last:
                if stream is not None:
                    current, stream = stream, None
                    part = await current.finish()
                else:
                    part = await store_part(_one(buffer), start)
                if hasher is None:
                    await commit(part, None, committed_tail is not None, end)
                else:
                    pending_parts.append((part, end))
                start, buffer = end, bytearray()
                return
            await drop_stream()  # too short for a part: the bytes become a staged tail
            if final and hasher is None:
                key = f"{UPLOADS_PREFIX}{session.id}/tail-{uuid.uuid4().hex}"
                await self.storage.put(key, _one(buffer))
                beat.progress()
                try:
                    await commit(None, StagedTail(key=key, size=len(buffer)), False, end)
                except BaseException:
                    await self.storage.delete(key)
                    raise

        interrupted = False
        try:
            try:
                async for chunk in _guarded(command.body, self.policy.idle_timeout_seconds):
                    beat.progress()
                    if received + len(chunk) > remaining:
                        raise UploadTooLarge(
                            f"The chunk goes past the declared size of {session.length} bytes."
                        )
                    if stream is None and worth_streaming(
                        None
                        if command.content_length is None
                        else command.content_length - received
                    ):
                        stream = _PartStream(store_part, start)
                        if buffer:
                            stream.feed(bytes(buffer))  # the staged tail comes first
                    received += len(chunk)
                    buffer.extend(chunk)
                    if stream is not None:
                        stream.feed(chunk)
                    if hasher is not None:
                        hasher.update(chunk)
                    if len(buffer) >= part_size:
                        await flush(final=False)
            except BodyInterrupted as exc:
                interrupted = True
                logger.info(
                    "upload %s: body interrupted after %d bytes (%s)", session.id, received, exc
                )

            if hasher is not None:
                assert verify is not None
                if interrupted or hasher.digest() != verify.digest:
                    if interrupted:
                        return Appended(
                            session.id,
                            durable,
                            session.state,
                            interrupted=True,
                            expires_at=session.expires_at,
                        )
                    raise ChecksumMismatch(
                        "The chunk does not match its Upload-Checksum; the offset did not move."
                    )
                # Verified: record the parts stored meanwhile, then keep the remainder.
                for part, end in pending_parts:
                    await commit(part, None, committed_tail is not None, end)
                hasher = None
            await flush(final=True)
        finally:
            await drop_stream()  # failed meanwhile: a part being written is not kept

        for key in stale_tails:
            with contextlib.suppress(Exception):
                await self.storage.delete(key)
        state = UploadState.RECEIVING if durable > 0 else session.state
        return Appended(
            session.id, durable, state, interrupted=interrupted, expires_at=session.expires_at
        )


def _resends_the_end(record: UploadRecord, offset: int) -> bool:
    """Is a PATCH at ``offset`` the end of an upload whose bytes are all stored, sent again to
    get it published (or to learn that it is)? See ``UploadStatus.resume_offset``."""
    session = record.session
    if offset not in (session.length - 1, session.length):
        return False
    if session.state is UploadState.COMPLETED:
        return session.result is not None
    return publication_pending(record)


# --- complete ---------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class CompleteUpload:
    """Assemble, verify (size, declared SHA-256), scan and publish. Idempotent.

    Publish or discard, nothing between: a refusal (size, digest, malware, a version that
    exists) aborts the session and drops its bytes; a dependency that fails (the scanner, the
    storage, the database) leaves the session ``finalizing`` with its bytes, so the next
    attempt (``/complete``, a tus PATCH at the end, or the worker's ``PublishPendingUploads``)
    goes on from there. The version appears in one transaction or not at all.

    Raises ``UploadNotFound``, ``UploadIncomplete`` (409), ``UploadExpired`` (410),
    ``UploadBusy`` (423), ``DigestMismatch`` (409), ``VersionExists`` (409),
    ``MalwareDetected`` (422), ``ScannerUnavailable`` / ``StorageUnavailable`` (503)."""

    store: UploadStore
    catalog: PackageCatalog
    storage: ObjectStorage
    lock: Lock
    clock: Clock
    policy: UploadPolicy
    scanner: MalwareScanner
    trail: AuditTrail

    async def __call__(
        self, principal: Principal, upload_id: str, context: RequestContext | None = None
    ) -> UploadResult:
        record = await _load(self.store, upload_id, principal)
        return await self.publish(record, context or RequestContext())

    async def publish(
        self,
        record: UploadRecord,
        context: RequestContext | None = None,
        *,
        pending_only: bool = False,
    ) -> UploadResult:
        """Complete the session ``record`` names (as read from the store, by its owner or the
        worker), under the upload's lock: ``UploadBusy`` while another request holds it.
        ``context`` is the owner's request (``None``: the worker publishes; the audit event
        says so). A completed session answers its stored result (a retry is idempotent), or,
        with ``pending_only`` (the worker, whose ``record`` may be older than the lock),
        raises ``UploadClosed``: someone else published it meanwhile."""
        if record.session.state is UploadState.COMPLETED and record.session.result:
            if pending_only:
                raise UploadClosed("This upload was published meanwhile.")
            return record.session.result
        upload_id = record.session.id
        name = lock_name(upload_id)
        token = await self.lock.acquire(name, self.policy.lock_ttl_seconds)
        if token is None:
            raise UploadBusy("This upload is busy; retry in a moment.")
        try:
            return await self._complete(
                record.session.owner_id, upload_id, name, token, context, pending_only
            )
        finally:
            with contextlib.suppress(Exception):
                await self.lock.release(name, token)

    async def _complete(
        self,
        owner_id: str,
        upload_id: str,
        name: str,
        token: str,
        context: RequestContext | None,
        pending_only: bool = False,
    ) -> UploadResult:
        found = await self.store.get(upload_id)
        if found is None or found.session.owner_id != owner_id:
            raise UploadNotFound("No such upload.")
        record = found
        session = record.session
        if session.state is UploadState.COMPLETED and session.result:
            if pending_only:  # published between the caller's read and this lock
                raise UploadClosed("This upload was published meanwhile.")
            return session.result
        now = self.clock.now()
        session.begin_finalizing(now)
        await self.store.move(
            upload_id,
            from_states=(UploadState.CREATED, UploadState.RECEIVING),
            to=UploadState.FINALIZING,
            now=now,
        )
        key = record.storage_key
        info = await self.storage.stat(key)
        known_sha256 = info.sha256 if info is not None else None  # the adapter's own digest
        if info is None or info.size != session.length:
            if record.tail is not None:
                number = await self.store.reserve_part_number(upload_id)
                data = await _read_all(self.storage, record.tail.key)
                part = await self.storage.upload_part(
                    key,
                    record.multipart_id or "",
                    number,
                    _one(data),
                    offset=session.offset - len(data),
                )
                moved = await self.store.record_progress(
                    upload_id,
                    expected_offset=session.offset,
                    new_offset=session.offset,
                    part=part,
                    tail=None,
                    drop_tail=True,
                    now=self.clock.now(),
                )
                if moved:
                    await self.storage.delete(record.tail.key)
            parts = await self.store.parts(upload_id)
            if sum(part.size for part in parts) != session.length:
                raise UploadClosed("The stored parts do not add up to the declared size.")
            joined = await self.storage.complete_multipart(key, record.multipart_id or "", parts)
            known_sha256 = joined.sha256
        await self.lock.extend(name, token, self.policy.lock_ttl_seconds)
        # One read of the whole object for the scan; it also hashes the bytes unless the
        # adapter computed the digest while joining the parts (the local one does).
        digest = hashlib.sha256() if known_sha256 is None else None
        size = 0

        # The lock is extended while the bytes are read (a large file takes longer to scan
        # than the lock lives), so neither the worker nor a retry starts a second publication.
        beat = _Heartbeat(
            self.lock, name, token, self.policy.lock_ttl_seconds, self.policy.idle_timeout_seconds
        )

        async def hashed() -> AsyncIterator[bytes]:
            nonlocal size
            async for chunk in self.storage.read(key):
                beat.progress()
                if digest is not None:
                    await _update(digest, chunk)
                size += len(chunk)
                yield chunk

        beating = asyncio.create_task(beat.run())
        try:
            verdict = await scan_stream(self.scanner, hashed())
        finally:
            beating.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await beating
        if beat.lost:
            raise UploadBusy("This request lost its lock on the upload; retry in a moment.")
        sha256 = digest.hexdigest() if digest is not None else known_sha256
        assert sha256 is not None
        declared = record.details.sha256
        failure: Exception | None = None
        if size != session.length:
            failure = UploadClosed(f"{size} bytes were stored, not {session.length}.")
        elif declared is not None and declared != sha256:
            failure = DigestMismatch(
                "The uploaded bytes do not have the declared SHA-256; nothing was published."
            )
        elif verdict.signature is not None:
            failure = MalwareDetected("file", verdict.signature)
            await self.trail.record(
                _malware_event(
                    self.clock, owner_id, upload_id, verdict.signature, record.details.file_name
                )
            )
        if failure is not None:
            await self._discard(record)
            raise failure
        try:
            return await _publish(
                self.catalog, self.storage, self.clock, record, sha256, self.policy, context
            )
        except (VersionExists, TooManyVersions, PackageNameTaken):
            await self._discard(record)
            raise

    async def _discard(self, record: UploadRecord) -> None:
        await self.store.move(
            record.session.id,
            from_states=(UploadState.FINALIZING,),
            to=UploadState.ABORTED,
            now=self.clock.now(),
        )
        await _drop_bytes(self.storage, record)


async def _publish(
    catalog: PackageCatalog,
    storage: ObjectStorage,
    clock: Clock,
    record: UploadRecord,
    sha256: str,
    policy: UploadPolicy,
    context: RequestContext | None,
) -> UploadResult:
    """Publish the verified, scanned bytes of ``record`` (a ``finalizing`` session) as its
    version, in the catalogue's one transaction (audited there; at most
    ``policy.max_versions`` versions per package). Content addressing: when a blob with these
    bytes exists, the version shares it and the upload's own object goes; but first the
    blob's object is checked, and when it is gone (lost outside the application) the blob
    takes this upload's object instead (healed), so a version is never linked to nothing.
    Raises ``VersionExists``, ``TooManyVersions``; ``StorageUnavailable`` when the check cannot
    be made."""
    shared = await catalog.blob_key(sha256)
    heal = (
        shared is not None and shared != record.storage_key and await storage.size(shared) is None
    )
    if heal:
        logger.error(
            "the object %s of blob %s is missing; upload %s stores it again",
            shared,
            sha256,
            record.session.id,
        )
    publication = await catalog.publish(
        record,
        sha256=sha256,
        version_id=str(uuid.uuid4()),
        package_id=str(uuid.uuid4()),
        now=clock.now(),
        heal_blob=heal,
        max_versions=policy.max_versions,
        context=context,
    )
    if publication.redundant_key is not None:
        try:
            await storage.delete(publication.redundant_key)
        # published: the orphan sweep removes the object later; log_failure keeps a bug's traceback
        except Exception as exc:  # noqa: BLE001
            log_failure(
                logger, exc, "could not delete %s; left to the sweep", publication.redundant_key
            )
    return publication.result


def _malware_event(
    clock: Clock, owner_id: str, upload_id: str, signature: str, file_name: str
) -> AuditEvent:
    return malware_detected(
        clock.now(),
        RequestContext(),
        actor_user_id=owner_id,
        target_type="package_upload",
        target_id=upload_id,
        signature=signature,
        file_name=file_name,
    )


async def _drop_bytes(storage: ObjectStorage, record: UploadRecord) -> None:
    """Delete whatever storage holds for the upload (idempotent)."""
    if record.multipart_id:
        await storage.abort_multipart(record.storage_key, record.multipart_id)
    if record.tail is not None:
        await storage.delete(record.tail.key)
    await storage.delete(record.storage_key)


# --- single-shot ------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class PublishPackage:
    """``POST /software-packages``: one request carries the whole file.

    The bytes stream to storage once while they are hashed and scanned (nothing holds the file;
    ``MAX_UPLOAD_BYTES`` applies as they arrive), then the version is published through the same
    path as a completed resumable upload (a session row in ``finalizing`` that reserves the
    size in the quota, the same blob reference counting and duplicate check); a refusal after
    the bytes were stored deletes them and gives the reservation back. The stream is cut at the
    free quota as well as at ``MAX_UPLOAD_BYTES``. It counts against the hourly publishing
    budget like an opened upload. Raises ``FieldInvalid``, ``RateLimited`` (429),
    ``VersionExists``, ``TooManyVersions`` (409), ``ObjectTooLarge`` (413), ``QuotaExceeded``
    (413), ``DigestMismatch``, ``MalwareDetected`` (422)."""

    store: UploadStore
    catalog: PackageCatalog
    storage: ObjectStorage
    versions: VersionScheme
    clock: Clock
    policy: UploadPolicy
    scanner: MalwareScanner
    trail: AuditTrail
    limiter: RateLimiter

    async def __call__(
        self,
        principal: Principal,
        details: UploadDetails,
        file: AsyncIterable[bytes],
        context: RequestContext | None = None,
        *,
        complete: Callable[[], UploadDetails] | None = None,
    ) -> UploadResult:
        """``complete``, when given, is called once ``file`` is exhausted and returns the whole
        declaration: a multipart form may carry fields after its file, so ``details`` holds
        only those that came first. With its name and version there, it is checked (and the
        version looked up) before any byte is stored; the whole declaration is checked after
        the bytes, before anything is published, and a refusal deletes them. The attempt is
        counted against the hourly budget before any byte is stored, whatever the order."""
        await spend_publication(self.limiter, self.policy, principal.user_id)
        checked = complete is None or (details.package_name != "" and details.version != "")
        if checked:
            details = await self._checked(principal, details)
        # The size is unknown until the stream ends: cut it at the free quota as well as at
        # MAX_UPLOAD_BYTES (the reservation below still decides between concurrent uploads).
        free = await self.store.free_bytes(principal.user_id)
        if free < 1:
            raise QuotaExceeded("The storage quota is full (0 bytes free).")
        limit = min(self.policy.max_upload_bytes, free)
        upload_id = str(uuid.uuid4())
        key = f"{UPLOADS_PREFIX}{upload_id}/object"
        digest = hashlib.sha256()
        scan = await self.scanner.open()

        async def inspected() -> AsyncIterator[bytes]:
            async for chunk in file:
                digest.update(chunk)
                await scan.feed(chunk)
                yield chunk

        try:
            stored = await self.storage.put(
                key,
                inspected(),
                max_size=limit,
                content_type=details.content_type if checked else None,
            )
            verdict = await scan.finish()
        except BaseException as exc:
            await scan.abort()
            if isinstance(exc, ObjectTooLarge) and limit < self.policy.max_upload_bytes:
                raise QuotaExceeded(
                    f"The file does not fit in the storage quota ({free} bytes free)."
                ) from None
            raise
        if complete is not None:  # the fields after the file, now that it was read
            try:
                details = await self._checked(principal, complete())
            except BaseException:
                await self.storage.delete(key)
                if verdict.signature is None:
                    raise
                # malware is reported (and alerted) as such, whatever else the form got wrong
                await self.trail.record(
                    _malware_event(
                        self.clock,
                        principal.user_id,
                        upload_id,
                        verdict.signature,
                        details.file_name,
                    )
                )
                raise MalwareDetected("file", verdict.signature) from None
        sha256 = digest.hexdigest()
        failure: Exception | None = None
        if stored.size == 0:
            failure = FieldInvalid("file", "must not be empty")
        elif details.sha256 is not None and details.sha256 != sha256:
            failure = DigestMismatch("The file does not have the declared SHA-256.")
        elif verdict.signature is not None:
            failure = MalwareDetected("file", verdict.signature)
            await self.trail.record(
                _malware_event(
                    self.clock, principal.user_id, upload_id, verdict.signature, details.file_name
                )
            )
        if failure is not None:
            await self.storage.delete(key)
            raise failure
        now = self.clock.now()
        record = UploadRecord(
            session=UploadSession(
                id=upload_id,
                owner_id=principal.user_id,
                length=stored.size,
                offset=stored.size,
                state=UploadState.FINALIZING,
                expires_at=now + timedelta(seconds=self.policy.session_ttl_seconds),
                created_at=now,
            ),
            details=details,
            protocol="single",
            storage_key=key,
            multipart_id=None,
        )
        try:
            # Reserves the size (QuotaExceeded: 413). Not an open session: no cap on those.
            await self.store.create(record, now, max_open=None)
        except BaseException:
            await self.storage.delete(key)
            raise
        try:
            result = await _publish(
                self.catalog,
                self.storage,
                self.clock,
                record,
                sha256,
                self.policy,
                context or RequestContext(),
            )
        except BaseException:
            await self.store.move(  # gives the reservation back
                upload_id,
                from_states=(UploadState.FINALIZING,),
                to=UploadState.ABORTED,
                now=self.clock.now(),
            )
            await self.storage.delete(key)
            await self.store.delete(upload_id)
            raise
        await self.store.delete(upload_id)  # nothing to resume: the session has served
        return result

    async def _checked(self, principal: Principal, details: UploadDetails) -> UploadDetails:
        """``details`` normalised; ``FieldInvalid``, or ``VersionExists``/``TooManyVersions``
        when the owner's package has this version already or is full."""
        details = check_details(details, self.versions)
        await check_room(self.catalog, self.policy, principal.user_id, details)
        return details


# --- abort ------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class AbortUpload:
    """DELETE: abort the session and drop its bytes and parts. Raises ``UploadNotFound``,
    ``UploadClosed`` (a completed upload), ``UploadBusy``."""

    store: UploadStore
    storage: ObjectStorage
    lock: Lock
    clock: Clock
    policy: UploadPolicy

    async def __call__(self, principal: Principal, upload_id: str) -> None:
        record = await _load(self.store, upload_id, principal)
        record.session.abort()
        name = lock_name(upload_id)
        token = await self.lock.acquire(name, self.policy.lock_ttl_seconds)
        if token is None:
            raise UploadBusy("A request is writing to this upload; retry in a moment.")
        try:
            moved = await self.store.move(
                upload_id,
                from_states=(
                    UploadState.CREATED,
                    UploadState.RECEIVING,
                    UploadState.FINALIZING,
                    UploadState.EXPIRED,
                    UploadState.ABORTED,
                ),
                to=UploadState.ABORTED,
                now=self.clock.now(),
            )
            if not moved:
                raise UploadClosed(COMPLETED_UPLOAD)
            record = await _load(self.store, upload_id, principal)
            await _drop_bytes(self.storage, record)
            await self.store.delete(upload_id)
        finally:
            with contextlib.suppress(Exception):
                await self.lock.release(name, token)


# --- sweep ------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class SweepUploads:
    """The worker's job. Returns how many sessions, multipart uploads and objects it cleaned.

    1. Sessions past ``expires_at``: abort their multipart uploads, delete their staged bytes
       and rows (an unfinished session also gives its quota reservation back).
    2. Storage multipart uploads under ``packages/uploads/`` started more than the session TTL
       ago that no session owns (a crash between creating one and recording it): aborted.
    3. Objects under ``packages/uploads/`` last written more than the session TTL ago whose
       upload id has no session row and whose key no blob references (a staged tail, a joined
       object or a deduplicated copy left by a crash or a failed delete): deleted. An object
       of a live session is never touched (its row exists), nor the object a version
       downloads from (its blob names it), however old. The listing streams, so any number of
       objects is walked in bounded memory, ``ORPHAN_BATCH`` keys per database check.

    Rows never point at objects a crash lost: every write stores the object before the row
    that names it, and every delete removes the row before the object. Rows whose objects
    were lost otherwise (outside the application) are the sessions' own and go with them in
    step 1 when they expire."""

    store: UploadStore
    catalog: PackageCatalog
    storage: ObjectStorage
    lock: Lock
    clock: Clock
    policy: UploadPolicy

    async def __call__(self) -> int:
        now = self.clock.now()
        cleaned = 0
        for record in await self.store.expired(now, SWEEP_BATCH):
            name = lock_name(record.session.id)
            token = await self.lock.acquire(name, self.policy.lock_ttl_seconds)
            if token is None:
                continue  # a request is on it; next round
            try:
                if record.session.state is not UploadState.COMPLETED:
                    await self.store.move(  # gives the quota reservation back
                        record.session.id,
                        from_states=(
                            UploadState.CREATED,
                            UploadState.RECEIVING,
                            UploadState.FINALIZING,
                        ),
                        to=UploadState.EXPIRED,
                        now=now,
                    )
                if record.session.state is not UploadState.COMPLETED:
                    await _drop_bytes(self.storage, record)
                await self.store.delete(record.session.id)
                cleaned += 1
            finally:
                with contextlib.suppress(Exception):
                    await self.lock.release(name, token)
        cleaned += await self._orphan_uploads(now)
        cleaned += await self._orphan_objects(now)
        return cleaned

    async def _orphan_uploads(self, now: datetime) -> int:
        cutoff = now - timedelta(seconds=self.policy.session_ttl_seconds)
        cleaned = 0
        for pending in await self.storage.list_multipart_uploads(started_before=cutoff):
            if not pending.key.startswith(UPLOADS_PREFIX):
                continue
            record = await self.store.get(_upload_id_of(pending.key))
            if record is None or record.multipart_id != pending.upload_id:
                await self.storage.abort_multipart(pending.key, pending.upload_id)
                cleaned += 1
        return cleaned

    async def _orphan_objects(self, now: datetime) -> int:
        cutoff = now - timedelta(seconds=self.policy.session_ttl_seconds)
        cleaned = 0
        batch: list[str] = []
        async for found in self.storage.list_objects(UPLOADS_PREFIX):
            if found.modified_at >= cutoff:
                continue  # young: its session may not be recorded yet
            batch.append(found.key)
            if len(batch) >= ORPHAN_BATCH:
                cleaned += await self._drop_orphans(batch)
                batch = []
        if batch:
            cleaned += await self._drop_orphans(batch)
        return cleaned

    async def _drop_orphans(self, keys: list[str]) -> int:
        live = await self.store.existing({_upload_id_of(key) for key in keys})
        candidates = [key for key in keys if _upload_id_of(key) not in live]
        if not candidates:
            return 0
        needed = await self.catalog.referenced_keys(candidates)
        cleaned = 0
        for key in candidates:
            if key not in needed:
                logger.info("deleting %s: no upload session and no blob names it", key)
                await self.storage.delete(key)
                cleaned += 1
        return cleaned


PUBLISH_BATCH = 20  # sessions per pass of the publication job


@dataclass(frozen=True, slots=True)
class PublishPendingUploads:
    """The worker's job: publish the uploads whose every byte is stored and whose publication
    did not finish (see ``publication_pending``: a scanner or storage that was down when the
    last byte arrived, a process that died meanwhile), until it succeeds or the session
    expires (the sweep then removes it). Returns how many it published.

    A session is left alone for ``policy.lock_ttl_seconds`` after its last change, so the
    request that received the last byte publishes it itself. Safe with several workers: each
    publication takes the upload's lock (``CompleteUpload.publish``); a session another worker
    or a request holds is skipped this pass. A refusal (malware, a digest that does not match,
    a version published meanwhile) discards the session as ``/complete`` would; a dependency
    that fails again leaves it for the next pass."""

    store: UploadStore
    complete: CompleteUpload
    clock: Clock
    policy: UploadPolicy

    async def __call__(self) -> int:
        now = self.clock.now()
        quiet_since = now - timedelta(seconds=self.policy.lock_ttl_seconds)
        published = 0
        for record in await self.store.awaiting_publication(
            now, changed_before=quiet_since, limit=PUBLISH_BATCH
        ):
            upload_id = record.session.id
            try:
                await self.complete.publish(record, pending_only=True)
            except UploadBusy:
                continue  # a request or another worker is on it
            except UploadClosed:
                continue  # a request or another worker published it since it was read
            except DependencyUnavailable as failed:
                logger.warning(
                    "upload %s: publication failed again (%s); retrying later",
                    upload_id,
                    failed.code,
                )
                continue
            except DomainError as refused:  # discarded, as /complete would
                logger.info("upload %s: not published (%s)", upload_id, refused.code)
                continue
            except Exception as exc:  # noqa: BLE001 (log_failure keeps a bug's traceback)
                log_failure(logger, exc, "upload %s: publication failed; retrying later", upload_id)
                continue
            published += 1
            logger.info("upload %s: published by the worker", upload_id)
        return published


def _upload_id_of(key: str) -> str:
    """``packages/uploads/<upload id>/...`` -> the upload id."""
    return key.removeprefix(UPLOADS_PREFIX).split("/", 1)[0]


__all__: list[Any] = [
    "AbortUpload",
    "AppendUploadChunk",
    "CompleteUpload",
    "CreateUpload",
    "GetUploadStatus",
    "PublishPendingUploads",
    "SweepUploads",
]
