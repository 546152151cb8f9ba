"""Object storage on the local filesystem (the embedded default).

Layout under the root: an object lives at ``<root>/<key>``; its metadata (SHA-256, content type)
at ``<root>/.meta/<key>.json``; a multipart upload under ``<root>/.multipart/<upload id>/`` with
one file per part named ``<number>.<etag>``, or for a part written in place into the upload's
shared ``data`` file an empty marker ``<number>.<etag>.<offset>-<size>.placed``. Keys may not
name anything hidden (no segment starting with a dot), so objects never collide with these
directories, and every key is resolved and checked to stay under the root.

Writes are atomic: bytes go to a temporary file in the target directory, are fsynced, and are
renamed over the target, so a reader sees the old object or the new one, never half of one, and a
crash leaves at most a hidden ``.*.part`` file. The metadata file records the inode of the data
file it describes; a metadata file that does not match (a crash between the two renames) is
ignored, so ``stat`` never reports a SHA-256 for bytes it was not computed from.
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import fcntl
import functools
import hashlib
import itertools
import json
import os
import secrets
import shutil
from collections import OrderedDict
from collections.abc import AsyncIterable, AsyncIterator, Callable, Coroutine, Generator, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import IO, Any, Concatenate, ParamSpec, TypeVar

from orbsurv.application.errors import (
    InvalidMultipart,
    ObjectNotFound,
    ObjectTooLarge,
    StorageFull,
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

READ_CHUNK = 1024 * 1024
WHOLE_READ_CHUNK = 4 * 1024 * 1024  # reads to the end (a scan, a copy): fewer thread hops
WRITE_BUFFER = 1024 * 1024  # bytes gathered before one write (and hash update) in a thread
MIN_PART_SIZE = 5 * 1024 * 1024  # as S3, so both adapters behave alike
_META = ".meta"
_MULTIPART = ".multipart"


#: errno values that mean the filesystem under the root cannot take more bytes.
DISK_FULL = frozenset({errno.ENOSPC, errno.EDQUOT})
#: errno values that mean the filesystem failed or refuses writes (not our request's fault).
DISK_FAILED = frozenset({errno.EIO, errno.EROFS})

P = ParamSpec("P")
R = TypeVar("R")


def _disk_errors(
    method: Callable[Concatenate[LocalObjectStorage, P], Coroutine[Any, Any, R]],
) -> Callable[Concatenate[LocalObjectStorage, P], Coroutine[Any, Any, R]]:
    """Translate a write's ``OSError`` into the port's errors: ENOSPC or EDQUOT raises
    ``StorageFull`` (HTTP 507), EIO or EROFS ``StorageUnavailable`` (HTTP 503). The method has
    already removed what it wrote in part (its temporary file, its claim on the data file)."""

    @functools.wraps(method)
    async def translated(self: LocalObjectStorage, /, *args: P.args, **kwargs: P.kwargs) -> R:
        try:
            return await method(self, *args, **kwargs)
        except OSError as error:
            if error.errno in DISK_FULL:
                raise StorageFull(
                    "The storage disk is full; nothing of this upload was kept."
                ) from error
            if error.errno in DISK_FAILED:
                raise StorageUnavailable(
                    "The storage disk failed a write; try again later."
                ) from error
            raise

    return translated


def _fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


class _Sink:
    """A temporary file next to ``target`` that hashes what is written and is renamed over the
    target on ``commit`` (or removed on ``discard``)."""

    def __init__(self, target: Path, max_size: int | None) -> None:
        self.target = target
        self.temp = target.with_name(f".{target.name}.{secrets.token_hex(6)}.part")
        self.max_size = max_size
        self.size = 0
        self.digest = hashlib.sha256()
        self._buffer = bytearray()
        self._handle: IO[bytes] | None = None

    def open(self) -> None:
        self.target.parent.mkdir(parents=True, exist_ok=True)
        self._handle = self.temp.open("xb")

    def _write(self, data: bytes | bytearray) -> None:
        assert self._handle is not None
        self.digest.update(data)
        self._handle.write(data)

    async def feed(self, chunk: bytes) -> None:
        self.size += len(chunk)
        if self.max_size is not None and self.size > self.max_size:
            raise ObjectTooLarge(f"The object is larger than {self.max_size} bytes.")
        if len(chunk) >= WRITE_BUFFER and not self._buffer:
            await asyncio.to_thread(self._write, chunk)
            return
        self._buffer += chunk
        if len(self._buffer) >= WRITE_BUFFER:
            data, self._buffer = self._buffer, bytearray()
            await asyncio.to_thread(self._write, data)

    def finish(self) -> int:
        """Flush, fsync and close; return the inode of the written file."""
        assert self._handle is not None
        if self._buffer:
            self._write(self._buffer)
            self._buffer = bytearray()
        self._handle.flush()
        os.fsync(self._handle.fileno())
        inode = os.fstat(self._handle.fileno()).st_ino
        self._handle.close()
        return inode

    def commit(self) -> None:
        os.replace(self.temp, self.target)
        _fsync_dir(self.target.parent)

    def discard(self) -> None:
        if self._handle is not None:
            self._handle.close()
        self.temp.unlink(missing_ok=True)


@dataclass(slots=True)
class _RunningDigest:
    """The SHA-256 of the first ``end`` bytes of an upload's data file, as this process wrote
    them in place: the parts (number, ETag) it covers, in order from offset 0."""

    parts: list[tuple[int, str]]
    end: int
    digest: Any


RUNNING_DIGESTS = 256  # uploads whose running digest one process keeps (least recent dropped)


class LocalObjectStorage:
    """``ObjectStorage`` on a directory. Blocking file calls run in threads.

    A shortcut kept in memory, never needed for correctness: while this process places an
    upload's parts in order from offset 0, it keeps their running SHA-256, so completion need
    not read the data file to hash it when the listed parts are exactly those. Whenever that
    does not hold (another process or a restart wrote some, a part was written elsewhere or
    twice, the entry was dropped), completion hashes the file as it would without it."""

    min_part_size = MIN_PART_SIZE

    def __init__(self, root: str | Path) -> None:
        self._root = Path(root).resolve()
        self._running: OrderedDict[str, _RunningDigest] = OrderedDict()

    def _remember(self, upload_id: str, running: _RunningDigest) -> None:
        self._running[upload_id] = running
        self._running.move_to_end(upload_id)
        while len(self._running) > RUNNING_DIGESTS:
            self._running.popitem(last=False)

    @property
    def root(self) -> Path:
        return self._root

    def _path(self, key: str) -> Path:
        path = (self._root / key).resolve()
        if not key or self._root not in path.parents:
            raise ValueError(f"object key escapes the storage root: {key!r}")
        if any(part.startswith(".") for part in path.relative_to(self._root).parts):
            raise ValueError(f"object key names a hidden path: {key!r}")
        return path

    def path_of(self, key: str) -> Path:
        """The file that holds ``key`` (for zero-copy sending); it may not exist."""
        return self._path(key)

    def _meta_path(self, key: str) -> Path:
        relative = self._path(key).relative_to(self._root)
        return self._root / _META / relative.parent / f"{relative.name}.json"

    def _upload_dir(self, upload_id: str) -> Path:
        if not upload_id.isalnum():
            raise ObjectNotFound(f"No multipart upload {upload_id!r}.")
        return self._root / _MULTIPART / upload_id

    # --- metadata -------------------------------------------------------------------------

    def _write_meta(self, key: str, inode: int, sha256: str, content_type: str | None) -> None:
        meta = self._meta_path(key)
        meta.parent.mkdir(parents=True, exist_ok=True)
        temp = meta.with_name(f".{meta.name}.{secrets.token_hex(6)}.part")
        body = {"inode": inode, "sha256": sha256, "content_type": content_type}
        with temp.open("x") as handle:
            json.dump(body, handle)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(temp, meta)

    def _read_meta(self, key: str, inode: int) -> dict[str, Any]:
        try:
            body: dict[str, Any] = json.loads(self._meta_path(key).read_text())
        except (FileNotFoundError, ValueError):
            return {}
        return body if body.get("inode") == inode else {}

    # --- whole objects --------------------------------------------------------------------

    @_disk_errors
    async def put(
        self,
        key: str,
        chunks: AsyncIterable[bytes],
        *,
        max_size: int | None = None,
        content_type: str | None = None,
    ) -> StoredObject:
        sink = _Sink(self._path(key), max_size)
        await asyncio.to_thread(sink.open)
        try:
            async for chunk in chunks:
                await sink.feed(chunk)
            inode = await asyncio.to_thread(sink.finish)
            sha256 = sink.digest.hexdigest()
            await asyncio.to_thread(self._write_meta, key, inode, sha256, content_type)
            await asyncio.to_thread(sink.commit)
        except BaseException:
            await asyncio.shield(asyncio.to_thread(sink.discard))
            raise
        return StoredObject(key=key, size=sink.size, sha256=sha256)

    async def read(
        self, key: str, *, start: int = 0, end: int | None = None
    ) -> AsyncIterator[bytes]:
        path = self._path(key)
        try:
            handle = await asyncio.to_thread(path.open, "rb")
        except FileNotFoundError:
            raise ObjectNotFound(f"No object {key!r}.") from None
        try:
            await asyncio.to_thread(handle.seek, start)
            remaining = None if end is None else end - start + 1
            while remaining is None or remaining > 0:
                size = WHOLE_READ_CHUNK if remaining is None else min(READ_CHUNK, remaining)
                chunk = await asyncio.to_thread(handle.read, size)
                if not chunk:
                    break
                if remaining is not None:
                    remaining -= len(chunk)
                yield chunk
        finally:
            handle.close()

    async def size(self, key: str) -> int | None:
        try:
            return (await asyncio.to_thread(self._path(key).stat)).st_size
        except FileNotFoundError:
            return None

    async def stat(self, key: str) -> ObjectInfo | None:
        def run() -> ObjectInfo | None:
            try:
                st = self._path(key).stat()
            except FileNotFoundError:
                return None
            meta = self._read_meta(key, st.st_ino)
            return ObjectInfo(
                key=key,
                size=st.st_size,
                modified_at=datetime.fromtimestamp(st.st_mtime, UTC),
                sha256=meta.get("sha256"),
                content_type=meta.get("content_type"),
            )

        return await asyncio.to_thread(run)

    async def copy(self, source: str, target: str) -> None:
        info = await self.stat(source)
        if info is None:
            raise ObjectNotFound(f"No object {source!r}.")
        await self.put(target, self.read(source), content_type=info.content_type)

    async def delete(self, key: str) -> None:
        def run() -> None:
            self._path(key).unlink(missing_ok=True)
            self._meta_path(key).unlink(missing_ok=True)

        await asyncio.to_thread(run)

    # --- multipart ------------------------------------------------------------------------

    @_disk_errors
    async def create_multipart(self, key: str, *, content_type: str | None = None) -> str:
        self._path(key)  # validate now, not at completion
        upload_id = secrets.token_hex(16)

        def run() -> None:
            directory = self._upload_dir(upload_id)
            directory.mkdir(parents=True)
            body = {
                "key": key,
                "content_type": content_type,
                "started_at": datetime.now(UTC).isoformat(),
            }
            try:
                (directory / "upload.json").write_text(json.dumps(body))
            except BaseException:
                shutil.rmtree(directory, ignore_errors=True)
                raise

        await asyncio.to_thread(run)
        return upload_id

    def _upload(self, key: str, upload_id: str) -> tuple[Path, dict[str, Any]]:
        directory = self._upload_dir(upload_id)
        try:
            body: dict[str, Any] = json.loads((directory / "upload.json").read_text())
        except FileNotFoundError:
            raise ObjectNotFound(f"No multipart upload {upload_id!r}.") from None
        if body.get("key") != key:
            raise ObjectNotFound(f"No multipart upload {upload_id!r} for {key!r}.")
        return directory, body

    @staticmethod
    def _parts(directory: Path) -> dict[int, tuple[Path, UploadedPart, int | None]]:
        """Stored parts by number: the file holding the bytes, the part, and where the bytes
        start in that file (``None``: a part file of its own, from its first byte; a number:
        a part placed in the shared data file at that offset)."""
        found: dict[int, tuple[Path, UploadedPart, int | None, float]] = {}
        for path in directory.iterdir():
            number, _, etag = path.name.partition(".")
            if not number.isdigit() or not etag or path.name.startswith("."):
                continue
            st = path.stat()
            placed_at: int | None = None
            source, size = path, st.st_size
            if etag.endswith(_PLACED):
                etag, _, where = etag.removesuffix(_PLACED).partition(".")
                if where:  # <number>.<etag>.<offset>-<size>.placed (empty file)
                    at_text, _, size_text = where.partition("-")
                    placed_at, size = int(at_text), int(size_text)
                else:  # the older marker with a JSON body
                    body = json.loads(path.read_text())
                    size, placed_at = int(body["size"]), int(body["offset"])
                source = directory / _DATA
            part = UploadedPart(number=int(number), etag=etag, size=size)
            previous = found.get(part.number)
            if previous is None or st.st_mtime_ns >= previous[3]:
                found[part.number] = (source, part, placed_at, st.st_mtime_ns)
        return {n: (path, part, at) for n, (path, part, at, _) in sorted(found.items())}

    @_disk_errors
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
        if not 1 <= number <= MAX_PART_NUMBER:
            raise ValueError(f"part number {number} is outside 1..{MAX_PART_NUMBER}")
        directory, _ = await asyncio.to_thread(self._upload, key, upload_id)
        if offset is not None:
            token = await asyncio.to_thread(_claim, directory, offset)
            if token is not None:
                return await self._place(
                    directory, upload_id, number, chunks, max_size, offset, token
                )
        sink = _Sink(directory / f"{number:05d}.pending", max_size)
        await asyncio.to_thread(sink.open)
        try:
            async for chunk in chunks:
                await sink.feed(chunk)
            await asyncio.to_thread(sink.finish)
        except BaseException:
            await asyncio.shield(asyncio.to_thread(sink.discard))
            raise
        etag = sink.digest.hexdigest()[:32]
        sink.target = directory / f"{number:05d}.{etag}"

        def publish() -> None:
            if not directory.is_dir():  # aborted while the part streamed
                sink.discard()
                raise ObjectNotFound(f"No multipart upload {upload_id!r}.")
            sink.commit()
            for path in directory.glob(f"{number:05d}.*"):
                if path != sink.target:
                    path.unlink(missing_ok=True)

        await asyncio.to_thread(publish)
        return UploadedPart(number=number, etag=etag, size=sink.size)

    async def _place(
        self,
        directory: Path,
        upload_id: str,
        number: int,
        chunks: AsyncIterable[bytes],
        max_size: int | None,
        offset: int,
        token: str,
    ) -> UploadedPart:
        """Write a part into the shared data file at ``offset`` (claimed by ``token``), then
        record it with a marker: an empty file whose name carries the part's number, ETag,
        offset and size (``<number>.<etag>.<offset>-<size>.placed``).

        Bytes are gathered into ``WRITE_BUFFER`` writes in a thread. At the end the marker is
        created, then one ``fdatasync`` of the data file and one ``fsync`` of the directory
        make both durable before the part is reported (the marker may reach the disk first:
        it binds nobody until the part is recorded by the caller, which happens only after
        both syncs)."""
        size = 0
        reached = offset
        pending = bytearray()
        # Continue this process's running digest when the part starts where it ends (a copy:
        # the entry changes only once the part is published).
        base = self._running.get(upload_id)
        digest: Any = None
        if base is not None and base.end == offset:
            digest = base.digest.copy()
        elif offset == 0:
            digest = hashlib.sha256()
        handle = await asyncio.to_thread(
            os.open, directory / _DATA, os.O_WRONLY | os.O_CREAT, 0o644
        )

        def write(data: bytes | bytearray, at: int) -> None:
            if digest is not None:
                digest.update(data)
            _pwrite_all(handle, data, at)

        etag = secrets.token_hex(16)

        def publish(data: bytes | bytearray, at: int) -> None:
            write(data, at)
            if not directory.is_dir():  # aborted while the part streamed
                raise ObjectNotFound(f"No multipart upload {upload_id!r}.")
            marker = directory / f"{number:05d}.{etag}.{offset}-{size}{_PLACED}"
            os.close(os.open(marker, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644))
            os.fdatasync(handle)
            _fsync_dir(directory)
            for path in directory.glob(f"{number:05d}.*"):
                if path != marker:
                    path.unlink(missing_ok=True)

        published = False
        try:
            async for chunk in chunks:
                size += len(chunk)
                if max_size is not None and size > max_size:
                    raise ObjectTooLarge(f"The part is larger than {max_size} bytes.")
                pending += chunk
                if len(pending) >= WRITE_BUFFER:
                    data, pending = pending, bytearray()
                    reached = offset + size
                    await asyncio.to_thread(write, data, reached - len(data))
            reached = offset + size
            await asyncio.to_thread(publish, pending, reached - len(pending))
            published = True
            if digest is None:
                self._running.pop(upload_id, None)
            else:
                covered = base.parts if base is not None and offset > 0 else []
                self._remember(
                    upload_id, _RunningDigest([*covered, (number, etag)], offset + size, digest)
                )
        finally:
            if not published:  # give the disk back (a full disk above all)
                with contextlib.suppress(OSError):
                    await asyncio.to_thread(_drop_tail, handle, offset, offset + size)
            os.close(handle)
            # A part that got no marker can never be listed, so its bytes bind nobody: the
            # claim ends void and the region may be written in place again.
            end = reached if published else offset
            await asyncio.shield(asyncio.to_thread(_release, directory, token, end))
        return UploadedPart(number=number, etag=etag, size=size)

    async def list_parts(self, key: str, upload_id: str) -> list[UploadedPart]:
        def run() -> list[UploadedPart]:
            directory, _ = self._upload(key, upload_id)
            return [part for _, part, _ in self._parts(directory).values()]

        return await asyncio.to_thread(run)

    @_disk_errors
    async def complete_multipart(
        self, key: str, upload_id: str, parts: Sequence[UploadedPart]
    ) -> StoredObject:
        """Make the object of the listed parts, in one worker thread, and report its SHA-256.

        When every part that was written with an ``offset`` sits in the shared data file
        exactly where the object needs it and no such write is unfinished, that file becomes
        the object: only parts stored as files of their own are copied in (by the kernel,
        ``os.copy_file_range``), then it is hashed from the page cache and renamed. Otherwise
        the parts are joined into a new file. Either way the bytes are the listed parts'."""
        directory, body = await asyncio.to_thread(self._upload, key, upload_id)
        target = self._path(key)
        temp = target.with_name(f".{target.name}.{secrets.token_hex(6)}.part")
        running = self._running.pop(upload_id, None)

        def run() -> StoredObject:
            open_claims = _close_claims(directory)  # no part is placed from now on
            stored = self._parts(directory)
            check_completion(
                parts, {n: part for n, (_, part, _) in stored.items()}, self.min_part_size
            )
            sources = [stored[part.number] for part in parts]
            target.parent.mkdir(parents=True, exist_ok=True)
            data = directory / _DATA
            placed = [at for _, _, at in sources if at is not None]
            at, in_place = 0, not open_claims and bool(placed)
            for _, part, placed_at in sources:
                if placed_at is not None and placed_at != at:
                    in_place = False
                at += part.size
            known = None  # the running digest, when it covers exactly the listed parts
            if (
                in_place
                and running is not None
                and running.end == at
                and all(placed_at is not None for _, _, placed_at in sources)
                and running.parts == [(part.number, part.etag) for part in parts]
            ):
                known = running.digest.hexdigest()
            try:
                if in_place:
                    size, sha256, inode = _fill(data, sources, known)
                    source_of_object = data
                else:
                    size, sha256, inode = _join(sources, temp)
                    source_of_object = temp
                self._write_meta(key, inode, sha256, body.get("content_type"))
                os.replace(source_of_object, target)
                _fsync_dir(target.parent)
            except BaseException:
                temp.unlink(missing_ok=True)
                raise
            shutil.rmtree(directory, ignore_errors=True)
            return StoredObject(key=key, size=size, sha256=sha256)

        return await asyncio.to_thread(run)

    async def abort_multipart(self, key: str, upload_id: str) -> None:
        self._running.pop(upload_id, None)

        def run() -> None:
            try:
                directory, _ = self._upload(key, upload_id)
            except ObjectNotFound:
                return
            shutil.rmtree(directory, ignore_errors=True)

        await asyncio.to_thread(run)

    async def list_objects(self, prefix: str) -> AsyncIterator[ListedObject]:
        walk = _walk(self._root, prefix)

        def page() -> list[ListedObject]:
            return list(itertools.islice(walk, LIST_PAGE))

        try:
            while batch := await asyncio.to_thread(page):
                for found in batch:
                    yield found
        finally:
            walk.close()

    async def list_multipart_uploads(
        self, *, started_before: datetime | None = None
    ) -> list[PendingMultipart]:
        def run() -> list[PendingMultipart]:
            base = self._root / _MULTIPART
            if not base.is_dir():
                return []
            found = []
            for directory in base.iterdir():
                try:
                    body = json.loads((directory / "upload.json").read_text())
                except (FileNotFoundError, NotADirectoryError, ValueError):
                    continue
                started = datetime.fromisoformat(body["started_at"])
                if started_before is None or started < started_before:
                    found.append(PendingMultipart(body["key"], directory.name, started))
            return sorted(found, key=lambda upload: upload.started_at)

        return await asyncio.to_thread(run)


