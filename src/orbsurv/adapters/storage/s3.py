"""Object storage on S3 or any S3-compatible server, through boto3 (run in threads)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterable, AsyncIterator
from typing import TYPE_CHECKING, Any

import boto3
from botocore.config import Config
from botocore.exceptions import ClientError

from orbsurv.adapters.storage.local import StorageProbe
from orbsurv.application.errors import ObjectNotFound, ObjectTooLarge
from orbsurv.application.ports import StoredObject

if TYPE_CHECKING:
    from mypy_boto3_s3 import S3Client

PART_SIZE = 8 * 1024 * 1024  # S3 needs parts of at least 5 MiB, except the last
READ_CHUNK = 256 * 1024


def make_s3_client(
    *,
    endpoint_url: str | None,
    region: str | None,
    access_key_id: str | None,
    secret_access_key: str | None,
) -> S3Client:
    return boto3.client(
        "s3",
        endpoint_url=endpoint_url,
        region_name=region,
        aws_access_key_id=access_key_id,
        aws_secret_access_key=secret_access_key,
        config=Config(
            retries={"max_attempts": 3, "mode": "standard"},
            connect_timeout=5,
            read_timeout=30,
            max_pool_connections=32,
        ),
    )


def _is_missing(error: ClientError) -> bool:
    return error.response.get("Error", {}).get("Code") in {"404", "NoSuchKey", "NotFound"}


class S3ObjectStorage:
    def __init__(self, client: S3Client, bucket: str) -> None:
        self._s3 = client
        self._bucket = bucket

    async def put(
        self, key: str, chunks: AsyncIterable[bytes], *, max_size: int | None = None
    ) -> StoredObject:
        buffer = bytearray()
        size = 0
        upload_id: str | None = None
        parts: list[dict[str, Any]] = []

        async def flush() -> None:
            nonlocal upload_id
            if upload_id is None:
                created = await asyncio.to_thread(
                    self._s3.create_multipart_upload, Bucket=self._bucket, Key=key
                )
                upload_id = created["UploadId"]
            number = len(parts) + 1
            answer = await asyncio.to_thread(
                self._s3.upload_part,
                Bucket=self._bucket,
                Key=key,
                UploadId=upload_id,
                PartNumber=number,
                Body=bytes(buffer),
            )
            parts.append({"ETag": answer["ETag"], "PartNumber": number})
            buffer.clear()

        try:
            async for chunk in chunks:
                size += len(chunk)
                if max_size is not None and size > max_size:
                    raise ObjectTooLarge(f"The object is larger than {max_size} bytes.")
                buffer.extend(chunk)
                if len(buffer) >= PART_SIZE:
                    await flush()
            if upload_id is None:
                await asyncio.to_thread(
                    self._s3.put_object, Bucket=self._bucket, Key=key, Body=bytes(buffer)
                )
            else:
                if buffer:
                    await flush()
                await asyncio.to_thread(
                    self._s3.complete_multipart_upload,
                    Bucket=self._bucket,
                    Key=key,
                    UploadId=upload_id,
                    MultipartUpload={"Parts": parts},  # type: ignore[typeddict-item]
                )
        except BaseException:
            if upload_id is not None:
                await asyncio.to_thread(
                    self._s3.abort_multipart_upload,
                    Bucket=self._bucket,
                    Key=key,
                    UploadId=upload_id,
                )
            raise
        return StoredObject(key=key, size=size)

    async def read(
        self, key: str, *, start: int = 0, end: int | None = None
    ) -> AsyncIterator[bytes]:
        byte_range = f"bytes={start}-{'' if end is None else end}"
        try:
            answer = await asyncio.to_thread(
                self._s3.get_object, Bucket=self._bucket, Key=key, Range=byte_range
            )
        except ClientError as error:
            if _is_missing(error):
                raise ObjectNotFound(f"No object {key!r}.") from None
            raise
        body = answer["Body"]
        try:
            while chunk := await asyncio.to_thread(body.read, READ_CHUNK):
                yield chunk
        finally:
            body.close()

    async def size(self, key: str) -> int | None:
        try:
            head = await asyncio.to_thread(self._s3.head_object, Bucket=self._bucket, Key=key)
        except ClientError as error:
            if _is_missing(error):
                return None
            raise
        return head["ContentLength"]

    async def delete(self, key: str) -> None:
        await asyncio.to_thread(self._s3.delete_object, Bucket=self._bucket, Key=key)

    async def ping(self) -> None:
        await asyncio.to_thread(self._s3.head_bucket, Bucket=self._bucket)


class S3StorageProbe(StorageProbe):
    def __init__(self, storage: S3ObjectStorage) -> None:
        self._storage = storage

    async def check(self) -> None:
        await self._storage.ping()
