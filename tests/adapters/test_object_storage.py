"""One contract, every ObjectStorage adapter: local files and S3 (moto's server on loopback)."""

from __future__ import annotations

import asyncio
import hashlib
import json
import os
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from orbsurv.adapters.storage.local import LocalObjectStorage, LocalStorageProbe
from orbsurv.adapters.storage.s3 import S3ObjectStorage, S3StorageProbe, make_s3_client
from orbsurv.application.errors import (
    InvalidMultipart,
    ObjectNotFound,
    ObjectTooLarge,
    StorageUnavailable,
)
from orbsurv.application.ports import ObjectStorage, UploadedPart
from tests.conftest import S3Server
from tests.services import free_port


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
    assert stored.sha256 == hashlib.sha256(b"hello world").hexdigest()
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
    assert await storage.stat(key) is None  # what downloads and deduplication check


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


MiB = 1024 * 1024


async def test_stat_reports_size_digest_time_and_type(storage: ObjectStorage) -> None:
    key = unique("stat.txt")
    before = datetime.now(UTC) - timedelta(seconds=5)
    await storage.put(key, chunks(b"abc"), content_type="text/plain")
    info = await storage.stat(key)
    assert info is not None
    assert (info.key, info.size) == (key, 3)
    assert info.sha256 == hashlib.sha256(b"abc").hexdigest()
    assert info.content_type == "text/plain"
    assert info.modified_at.tzinfo is not None
    assert before <= info.modified_at <= datetime.now(UTC) + timedelta(seconds=5)
    assert await storage.stat(unique("nothing")) is None


async def test_a_failing_stream_keeps_nothing(storage: ObjectStorage) -> None:
    key = unique("broken.bin")
    await storage.put(key, chunks(b"earlier"))

    async def broken() -> AsyncIterator[bytes]:
        yield os.urandom(9 * MiB)  # past one S3 part, so a multipart upload was started
        raise ConnectionResetError("client went away")

    with pytest.raises(ConnectionResetError):
        await storage.put(key, broken())
    assert await read_all(storage, key) == b"earlier"
    assert [u for u in await storage.list_multipart_uploads() if u.key == key] == []


async def test_too_large_past_one_part_keeps_nothing(storage: ObjectStorage) -> None:
    key = unique("huge.bin")
    part = os.urandom(MiB)
    with pytest.raises(ObjectTooLarge):
        await storage.put(key, chunks(*([part] * 12)), max_size=10 * MiB)
    assert await storage.size(key) is None
    assert [u for u in await storage.list_multipart_uploads() if u.key == key] == []


async def test_copy(storage: ObjectStorage) -> None:
    source, target = unique("a.bin"), unique("b.bin")
    await storage.put(source, chunks(b"payload"), content_type="application/zip")
    await storage.copy(source, target)
    assert await read_all(storage, target) == b"payload"
    info = await storage.stat(target)
    assert info is not None
    assert info.content_type == "application/zip"
    assert await read_all(storage, source) == b"payload"
    with pytest.raises(ObjectNotFound):
        await storage.copy(unique("missing"), unique("c.bin"))


async def test_multipart_round_trip(storage: ObjectStorage) -> None:
    key = unique("multi.bin")
    first, second = os.urandom(storage.min_part_size), os.urandom(1000)
    upload_id = await storage.create_multipart(key, content_type="application/gzip")
    assert await storage.size(key) is None
    assert await storage.list_parts(key, upload_id) == []
    p2 = await storage.upload_part(key, upload_id, 2, chunks(second))
    p1 = await storage.upload_part(key, upload_id, 1, chunks(first[:MiB], first[MiB:]))
    assert (p1.number, p1.size, p2.number, p2.size) == (1, len(first), 2, 1000)
    assert await storage.list_parts(key, upload_id) == [p1, p2]
    pending = await storage.list_multipart_uploads()
    assert any(u.key == key and u.upload_id == upload_id for u in pending)

    stored = await storage.complete_multipart(key, upload_id, [p1, p2])
    assert stored.size == len(first) + len(second)
    assert await read_all(storage, key) == first + second
    info = await storage.stat(key)
    assert info is not None
    assert info.size == stored.size
    assert info.content_type == "application/gzip"
    assert not any(u.upload_id == upload_id for u in await storage.list_multipart_uploads())
    with pytest.raises(ObjectNotFound):
        await storage.list_parts(key, upload_id)
    await storage.abort_multipart(key, upload_id)  # idempotent after completion