LIST_PAGE = 1000  # objects per page of ``list_objects``, as S3's ListObjectsV2


def _walk(root: Path, prefix: str) -> Generator[ListedObject, None, None]:
    """Objects under ``root`` whose key starts with ``prefix``: a depth-first walk that holds
    one open directory iterator per level (never a whole listing), skipping hidden entries
    (metadata, multipart uploads, temporary files)."""
    head, _, _ = prefix.rpartition("/")
    start = root / head if head else root
    if any(part.startswith(".") for part in Path(head).parts):
        return
    stack: list[Any] = []  # os.scandir iterators (closed on the way out)
    with contextlib.suppress(FileNotFoundError, NotADirectoryError):
        stack.append(os.scandir(start))
    try:
        while stack:
            entry = next(stack[-1], None)
            if entry is None:
                stack.pop().close()
                continue
            if entry.name.startswith("."):
                continue
            key = Path(entry.path).relative_to(root).as_posix()
            if entry.is_dir(follow_symlinks=False):
                if key.startswith(prefix) or prefix.startswith(key + "/"):
                    with contextlib.suppress(FileNotFoundError, NotADirectoryError):
                        stack.append(os.scandir(entry.path))
                continue
            if not entry.is_file(follow_symlinks=False) or not key.startswith(prefix):
                continue
            try:
                st = entry.stat(follow_symlinks=False)
            except FileNotFoundError:
                continue  # deleted while walking
            yield ListedObject(key, st.st_size, datetime.fromtimestamp(st.st_mtime, UTC))
    finally:
        for iterator in stack:
            iterator.close()


