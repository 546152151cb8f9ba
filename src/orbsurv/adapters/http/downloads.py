"""File downloads over HTTP, shared by every context that serves stored files.

``download_response`` turns one stored object into the answer RFC 9110 asks for (the rules and
policy choices are in ``domain/files.py``): 200 with the whole body, 206 with one range, 304 when
``If-None-Match`` matches (or, without it, ``If-Modified-Since`` is not before
``Last-Modified``), 416 with ``Content-Range: bytes */size``; every answer carries
``ETag`` (the SHA-256, quoted, strong), ``Last-Modified``, ``Accept-Ranges: bytes``,
``Content-Type: application/octet-stream``, ``X-Content-Type-Options: nosniff`` and an RFC 6266
``Content-Disposition``; ``HEAD`` answers the same headers with no body.

Bodies stream from storage in 1 MiB chunks; nothing holds a file in memory. For a whole-body
answer from local storage under a server that offers the ASGI ``http.response.pathsend``
extension (granian does), the server sends the file itself and no byte passes through Python,
but only when nothing waits for the end of the transfer (no ``on_complete``): ``pathsend``
returns once the server took the path, not once the client read the file, so a transfer the
client abandoned would look complete.

``on_complete`` runs once, after the last byte of a whole-body GET was handed to the server
while the client was still connected: downloads are counted per completed full transfer, never
per range request, HEAD or abandoned transfer, on every storage alike (the body then streams
through ``send_body`` in 1 MiB reads, which sees the client's ``http.disconnect`` between two
sends). The server learns of a client that left only once the bytes already on their way (the
socket buffers and the server's queue, a few MiB on loopback) failed to go out: a client that
closes with less than that left to send cannot be told from one that read everything, and
counts.

The stored object is checked (its size, through the storage port) before the answer starts,
for GET and HEAD alike, so a fault is a problem+json with ``X-Request-ID`` and a log line, never
the server's bare 500: a storage that cannot be reached is 503 ``storage_unavailable`` with
``Retry-After``; an object that is missing (or has another size than recorded) is 404
``object_missing``, logged at error level. 404 rather than 503 because no retry brings the
bytes back: there is no current representation to send (RFC 9110 section 15.5.5), a 503
would make clients retry and monitors count an outage where an operator must act; the code
tells it apart from an unknown id. (A package version's bytes come back when the same bytes
are uploaded again: the upload heals the blob.) A read that fails once the answer started
is logged with the request id and the connection is cut (the exception reaches the server,
which closes it): the client sees a short body, never a complete-looking wrong one.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

from litestar import Request, Response
from litestar.response.base import ASGIResponse
from litestar.types import Receive, Send

from orbsurv.adapters.http.problems import problem, unavailable
from orbsurv.adapters.storage.local import LocalObjectStorage
from orbsurv.application.errors import ObjectNotFound
from orbsurv.application.ports import ObjectStorage
from orbsurv.domain.errors import DependencyUnavailable, NotFound
from orbsurv.domain.files import (
    ByteRange,
    RangeNotSatisfiable,
    content_disposition,
    http_date,
    if_range_holds,
    none_match,
    not_modified_since,
    parse_range,
    strong_etag,
)

logger = logging.getLogger("orbsurv.downloads")

PATH_SEND = "http.response.pathsend"
RETRY_AFTER_SECONDS = 5  # told to clients when the storage cannot be reached
MISSING = (
    "The stored file is missing; the operators are told. Uploading the same bytes again "
    "restores a package version."
)
OCTET_STREAM = "application/octet-stream"

DOWNLOAD_RESPONSE_HEADERS = (
    "ETag, Last-Modified, Accept-Ranges: bytes, Content-Type: application/octet-stream, "
    "X-Content-Type-Options: nosniff, Content-Disposition (RFC 6266, filename* for non-ASCII)"
)
DOWNLOAD_DESCRIPTION = (
    "Streams the file. One `Range: bytes=a-b` answers 206 with `Content-Range`; several ranges "
    "answer 200 with the whole body; empty list elements are ignored (`bytes=0-0,` is the first "
    "byte); a malformed (`bytes=,` included) or unsatisfiable bytes range answers 416 with "
    "`Content-Range: bytes */size`. `If-None-Match` with the `ETag` answers 304, as does "
    "`If-Modified-Since` at or after `Last-Modified` when no `If-None-Match` is sent; `If-Range` "
    "with a stale validator answers the whole body. HEAD answers the same headers without a "
    "body. A download is counted once per completed full transfer. Headers: "
    + DOWNLOAD_RESPONSE_HEADERS
    + "."
)


@dataclass(frozen=True, slots=True)
class Downloadable:
    """What to serve: the object ``key`` of ``size`` bytes, its SHA-256 (hex), when it last
    changed (timezone-aware), and the file name to offer."""

    key: str
    size: int
    sha256: str
    modified_at: datetime
    file_name: str


class DownloadResponse(ASGIResponse):
    """Headers as given; the body streams from storage (or goes by ``pathsend``)."""

    _should_set_content_length = False
    __slots__ = ("_chunks", "_key", "_on_complete", "_path")

    def __init__(
        self,
        *,
        status_code: int,
        headers: dict[str, str],
        chunks: Callable[[], AsyncIterator[bytes]] | None,
        path: Path | None = None,
        on_complete: Callable[[], Awaitable[None]] | None = None,
        is_head_response: bool = False,
        key: str = "",
    ) -> None:
        super().__init__(
            status_code=status_code,
            headers=headers,
            media_type=OCTET_STREAM,
            is_head_response=is_head_response,
        )
        self._chunks = chunks
        self._path = path
        self._on_complete = on_complete
        self._key = key

    async def __call__(self, scope: Any, receive: Receive, send: Send) -> None:
        if (
            self._path is not None
            and not self.is_head_response
            and PATH_SEND in (scope.get("extensions") or {})
        ):
            await self.start_response(send)
            await send({"type": PATH_SEND, "path": str(self._path)})  # type: ignore[arg-type]
            if self._on_complete is not None:
                await self._on_complete()
            return
        if self._chunks is not None and not self.is_head_response:
            # The first bytes are read before the answer starts: a read that fails there still
            # reaches the app's exception handlers (a problem+json), not a cut stream.
            stream = self._chunks()
            try:
                first = await anext(stream, None)
            except ObjectNotFound:
                logger.error("download of %s: the stored object is missing", self._key)
                raise NotFound(MISSING, code="object_missing") from None
            self._chunks = lambda: _prepended(first, stream)
        await super().__call__(scope, receive, send)

    async def send_body(self, send: Send, receive: Receive) -> None:
        if self._chunks is None:
            await send({"type": "http.response.body", "body": b"", "more_body": False})
            return
        disconnected = asyncio.Event()

        async def listen() -> None:
            while True:
                message = await receive()
                if message["type"] == "http.disconnect":
                    disconnected.set()
                    return

        listener = asyncio.create_task(listen())
        sent = 0
        try:
            chunks = self._chunks()
            while True:
                try:
                    chunk = await anext(chunks)
                except StopAsyncIteration:
                    break
                except Exception as error:
                    logger.error(
                        "download of %s failed after %d bytes (%s); the connection is cut",
                        self._key,
                        sent,
                        getattr(error, "code", type(error).__name__),
                    )
                    raise
                if disconnected.is_set():  # the client left before the last byte: not counted
                    return
                await send({"type": "http.response.body", "body": chunk, "more_body": True})
                sent += len(chunk)
            # Every byte was handed over while the client was there. A disconnect seen now is
            # the client closing the connection after reading the whole body: complete.
            await send({"type": "http.response.body", "body": b"", "more_body": False})
        finally:
            listener.cancel()
        if self._on_complete is not None:
            await self._on_complete()


async def _prepended(first: bytes | None, rest: AsyncIterator[bytes]) -> AsyncIterator[bytes]:
    if first is None:
        return
    yield first
    async for chunk in rest:
        yield chunk


class Download(Response[None]):
    """A ``Response`` whose ASGI form is a prepared ``DownloadResponse``."""

    def __init__(self, prepared: DownloadResponse) -> None:
        super().__init__(content=None, status_code=prepared.status_code)
        self._prepared = prepared

    def to_asgi_response(self, *args: Any, **kwargs: Any) -> ASGIResponse:
        extra = kwargs.get("headers") or {}
        for name, value in extra.items() if isinstance(extra, dict) else extra:
            if name.lower() not in self._prepared.headers:
                self._prepared.headers.add(name, value)
        return self._prepared


def headers_only(status_code: int, headers: dict[str, str]) -> Response[None]:
    """A HEAD answer made of ``headers`` alone, without the ``Content-Type`` and
    ``Content-Length`` of a body it does not have (a plain ``Response(None)`` claims 4 bytes of
    JSON, ``null``; RFC 9110 section 8.6 wants a HEAD's length to be the GET's or absent)."""
    return Download(
        DownloadResponse(
            status_code=status_code, headers=headers, chunks=None, is_head_response=True
        )
    )


def _local_path(storage: ObjectStorage, key: str) -> Path | None:
    if isinstance(storage, LocalObjectStorage):
        return storage.path_of(key)
    return None


async def _stored_fault(
    request: Request[Any, Any, Any], storage: ObjectStorage, item: Downloadable
) -> Response[Any] | None:
    """The problem to answer when the object of ``item`` cannot be served (see the module
    docstring), ``None`` when it is there with its recorded size."""
    try:
        size = await storage.size(item.key)
    except DependencyUnavailable as failed:
        logger.warning("download of %s: the storage failed (%s)", item.key, failed.code)
        return unavailable(
            request,
            "The file storage is unavailable; try again in a moment.",
            "storage_unavailable",
            retry_after=RETRY_AFTER_SECONDS,
        )
    if size == item.size:
        return None
    logger.error(
        "download of %s: the stored object is %s",
        item.key,
        "missing" if size is None else f"{size} bytes, not the {item.size} recorded",
    )
    return problem(request, 404, MISSING, code="object_missing")


async def download_response(
    request: Request[Any, Any, Any],
    storage: ObjectStorage,
    item: Downloadable,
    *,
    on_complete: Callable[[], Awaitable[None]] | None = None,
) -> Response[Any]:
    """The RFC 9110 answer to a GET or HEAD of ``item`` (see the module docstring), or the
    problem of a stored object that cannot be served (404 ``object_missing``, 503
    ``storage_unavailable``)."""
    fault = await _stored_fault(request, storage, item)
    if fault is not None:
        return fault
    etag = strong_etag(item.sha256)
    headers = {
        "ETag": etag,
        "Last-Modified": http_date(item.modified_at),
        "Accept-Ranges": "bytes",
        "Content-Type": OCTET_STREAM,
        "X-Content-Type-Options": "nosniff",
        "Content-Disposition": content_disposition(item.file_name),
        "Cache-Control": "private, no-cache",
    }
    head = request.method == "HEAD"
    if_none_match = request.headers.get("if-none-match")
    if if_none_match is not None and none_match(if_none_match, etag):
        return Download(DownloadResponse(status_code=304, headers=headers, chunks=None))
    if_modified_since = request.headers.get("if-modified-since")
    if (
        if_none_match is None  # If-None-Match decides when both are sent (RFC 9110 §13.2.2)
        and if_modified_since is not None
        and not_modified_since(if_modified_since, item.modified_at)
    ):
        return Download(DownloadResponse(status_code=304, headers=headers, chunks=None))

    byte_range: ByteRange | None = None
    range_header = request.headers.get("range")
    if range_header is not None:
        if_range = request.headers.get("if-range")
        if if_range is None or if_range_holds(if_range, etag, item.modified_at):
            try:
                byte_range = parse_range(range_header, item.size)
            except RangeNotSatisfiable as refused:
                return problem(
                    request,
                    416,
                    f"The requested range cannot be served; the file has {item.size} bytes.",
                    code="range_not_satisfiable",
                    headers={
                        **{k: v for k, v in headers.items() if k != "Content-Type"},
                        "Content-Range": refused.content_range,
                    },
                )

    if byte_range is not None:
        start, end = byte_range.start, byte_range.end
        headers["Content-Range"] = byte_range.content_range(item.size)
        headers["Content-Length"] = str(byte_range.length)
        return Download(
            DownloadResponse(
                status_code=206,
                headers=headers,
                chunks=lambda: storage.read(item.key, start=start, end=end),
                is_head_response=head,
                key=item.key,
            )
        )
    headers["Content-Length"] = str(item.size)
    return Download(
        DownloadResponse(
            status_code=200,
            headers=headers,
            # 1 MiB reads (a bounded range), not the larger whole-object reads: a client that
            # left is noticed between two sends, and the bytes queued meanwhile stay few
            chunks=None if item.size == 0 else (lambda: storage.read(item.key, end=item.size - 1)),
            # pathsend cannot tell a completed transfer from an abandoned one: not when counting
            path=_local_path(storage, item.key) if on_complete is None else None,
            on_complete=None if head else on_complete,
            is_head_response=head,
            key=item.key,
        )
    )