async def test_a_part_can_be_replaced(storage: ObjectStorage) -> None:
    key = unique("replace.bin")
    upload_id = await storage.create_multipart(key)
    await storage.upload_part(key, upload_id, 1, chunks(b"old"))
    newer = await storage.upload_part(key, upload_id, 1, chunks(b"newer"))
    assert await storage.list_parts(key, upload_id) == [newer]
    await storage.complete_multipart(key, upload_id, [newer])
    assert await read_all(storage, key) == b"newer"


async def test_multipart_rules(storage: ObjectStorage) -> None:
    key = unique("rules.bin")
    upload_id = await storage.create_multipart(key)
    small = await storage.upload_part(key, upload_id, 1, chunks(b"tiny"))
    last = await storage.upload_part(key, upload_id, 2, chunks(b"end"))
    with pytest.raises(InvalidMultipart):  # all but the last part need min_part_size
        await storage.complete_multipart(key, upload_id, [small, last])
    with pytest.raises(InvalidMultipart):  # out of order
        await storage.complete_multipart(key, upload_id, [last, small])
    with pytest.raises(InvalidMultipart):  # unknown ETag
        await storage.complete_multipart(key, upload_id, [UploadedPart(1, "nope", 4)])
    with pytest.raises(InvalidMultipart):
        await storage.complete_multipart(key, upload_id, [])
    with pytest.raises(ValueError, match="outside"):
        await storage.upload_part(key, upload_id, 0, chunks(b"x"))
    with pytest.raises(ValueError, match="outside"):
        await storage.upload_part(key, upload_id, 10_001, chunks(b"x"))
    with pytest.raises(ObjectTooLarge):
        await storage.upload_part(key, upload_id, 3, chunks(b"x" * 20), max_size=10)
    assert [p.number for p in await storage.list_parts(key, upload_id)] == [1, 2]
    assert await storage.size(key) is None
    await storage.abort_multipart(key, upload_id)


async def test_abort_is_idempotent_and_drops_parts(storage: ObjectStorage) -> None:
    key = unique("abort.bin")
    upload_id = await storage.create_multipart(key)
    await storage.upload_part(key, upload_id, 1, chunks(b"data"))
    await storage.abort_multipart(key, upload_id)
    await storage.abort_multipart(key, upload_id)
    with pytest.raises(ObjectNotFound):
        await storage.list_parts(key, upload_id)
    # S3 answers NoSuchUpload (ObjectNotFound); moto's server fails with a 500 instead.
    with pytest.raises((ObjectNotFound, StorageUnavailable)):
        await storage.upload_part(key, upload_id, 2, chunks(b"more"))
    assert await storage.size(key) is None
    assert not any(u.upload_id == upload_id for u in await storage.list_multipart_uploads())


async def test_stale_uploads_are_listed_by_start_time(storage: ObjectStorage) -> None:
    key = unique("stale.bin")
    upload_id = await storage.create_multipart(key)
    try:
        later = await storage.list_multipart_uploads(
            started_before=datetime.now(UTC) + timedelta(minutes=5)
        )
        found = [u for u in later if u.upload_id == upload_id]
        assert len(found) == 1
        assert found[0].key == key
        assert found[0].started_at.tzinfo
        # moto reports a fixed initiation time, so the filter is checked against the reported one
        started = found[0].started_at
        assert started <= datetime.now(UTC) + timedelta(seconds=5)
        at_start = await storage.list_multipart_uploads(started_before=started)
        assert not any(u.upload_id == upload_id for u in at_start)
        just_after = await storage.list_multipart_uploads(
            started_before=started + timedelta(seconds=1)
        )
        assert any(u.upload_id == upload_id for u in just_after)
    finally:
        await storage.abort_multipart(key, upload_id)