_DATA = "data"  # the shared file parts with an offset are written into
_CLAIMS = "claims"  # the ledger of writes into it
_PLACED = ".placed"  # suffix of a placed part's marker file


def _drop_tail(handle: int, offset: int, end: int) -> None:
    """Cut the data file back to ``offset`` when nothing lies past ``end`` (the failed part's
    region, still claimed by its writer): its bytes bind nobody, and on a full disk they are
    the space the next attempt needs. A file longer than ``end`` holds another part's bytes
    further on and is left as it is."""
    if os.fstat(handle).st_size <= end:
        os.ftruncate(handle, offset)


def _pwrite_all(handle: int, data: bytes | bytearray | memoryview, at: int) -> None:
    view = memoryview(data)
    while view:
        written = os.pwrite(handle, view, at)
        view, at = view[written:], at + written


def _ledger(handle: IO[str]) -> tuple[set[str], int, bool]:
    """Read the claims ledger (the caller holds its lock): unfinished claim tokens, the end
    of the furthest finished write (bytes), and whether completion has begun."""
    handle.seek(0)
    started: dict[str, int] = {}
    finished: set[str] = set()
    high, closed = 0, False
    for line in handle.read().splitlines():
        words = line.split()
        with contextlib.suppress(ValueError, IndexError):  # a line cut short by a crash
            if words[0] == "start":
                started[words[1]] = int(words[2])
            elif words[0] == "end":
                high = max(high, int(words[2]))
                finished.add(words[1])
            elif words[0] == "closed":
                closed = True
    return set(started) - finished, high, closed


