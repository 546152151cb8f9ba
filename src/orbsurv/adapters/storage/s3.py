"""Object storage on S3 or any S3-compatible server (``S3_ENDPOINT_URL``), through boto3.

boto3 blocks, so every call runs in a thread pool of the adapter's own (the default executor
stays free for file and hashing work). ``put`` streams: bytes are gathered into 8 MiB parts and
sent as a real S3 multipart upload with up to ``PUT_CONCURRENCY`` parts in flight, so memory stays
bounded by ``(PUT_CONCURRENCY + 1) * PART_SIZE`` whatever the object's size; an object smaller
than one part goes up in one PutObject. Any failure aborts the multipart upload, so nothing is
left half-written under the key.

The SHA-256 of each ``put`` is computed as the bytes pass and returned. It is recorded as user
metadata (``x-amz-meta-sha256``) only when the object goes up in one PutObject: S3 fixes a
multipart object's metadata when the upload is created, before the digest is known, so ``stat``
reports ``sha256=None`` for such objects (callers keep the digest ``put`` returned).

Connection failures, timeouts, S3's own 5xx answers and refusals that only the operator can fix
(a missing bucket, bad credentials, a skewed clock: ``_REFUSALS``) become ``StorageUnavailable``
(HTTP 503); every call is bounded by the client's timeouts and attempts (``make_s3_client``).
"""

from __future__ import annotations

import asyncio
import functools
import hashlib
from collections.abc import AsyncIterable, AsyncIterator, Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any, TypeVar

import boto3
from botocore.config import Config
from botocore.exceptions import (
    ClientError,
    HTTPClientError,
    IncompleteReadError,
)
from botocore.exceptions import (
    ConnectionError as BotoConnectionError,
)

from orbsurv.adapters.storage.local import StorageProbe, check_completion
from orbsurv.application.errors import (
    InvalidMultipart,
    ObjectNotFound,
    ObjectTooLarge,
    StorageUnavailable,
)
from orbsurv.application.ports import (
    MAX_PART_NUMBER,
    ListedObject,
    ObjectInfo,
    PendingMultipart,
    StoredObject,
    UploadedPart,
)

if TYPE_CHECKING:
    from mypy_boto3_s3 import S3Client

PART_SIZE = 8 * 1024 * 1024  # S3 needs parts of at least 5 MiB, except the last
MIN_PART_SIZE = 5 * 1024 * 1024
PUT_CONCURRENCY = 4
READ_CHUNK = 1024 * 1024
LIST_PAGE = 1000  # keys per ListObjectsV2 request (S3's maximum)
COPY_OBJECT_LIMIT = 5 * 1024**3  # CopyObject's limit; larger objects copy part by part
T = TypeVar("T")


def make_s3_client(
    *,
    endpoint_url: str | None,
    region: str | None,
    access_key_id: str | None,
    secret_access_key: str | None,
    connect_timeout: float = 5,
    read_timeout: float = 30,
    max_attempts: int = 2,
) -> S3Client:
    """A client whose every call is bounded: ``connect_timeout`` and ``read_timeout`` seconds
    per attempt (the read timeout is the longest silence while waiting for bytes) and
    ``max_attempts`` attempts in all, retried with botocore's standard mode (exponential
    backoff with jitter, at most 20 s between attempts, only for transient errors)."""
    return boto3.client(
        "s3",
        endpoint_url=endpoint_url,
        region_name=region,
        aws_access_key_id=access_key_id,
        aws_secret_access_key=secret_access_key,
        config=Config(
            # attempts in all, the first included (botocore's ``max_attempts`` counts retries)
            retries={"total_max_attempts": max_attempts, "mode": "standard"},
            connect_timeout=connect_timeout,
            read_timeout=read_timeout,
            max_pool_connections=32,
        ),
    )


def _code(error: ClientError) -> str:
    return str(error.response.get("Error", {}).get("Code", ""))


def _is_missing(error: ClientError) -> bool:
    return _code(error) in {"404", "NoSuchKey", "NotFound"}