async def test_parts_upload_concurrently(storage: ObjectStorage) -> None:
    key = unique("parallel.bin")
    upload_id = await storage.create_multipart(key)
    bodies = [os.urandom(storage.min_part_size) for _ in range(3)] + [b"tail"]
    parts = await asyncio.gather(
        *(
            storage.upload_part(key, upload_id, n, chunks(body))
            for n, body in enumerate(bodies, start=1)
        )
    )
    await storage.complete_multipart(key, upload_id, parts)
    stored = await read_all(storage, key)
    assert hashlib.sha256(stored).digest() == hashlib.sha256(b"".join(bodies)).digest()


def test_local_keys_cannot_name_hidden_paths(tmp_path: Path) -> None:
    storage = LocalObjectStorage(tmp_path / "objects")
    for key in (".multipart/x", "a/.meta/b", "/etc/passwd", "", "a/../../b"):
        with pytest.raises(ValueError, match=r"escapes|hidden"):
            storage._path(key)


async def test_local_crash_leftovers_are_ignored(tmp_path: Path) -> None:
    """A metadata file that does not describe the data file (a crash between the two renames)
    is not trusted; a leftover temporary file is not an object."""
    storage = LocalObjectStorage(tmp_path / "objects")
    await storage.put("k/obj.bin", chunks(b"one"))
    path = storage.path_of("k/obj.bin")
    replacement = path.with_name("other")
    replacement.write_bytes(b"two")
    os.replace(replacement, path)  # new inode, old metadata
    info = await storage.stat("k/obj.bin")
    assert info is not None
    assert info.size == 3
    assert info.sha256 is None


async def test_s3_unreachable_is_storage_unavailable() -> None:
    client = make_s3_client(
        endpoint_url=f"http://127.0.0.1:{free_port()}",
        region="us-east-1",
        access_key_id="testing",
        secret_access_key="testing",
        connect_timeout=1,
        max_attempts=1,
    )
    storage = S3ObjectStorage(client, "bucket")
    with pytest.raises(StorageUnavailable) as raised:
        await storage.put(unique("x"), chunks(b"data"))
    assert raised.value.code == "storage_unavailable"
    with pytest.raises(StorageUnavailable):
        await storage.stat(unique("x"))
    with pytest.raises(StorageUnavailable):
        await storage.size(unique("x"))
    with pytest.raises(StorageUnavailable):
        await read_all(storage, unique("x"))
    storage.close()


async def test_list_objects_walks_a_prefix_page_by_page(
    storage: ObjectStorage, monkeypatch: pytest.MonkeyPatch
) -> None:
    from orbsurv.adapters.storage import local, s3

    monkeypatch.setattr(local, "LIST_PAGE", 2)  # several pages out of a few objects
    monkeypatch.setattr(s3, "LIST_PAGE", 2)
    base = os.urandom(6).hex()
    before = datetime.now(UTC) - timedelta(seconds=5)
    expected = {
        f"{base}/up/a.bin": 1,
        f"{base}/up/b/c.bin": 22,
        f"{base}/up/b/d/e.bin": 333,
        f"{base}/up-sibling.bin": 4,  # a string prefix, not a folder
        f"{base}/upper/f.bin": 5,
    }
    for key, size in expected.items():
        await storage.put(key, chunks(b"x" * size))
    await storage.put(f"{base}/other/g.bin", chunks(b"g"))
    pending_key = f"{base}/up/pending.bin"
    upload_id = await storage.create_multipart(pending_key)
    await storage.upload_part(pending_key, upload_id, 1, chunks(b"part"))
    try:
        listed = [found async for found in storage.list_objects(f"{base}/up")]
        assert {found.key: found.size for found in listed} == expected
        assert len(listed) == len(expected)  # each once
        after = datetime.now(UTC) + timedelta(seconds=5)
        assert all(before <= found.modified_at <= after for found in listed)
        in_folder = {found.key async for found in storage.list_objects(f"{base}/up/b/")}
        assert in_folder == {f"{base}/up/b/c.bin", f"{base}/up/b/d/e.bin"}
        assert [found async for found in storage.list_objects(f"{base}/none/")] == []

        deleted = []  # deleting while walking is allowed
        async for found in storage.list_objects(f"{base}/up"):
            await storage.delete(found.key)
            deleted.append(found.key)
        assert set(deleted) == set(expected)
        assert [found async for found in storage.list_objects(f"{base}/up")] == []
    finally:
        await storage.abort_multipart(pending_key, upload_id)