def _append(handle: IO[str], line: str) -> None:
    """Append one line for the processes that share this machine's page cache. Not fsynced:
    the ledger only keeps live writers apart, and a crash of the machine ends every writer.
    Recorded parts never depend on it (the database is the record; a part's bytes and marker
    are synced before it is recorded), and a line lost in such a crash at worst sends later
    parts of the upload to files of their own (an unfinished claim). The leading newline ends
    a line that a crash cut short, so it cannot swallow this one."""
    handle.write(f"\n{line}\n")
    handle.flush()


def _claim(directory: Path, offset: int) -> str | None:
    """Claim the data file from ``offset`` on, or ``None`` (then the part gets a file of its
    own). A write goes in place only past every earlier one and while none is unfinished, so
    bytes in the data file are never written twice: a late or repeated writer cannot
    overwrite a part that was recorded. Blocking: run it in a thread."""
    try:
        handle = (directory / _CLAIMS).open("a+")
    except FileNotFoundError:
        return None  # aborted; the caller's write fails as it should
    with handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        unfinished, high, closed = _ledger(handle)
        if closed or unfinished or offset < high:
            return None
        token = secrets.token_hex(8)
        _append(handle, f"start {token} {offset}")
        return token


def _release(directory: Path, token: str, reached: int) -> None:
    """End a claim: bytes up to offset ``reached`` are taken (its own offset: none are)."""
    with contextlib.suppress(FileNotFoundError), (directory / _CLAIMS).open("a") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        _append(handle, f"end {token} {reached}")


