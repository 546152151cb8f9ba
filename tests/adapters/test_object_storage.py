"""One contract, every ObjectStorage adapter: local files and S3 (moto's server on loopback)."""

from __future__ import annotations

import os
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from orbsurv.adapters.storage.local import LocalObjectStorage, LocalStorageProbe
from orbsurv.adapters.storage.s3 import S3ObjectStorage, S3StorageProbe, make_s3_client
from orbsurv.application.errors import ObjectNotFound, ObjectTooLarge
from orbsurv.application.ports import ObjectStorage
from tests.conftest import S3Server


def s3_client(server: S3Server):  # type: ignore[no-untyped-def]
    return make_s3_client(
        endpoint_url=server.endpoint_url,
        region=server.region,
        access_key_id=server.access_key_id,
        secret_access_key=server.secret_access_key,
    )


@pytest.fixture(params=["local", "s3"])
def storage(request: pytest.FixtureRequest, tmp_path: Path) -> ObjectStorage:
    if request.param == "local":
        return LocalObjectStorage(tmp_path / "objects")
    server: S3Server = request.getfixturevalue("s3_server")
    return S3ObjectStorage(s3_client(server), server.bucket)


async def chunks(*parts: bytes) -> AsyncIterator[bytes]:
    for part in parts:
        yield part


async def read_all(storage: ObjectStorage, key: str, **kwargs: int) -> bytes:
    return b"".join([chunk async for chunk in storage.read(key, **kwargs)])


def unique(name: str) -> str:
    return f"{os.urandom(6).hex()}/{name}"


async def test_round_trip(storage: ObjectStorage) -> None:
    key = unique("hello.bin")
    stored = await storage.put(key, chunks(b"hello ", b"world"))
    assert stored.size == 11
    assert await storage.size(key) == 11
    assert await read_all(storage, key) == b"hello world"


async def test_ranges_are_inclusive(storage: ObjectStorage) -> None:
    key = unique("range.bin")
    await storage.put(key, chunks(bytes(range(100))))
    assert await read_all(storage, key, start=10, end=19) == bytes(range(10, 20))
    assert await read_all(storage, key, start=95) == bytes(range(95, 100))


async def test_missing_objects(storage: ObjectStorage) -> None:
    key = unique("missing")
    assert await storage.size(key) is None
    with pytest.raises(ObjectNotFound):
        await read_all(storage, key)
    await storage.delete(key)  # deleting nothing is fine


async def test_delete(storage: ObjectStorage) -> None:
    key = unique("gone.bin")
    await storage.put(key, chunks(b"x"))
    await storage.delete(key)
    assert await storage.size(key) is None


async def test_too_large_keeps_nothing(storage: ObjectStorage) -> None:
    key = unique("big.bin")
    with pytest.raises(ObjectTooLarge):
        await storage.put(key, chunks(b"a" * 600, b"b" * 600), max_size=1000)
    assert await storage.size(key) is None


async def test_large_objects_stream_in_parts(storage: ObjectStorage) -> None:
    key = unique("large.bin")
    part = os.urandom(1024 * 1024)
    stored = await storage.put(key, chunks(*([part] * 9)))  # past one 8 MiB S3 part
    assert stored.size == 9 * len(part)
    assert await storage.size(key) == stored.size
    tail = await read_all(storage, key, start=stored.size - 10)
    assert tail == part[-10:]


async def test_overwrite_replaces(storage: ObjectStorage) -> None:
    key = unique("twice.bin")
    await storage.put(key, chunks(b"first"))
    await storage.put(key, chunks(b"second!"))
    assert await read_all(storage, key) == b"second!"


def test_local_keys_cannot_escape_the_root(tmp_path: Path) -> None:
    storage = LocalObjectStorage(tmp_path / "objects")
    with pytest.raises(ValueError, match="escapes"):
        storage._path("../outside")


async def test_probes(tmp_path: Path, s3_server: S3Server) -> None:
    await LocalStorageProbe(tmp_path / "objects").check()
    blocked = tmp_path / "file"
    blocked.write_text("not a directory")
    with pytest.raises(OSError, match="exists"):
        await LocalStorageProbe(blocked).check()
    await S3StorageProbe(S3ObjectStorage(s3_client(s3_server), s3_server.bucket)).check()
    with pytest.raises(Exception, match=r"404|Not Found"):
        await S3StorageProbe(S3ObjectStorage(s3_client(s3_server), "no-such-bucket")).check()