async def test_local_listing_skips_hidden_files(tmp_path: Path) -> None:
    storage = LocalObjectStorage(tmp_path / "objects")
    await storage.put("k/obj.bin", chunks(b"one"))
    (storage.root / "k" / ".obj.bin.0123.part").write_bytes(b"half")  # a crash leftover
    upload_id = await storage.create_multipart("k/multi.bin")
    await storage.upload_part("k/multi.bin", upload_id, 1, chunks(b"p"))
    assert [found.key async for found in storage.list_objects("")] == ["k/obj.bin"]
    assert [found.key async for found in storage.list_objects("k/")] == ["k/obj.bin"]
    assert [found.key async for found in storage.list_objects(".multipart/")] == []


async def test_parts_with_offsets_complete_to_exactly_the_listed_parts(
    storage: ObjectStorage,
) -> None:
    """Offsets are hints (local files write such parts in place): a repeated region and a
    late writer's part that is not listed never change the completed object."""
    key = unique("placed.bin")
    size = storage.min_part_size
    first, second, third = (os.urandom(size) for _ in range(3))
    upload_id = await storage.create_multipart(key)
    p1 = await storage.upload_part(key, upload_id, 1, chunks(first), offset=0)
    await storage.upload_part(key, upload_id, 2, chunks(os.urandom(size)), offset=size)  # lost
    p3 = await storage.upload_part(key, upload_id, 3, chunks(second), offset=size)  # retried
    late = os.urandom(size)
    await storage.upload_part(key, upload_id, 4, chunks(late), offset=size)  # a late writer
    p5 = await storage.upload_part(key, upload_id, 5, chunks(third[:100]), offset=2 * size)
    assert [p.size for p in (p1, p3, p5)] == [size, size, 100]
    stored = await storage.complete_multipart(key, upload_id, [p1, p3, p5])
    expected = first + second + third[:100]
    assert stored.size == len(expected)
    assert stored.sha256 in {None, hashlib.sha256(expected).hexdigest()}
    assert await read_all(storage, key) == expected
    info = await storage.stat(key)
    assert info is not None
    assert info.size == len(expected)


async def test_parts_placed_in_order_complete_in_place(storage: ObjectStorage) -> None:
    key = unique("inplace.bin")
    size = storage.min_part_size
    bodies = [os.urandom(size), os.urandom(size), b"end"]
    upload_id = await storage.create_multipart(key)
    parts, at = [], 0
    for number, body in enumerate(bodies, start=1):
        parts.append(await storage.upload_part(key, upload_id, number, chunks(body), offset=at))
        at += len(body)
    stored = await storage.complete_multipart(key, upload_id, parts)
    whole = b"".join(bodies)
    assert stored.sha256 in {None, hashlib.sha256(whole).hexdigest()}
    assert await read_all(storage, key) == whole
    with pytest.raises(ObjectNotFound):
        await storage.list_parts(key, upload_id)


async def test_local_parts_in_order_become_the_object_without_a_copy(tmp_path: Path) -> None:
    storage = LocalObjectStorage(tmp_path / "objects")
    key = "k/inplace.bin"
    size = storage.min_part_size
    bodies = [os.urandom(size), b"end"]
    upload_id = await storage.create_multipart(key)
    p1 = await storage.upload_part(key, upload_id, 1, chunks(bodies[0]), offset=0)
    p2 = await storage.upload_part(key, upload_id, 2, chunks(bodies[1]), offset=size)
    data = storage.root / ".multipart" / upload_id / "data"
    inode = data.stat().st_ino
    stored = await storage.complete_multipart(key, upload_id, [p1, p2])
    assert storage.path_of(key).stat().st_ino == inode  # renamed, not rewritten
    assert stored.sha256 == hashlib.sha256(b"".join(bodies)).hexdigest()
    info = await storage.stat(key)
    assert info is not None
    assert info.sha256 == stored.sha256
    assert not (storage.root / ".multipart" / upload_id).exists()