def _close_claims(directory: Path) -> bool:
    """Stop placing parts (completion has begun); ``True`` when a write is unfinished."""
    with (directory / _CLAIMS).open("a+") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        unfinished, _, _ = _ledger(handle)
        _append(handle, "closed")
        return bool(unfinished)


Source = tuple[Path, UploadedPart, int | None]  # the file, the part, its offset in the file


def _fill(data: Path, sources: Sequence[Source], known: str | None) -> tuple[int, str, int]:
    """Complete the data file in place: copy in the parts that have files of their own, cut
    it to the object's size, fsync, hash (unless its SHA-256 is ``known``: hex, computed as
    its bytes were written); answer size, SHA-256 (hex) and inode."""
    buffer = bytearray(READ_CHUNK)
    view = memoryview(buffer)
    out = os.open(data, os.O_RDWR)
    try:
        at = 0
        for path, part, placed_at in sources:
            if placed_at is None:
                with path.open("rb", buffering=0) as source:
                    _copy(source.fileno(), 0, out, part.size, at, view)
            at += part.size
        os.ftruncate(out, at)
        os.fsync(out)
        inode = os.fstat(out).st_ino
        if known is not None:
            return at, known, inode
        digest = hashlib.sha256()
        done = 0
        while done < at:
            count = os.preadv(out, [view[: min(len(view), at - done)]], done)
            if count == 0:
                raise OSError("the data file ended early")
            digest.update(view[:count])
            done += count
    finally:
        os.close(out)
    return at, digest.hexdigest(), inode