#: S3 error codes that say the store (or its configuration: bucket, credentials, clock), not
#: the request, is at fault: the operator has to act, the client can only retry later.
_REFUSALS = frozenset(
    {
        "NoSuchBucket",
        "SlowDown",
        "ServiceUnavailable",
        "InternalError",
        "RequestTimeout",
        "AccessDenied",
        "InvalidAccessKeyId",
        "SignatureDoesNotMatch",
        "ExpiredToken",
        "RequestTimeTooSkewed",
    }
)


def _unavailable(error: Exception) -> StorageUnavailable | None:
    if isinstance(error, BotoConnectionError | HTTPClientError):
        return StorageUnavailable("The object storage cannot be reached; try again later.")
    if isinstance(error, ClientError):
        status = error.response.get("ResponseMetadata", {}).get("HTTPStatusCode", 0)
        if status >= 500 or status == 403 or _code(error) in _REFUSALS:
            return StorageUnavailable("The object storage refused to serve; try again later.")
    return None


class S3ObjectStorage:
    """``ObjectStorage`` on one S3 bucket."""

    min_part_size = MIN_PART_SIZE

    def __init__(self, client: S3Client, bucket: str, *, threads: int = 16) -> None:
        self._s3 = client
        self._bucket = bucket
        self._pool = ThreadPoolExecutor(max_workers=threads, thread_name_prefix="s3")

    def close(self) -> None:
        self._pool.shutdown(wait=False)

    async def _call(self, fn: Callable[..., T], /, **kwargs: Any) -> T:
        loop = asyncio.get_running_loop()
        try:
            return await loop.run_in_executor(self._pool, functools.partial(fn, **kwargs))
        except (BotoConnectionError, HTTPClientError, ClientError) as error:
            translated = _unavailable(error)
            if translated is not None:
                raise translated from error
            raise

    # --- whole objects --------------------------------------------------------------------

    async def put(
        self,
        key: str,
        chunks: AsyncIterable[bytes],
        *,
        max_size: int | None = None,
        content_type: str | None = None,
    ) -> StoredObject:
        digest = hashlib.sha256()
        buffer = bytearray()
        size = 0
        upload_id: str | None = None
        extra = {"ContentType": content_type} if content_type else {}
        in_flight: set[asyncio.Task[UploadedPart]] = set()
        done: list[UploadedPart] = []

        async def flush() -> None:
            nonlocal upload_id, buffer
            if upload_id is None:
                upload_id = await self.create_multipart(key, content_type=content_type)
            while len(in_flight) >= PUT_CONCURRENCY:
                finished, _ = await asyncio.wait(in_flight, return_when=asyncio.FIRST_COMPLETED)
                for task in finished:
                    in_flight.discard(task)
                    done.append(task.result())
            number = len(done) + len(in_flight) + 1
            body, buffer = bytes(buffer), bytearray()
            in_flight.add(asyncio.create_task(self._send_part(key, upload_id, number, body)))

        try:
            async for chunk in chunks:
                size += len(chunk)
                if max_size is not None and size > max_size:
                    raise ObjectTooLarge(f"The object is larger than {max_size} bytes.")
                buffer += chunk
                if len(buffer) >= PART_SIZE:
                    await asyncio.to_thread(digest.update, buffer)
                    await flush()
            await asyncio.to_thread(digest.update, buffer)
            sha256 = digest.hexdigest()
            if upload_id is None:
                await self._call(
                    self._s3.put_object,
                    Bucket=self._bucket,
                    Key=key,
                    Body=bytes(buffer),
                    Metadata={"sha256": sha256},
                    **extra,
                )
                return StoredObject(key=key, size=size, sha256=sha256)
            if buffer:
                await flush()
            done.extend(await asyncio.gather(*in_flight))
            in_flight.clear()
            done.sort(key=lambda part: part.number)
            await self._complete(key, upload_id, done)
            return StoredObject(key=key, size=size, sha256=sha256)
        except BaseException:
            for task in in_flight:
                task.cancel()
            if in_flight:
                await asyncio.gather(*in_flight, return_exceptions=True)
            if upload_id is not None:
                await asyncio.shield(self.abort_multipart(key, upload_id))
            raise

    async def read(
        self, key: str, *, start: int = 0, end: int | None = None
    ) -> AsyncIterator[bytes]:
        byte_range = f"bytes={start}-{'' if end is None else end}"
        try:
            answer = await self._call(
                self._s3.get_object, Bucket=self._bucket, Key=key, Range=byte_range
            )
        except ClientError as error:
            if _is_missing(error):
                raise ObjectNotFound(f"No object {key!r}.") from None
            raise
        body = answer["Body"]
        loop = asyncio.get_running_loop()
        try:
            while True:
                try:
                    chunk = await loop.run_in_executor(self._pool, body.read, READ_CHUNK)
                except (BotoConnectionError, HTTPClientError, IncompleteReadError) as error:
                    raise StorageUnavailable("The object storage stopped answering.") from error
                if not chunk:
                    break
                yield chunk
        finally:
            body.close()

    async def _head(self, key: str) -> dict[str, Any] | None:
        try:
            head = await self._call(self._s3.head_object, Bucket=self._bucket, Key=key)
        except ClientError as error:
            if _is_missing(error):
                return None
            raise
        return dict(head)

    async def size(self, key: str) -> int | None:
        head = await self._head(key)
        return None if head is None else int(head["ContentLength"])

    async def stat(self, key: str) -> ObjectInfo | None:
        head = await self._head(key)
        if head is None:
            return None
        modified: datetime = head["LastModified"]
        return ObjectInfo(
            key=key,
            size=int(head["ContentLength"]),
            modified_at=modified.astimezone(UTC),
            sha256=head.get("Metadata", {}).get("sha256"),
            content_type=head.get("ContentType"),
        )

    async def copy(self, source: str, target: str) -> None:
        head = await self._head(source)
        if head is None:
            raise ObjectNotFound(f"No object {source!r}.")
        if int(head["ContentLength"]) <= COPY_OBJECT_LIMIT:
            await self._call(
                self._s3.copy_object,
                Bucket=self._bucket,
                Key=target,
                CopySource={"Bucket": self._bucket, "Key": source},
            )
            return
        extra: dict[str, Any] = {"Metadata": head.get("Metadata", {})}
        if head.get("ContentType"):
            extra["ContentType"] = head["ContentType"]
        await self._call(
            self._s3.copy,
            CopySource={"Bucket": self._bucket, "Key": source},
            Bucket=self._bucket,
            Key=target,
            ExtraArgs=extra,
        )

    async def delete(self, key: str) -> None:
        await self._call(self._s3.delete_object, Bucket=self._bucket, Key=key)

    # --- multipart ------------------------------------------------------------------------

    async def create_multipart(self, key: str, *, content_type: str | None = None) -> str:
        extra = {"ContentType": content_type} if content_type else {}
        created = await self._call(
            self._s3.create_multipart_upload, Bucket=self._bucket, Key=key, **extra
        )
        return created["UploadId"]

    async def _send_part(self, key: str, upload_id: str, number: int, body: bytes) -> UploadedPart:
        try:
            answer = await self._call(
                self._s3.upload_part,
                Bucket=self._bucket,
                Key=key,
                UploadId=upload_id,
                PartNumber=number,
                Body=body,
            )
        except ClientError as error:
            if _code(error) == "NoSuchUpload":
                raise ObjectNotFound(f"No multipart upload {upload_id!r}.") from None
            raise
        return UploadedPart(number=number, etag=answer["ETag"], size=len(body))

    async def upload_part(
        self,
        key: str,
        upload_id: str,
        number: int,
        chunks: AsyncIterable[bytes],
        *,
        max_size: int | None = None,
        offset: int | None = None,  # S3 places parts itself: the hint is not needed
    ) -> UploadedPart:
        if not 1 <= number <= MAX_PART_NUMBER:
            raise ValueError(f"part number {number} is outside 1..{MAX_PART_NUMBER}")
        # UploadPart needs the length up front, so the part is gathered in memory: parts are
        # bounded by the caller (tus chunks, ``max_size``), not by the object's size.
        pieces: list[bytes] = []
        size = 0
        async for chunk in chunks:
            pieces.append(chunk)
            size += len(chunk)
            if max_size is not None and size > max_size:
                raise ObjectTooLarge(f"The part is larger than {max_size} bytes.")
        # One piece (a caller's whole buffer) goes up as it is; several are joined once.
        body = pieces[0] if len(pieces) == 1 else b"".join(pieces)
        return await self._send_part(key, upload_id, number, body)

    async def list_parts(self, key: str, upload_id: str) -> list[UploadedPart]:
        parts: list[UploadedPart] = []
        marker = 0
        while True:
            try:
                page = await self._call(
                    self._s3.list_parts,
                    Bucket=self._bucket,
                    Key=key,
                    UploadId=upload_id,
                    PartNumberMarker=marker,
                )
            except ClientError as error:
                if _code(error) == "NoSuchUpload":
                    raise ObjectNotFound(f"No multipart upload {upload_id!r}.") from None
                raise
            parts.extend(
                UploadedPart(number=p["PartNumber"], etag=p["ETag"], size=p["Size"])
                for p in page.get("Parts", [])
            )
            if not page.get("IsTruncated"):
                return sorted(parts, key=lambda part: part.number)
            marker = int(page["NextPartNumberMarker"])

    async def _complete(self, key: str, upload_id: str, parts: Sequence[UploadedPart]) -> None:
        try:
            await self._call(
                self._s3.complete_multipart_upload,
                Bucket=self._bucket,
                Key=key,
                UploadId=upload_id,
                MultipartUpload={
                    "Parts": [{"ETag": p.etag, "PartNumber": p.number} for p in parts]
                },
            )
        except ClientError as error:
            code = _code(error)
            if code == "NoSuchUpload":
                raise ObjectNotFound(f"No multipart upload {upload_id!r}.") from None
            if code in {"InvalidPart", "InvalidPartOrder", "EntityTooSmall", "MalformedXML"}:
                raise InvalidMultipart(f"The parts cannot be joined ({code}).") from None
            raise

    async def complete_multipart(
        self, key: str, upload_id: str, parts: Sequence[UploadedPart]
    ) -> StoredObject:
        # S3 checks the same rules, but servers differ in how strictly; check them here too.
        stored = {part.number: part for part in await self.list_parts(key, upload_id)}
        check_completion(parts, stored, self.min_part_size)
        await self._complete(key, upload_id, parts)
        return StoredObject(key=key, size=sum(stored[p.number].size for p in parts))

    async def abort_multipart(self, key: str, upload_id: str) -> None:
        try:
            await self._call(
                self._s3.abort_multipart_upload,
                Bucket=self._bucket,
                Key=key,
                UploadId=upload_id,
            )
        except ClientError as error:
            if _code(error) not in {"NoSuchUpload", "404"}:
                raise

    async def list_multipart_uploads(
        self, *, started_before: datetime | None = None
    ) -> list[PendingMultipart]:
        found: list[PendingMultipart] = []
        kwargs: dict[str, Any] = {}
        while True:
            page = await self._call(self._s3.list_multipart_uploads, Bucket=self._bucket, **kwargs)
            for upload in page.get("Uploads", []):
                started = upload["Initiated"].astimezone(UTC)
                if started_before is None or started < started_before:
                    found.append(PendingMultipart(upload["Key"], upload["UploadId"], started))
            if not page.get("IsTruncated"):
                return sorted(found, key=lambda upload: upload.started_at)
            kwargs = {
                "KeyMarker": page["NextKeyMarker"],
                "UploadIdMarker": page["NextUploadIdMarker"],
            }

    async def list_objects(self, prefix: str) -> AsyncIterator[ListedObject]:
        pages = iter(
            self._s3.get_paginator("list_objects_v2").paginate(
                Bucket=self._bucket, Prefix=prefix, PaginationConfig={"PageSize": LIST_PAGE}
            )
        )
        while True:
            # one page is one request, sent from the adapter's thread pool
            page = await self._call(functools.partial(next, pages, None))
            if page is None:
                return
            for item in page.get("Contents", []):
                yield ListedObject(
                    key=item["Key"],
                    size=int(item["Size"]),
                    modified_at=item["LastModified"].astimezone(UTC),
                )

    async def ping(self) -> None:
        await asyncio.to_thread(self._s3.head_bucket, Bucket=self._bucket)


class S3StorageProbe(StorageProbe):
    def __init__(self, storage: S3ObjectStorage) -> None:
        self._storage = storage

    async def check(self) -> None:
        await self._storage.ping()