async def test_local_a_region_is_never_written_in_place_twice(tmp_path: Path) -> None:
    """A second write at an offset already written goes to a file of its own, so a recorded
    part's bytes in the data file stay as they were."""
    storage = LocalObjectStorage(tmp_path / "objects")
    key = "k/twice.bin"
    size = storage.min_part_size
    upload_id = await storage.create_multipart(key)
    kept = os.urandom(size)
    p1 = await storage.upload_part(key, upload_id, 1, chunks(kept), offset=0)
    await storage.upload_part(key, upload_id, 2, chunks(os.urandom(size)), offset=0)
    data = storage.root / ".multipart" / upload_id / "data"
    assert data.read_bytes()[:size] == kept
    p3 = await storage.upload_part(key, upload_id, 3, chunks(b"tail"), offset=size)
    await storage.complete_multipart(key, upload_id, [p1, p3])
    assert await read_all(storage, key) == kept + b"tail"


async def test_a_part_may_arrive_as_one_bytearray(storage: ObjectStorage) -> None:
    """Callers hand a whole buffer over without copying it to bytes."""
    key = unique("bytearray.bin")
    body = bytearray(os.urandom(1000))
    upload_id = await storage.create_multipart(key)
    part = await storage.upload_part(key, upload_id, 1, chunks(body))  # type: ignore[arg-type]
    await storage.complete_multipart(key, upload_id, [part])
    assert await read_all(storage, key) == bytes(body)


async def test_local_a_failed_part_leaves_its_region_free(tmp_path: Path) -> None:
    """A part that failed while streaming has no marker and can never be listed: the next
    write at that offset still goes in place, and completion still renames."""
    storage = LocalObjectStorage(tmp_path / "objects")
    key = "k/failed.bin"
    upload_id = await storage.create_multipart(key)

    async def broken() -> AsyncIterator[bytes]:
        yield os.urandom(2 * MiB)  # written before the failure
        raise ConnectionError("the client vanished")

    with pytest.raises(ConnectionError):
        await storage.upload_part(key, upload_id, 1, broken(), offset=0)
    assert await storage.list_parts(key, upload_id) == []
    part = await storage.upload_part(key, upload_id, 2, chunks(b"whole"), offset=0)
    data = storage.root / ".multipart" / upload_id / "data"
    inode = data.stat().st_ino
    await storage.complete_multipart(key, upload_id, [part])
    assert storage.path_of(key).stat().st_ino == inode
    assert await read_all(storage, key) == b"whole"


async def test_local_markers_of_either_form_and_a_cut_ledger_line(tmp_path: Path) -> None:
    """A placed part's marker names its offset and size; the older marker (a JSON body) is
    still read. A ledger line cut short (a crash mid-append) is skipped."""
    storage = LocalObjectStorage(tmp_path / "objects")
    key = "k/markers.bin"
    size = storage.min_part_size
    bodies = [os.urandom(size), os.urandom(size), b"end"]
    upload_id = await storage.create_multipart(key)
    directory = storage.root / ".multipart" / upload_id
    p1 = await storage.upload_part(key, upload_id, 1, chunks(bodies[0]), offset=0)
    [marker] = directory.glob("00001.*.placed")
    assert marker.name == f"00001.{p1.etag}.0-{size}.placed"
    assert marker.stat().st_size == 0
    marker.rename(directory / f"00001.{p1.etag}.placed")
    (directory / f"00001.{p1.etag}.placed").write_text(json.dumps({"offset": 0, "size": size}))
    with (directory / "claims").open("a") as ledger:
        ledger.write("start 12")  # no newline, no offset: cut short
    p2 = await storage.upload_part(key, upload_id, 2, chunks(bodies[1]), offset=size)
    p3 = await storage.upload_part(key, upload_id, 3, chunks(bodies[2]), offset=2 * size)
    assert await storage.list_parts(key, upload_id) == [p1, p2, p3]
    inode = (directory / "data").stat().st_ino
    stored = await storage.complete_multipart(key, upload_id, [p1, p2, p3])
    assert storage.path_of(key).stat().st_ino == inode  # every part was placed in place
    assert stored.sha256 == hashlib.sha256(b"".join(bodies)).hexdigest()
    assert await read_all(storage, key) == b"".join(bodies)