def _join(sources: Sequence[Source], temp: Path) -> tuple[int, str, int]:
    """Write the listed parts one after another to the new file ``temp``, fsynced; answer its
    size in bytes, SHA-256 (hex) and inode. Blocking: run it in a thread."""
    digest = hashlib.sha256()
    buffer = bytearray(READ_CHUNK)
    view = memoryview(buffer)
    size = 0
    out = os.open(temp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
    try:
        for path, part, placed_at in sources:
            start = placed_at or 0
            with path.open("rb", buffering=0) as source:
                done = 0
                while done < part.size:
                    count = os.preadv(
                        source.fileno(), [view[: min(len(view), part.size - done)]], start + done
                    )
                    if count == 0:
                        raise OSError(f"part {part.number} ended early")
                    digest.update(view[:count])
                    done += count
                _copy(source.fileno(), start, out, part.size, size, view)
            size += part.size
        os.fsync(out)
        inode = os.fstat(out).st_ino
    finally:
        os.close(out)
    return size, digest.hexdigest(), inode


def _copy(source: int, start: int, out: int, length: int, at: int, view: memoryview) -> None:
    """Copy ``length`` bytes of ``source`` from offset ``start`` to ``out`` at offset ``at``:
    in the kernel where the filesystem allows it, else through ``view``."""
    done = 0
    with contextlib.suppress(OSError):
        while done < length:
            copied = os.copy_file_range(source, out, length - done, start + done, at + done)
            if copied == 0:
                break
            done += copied
    while done < length:  # no copy_file_range here (another filesystem, an old kernel)
        count = os.preadv(source, [view[: min(len(view), length - done)]], start + done)
        if count == 0:
            raise OSError(f"a part ended {length - done} bytes early")
        _pwrite_all(out, view[:count], at + done)
        done += count


def check_completion(
    parts: Sequence[UploadedPart], stored: dict[int, UploadedPart], min_part_size: int
) -> None:
    """The rules of S3's CompleteMultipartUpload, shared by adapters that emulate it."""
    if not parts:
        raise InvalidMultipart("A multipart upload needs at least one part.")
    numbers = [part.number for part in parts]
    if numbers != sorted(set(numbers)):
        raise InvalidMultipart("Parts must be listed by strictly ascending number.")
    for index, part in enumerate(parts):
        found = stored.get(part.number)
        if found is None or found.etag != part.etag:
            raise InvalidMultipart(f"Part {part.number} is not stored with that ETag.")
        if index < len(parts) - 1 and found.size < min_part_size:
            raise InvalidMultipart(
                f"Part {part.number} is {found.size} bytes; all but the last part need at "
                f"least {min_part_size} bytes."
            )


class StorageProbe:
    """Readiness of whichever object storage serves this process."""

    name = "storage"

    async def check(self) -> None:
        raise NotImplementedError


class LocalStorageProbe(StorageProbe):
    def __init__(self, root: str | Path) -> None:
        self._root = Path(root)

    async def check(self) -> None:
        def probe() -> None:
            self._root.mkdir(parents=True, exist_ok=True)
            if not os.access(self._root, os.W_OK):
                raise PermissionError(f"{self._root} is not writable")

        await asyncio.to_thread(probe)