async def test_local_running_digest_is_a_shortcut_with_a_fallback(tmp_path: Path) -> None:
    """One process that places every part in order keeps their SHA-256 as they are written;
    parts placed by two processes (two adapters on one root), or completion on a process that
    wrote none, hash the file instead. The digest is right either way."""
    root = tmp_path / "objects"
    one, two = LocalObjectStorage(root), LocalObjectStorage(root)
    size = one.min_part_size
    bodies = [os.urandom(size), os.urandom(size), os.urandom(size), b"end"]
    whole = b"".join(bodies)
    expected = hashlib.sha256(whole).hexdigest()

    async def upload(key: str, writers: list[LocalObjectStorage]) -> tuple[str, list[Any]]:
        upload_id = await one.create_multipart(key)
        parts, at = [], 0
        for number, body in enumerate(bodies, start=1):
            writer = writers[(number - 1) % len(writers)]
            parts.append(await writer.upload_part(key, upload_id, number, chunks(body), offset=at))
            at += len(body)
        return upload_id, parts

    upload_id, parts = await upload("k/same.bin", [one])
    assert one._running[upload_id].end == len(whole)  # the shortcut is there
    stored = await one.complete_multipart("k/same.bin", upload_id, parts)
    assert stored.sha256 == expected
    assert upload_id not in one._running

    upload_id, parts = await upload("k/alternating.bin", [one, two])
    stored = await one.complete_multipart("k/alternating.bin", upload_id, parts)
    assert stored.sha256 == expected
    assert await read_all(one, "k/alternating.bin") == whole

    upload_id, parts = await upload("k/elsewhere.bin", [one])
    stored = await two.complete_multipart("k/elsewhere.bin", upload_id, parts)
    assert stored.sha256 == expected

    # A part placed and then not listed (its region is written again, in a file of its own):
    # the listed parts differ from the ones the digest covers, so the file is hashed.
    upload_id = await one.create_multipart("k/replaced.bin")
    p1 = await one.upload_part("k/replaced.bin", upload_id, 1, chunks(bodies[0]), offset=0)
    await one.upload_part("k/replaced.bin", upload_id, 2, chunks(os.urandom(size)), offset=size)
    p3 = await one.upload_part("k/replaced.bin", upload_id, 3, chunks(b"end"), offset=size)
    stored = await one.complete_multipart("k/replaced.bin", upload_id, [p1, p3])
    assert stored.sha256 == hashlib.sha256(bodies[0] + b"end").hexdigest()
    assert await read_all(one, "k/replaced.bin") == bodies[0] + b"end"


async def test_local_a_placed_part_of_many_small_chunks(tmp_path: Path) -> None:
    storage = LocalObjectStorage(tmp_path / "objects")
    key = "k/small-chunks.bin"
    body = os.urandom(storage.min_part_size + 12345)
    upload_id = await storage.create_multipart(key)

    async def pieces() -> AsyncIterator[bytes]:
        for at in range(0, len(body), 1000):  # far more chunks than one pwritev takes
            yield body[at : at + 1000]

    part = await storage.upload_part(key, upload_id, 1, pieces(), offset=0)
    stored = await storage.complete_multipart(key, upload_id, [part])
    assert stored.sha256 == hashlib.sha256(body).hexdigest()
    assert await read_all(storage, key) == body
