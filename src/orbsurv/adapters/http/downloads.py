"""File downloads over HTTP, shared by every context that serves stored files.

``download_response`` turns one stored object into the answer RFC 9110 asks for (the rules and
policy choices are in ``domain/files.py``): 200 with the whole body, 206 with one range, 304 when
``If-None-Match`` matches, 416 with ``Content-Range: bytes */size``; every answer carries
``ETag`` (the SHA-256, quoted, strong), ``Last-Modified``, ``Accept-Ranges: bytes``,
``Content-Type: application/octet-stream``, ``X-Content-Type-Options: nosniff`` and an RFC 6266
``Content-Disposition``; ``HEAD`` answers the same headers with no body.

Bodies stream from storage in 1 MiB chunks; nothing holds a file in memory. For a whole-body
answer from local storage under a server that offers the ASGI ``http.response.pathsend``
extension (granian does), the server sends the file itself and no byte passes through Python.

``on_complete`` runs once, after the last byte of a whole-body GET was handed to the server
while the client was still connected: downloads are counted per completed full transfer, never
per range request, HEAD or abandoned transfer.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

from litestar import Request, Response
from litestar.response.base import ASGIResponse
from litestar.types import Receive, Send

from orbsurv.adapters.http.problems import problem
from orbsurv.adapters.storage.local import LocalObjectStorage
from orbsurv.application.ports import ObjectStorage
from orbsurv.domain.files import (
    ByteRange,
    RangeNotSatisfiable,
    content_disposition,
    http_date,
    if_range_holds,
    none_match,
    parse_range,
    strong_etag,
)

PATH_SEND = "http.response.pathsend"
OCTET_STREAM = "application/octet-stream"

DOWNLOAD_RESPONSE_HEADERS = (
    "ETag, Last-Modified, Accept-Ranges: bytes, Content-Type: application/octet-stream, "
    "X-Content-Type-Options: nosniff, Content-Disposition (RFC 6266, filename* for non-ASCII)"
)
DOWNLOAD_DESCRIPTION = (
    "Streams the file. One `Range: bytes=a-b` answers 206 with `Content-Range`; several ranges "
    "answer 200 with the whole body; empty list elements are ignored (`bytes=0-0,` is the first "
    "byte); a malformed (`bytes=,` included) or unsatisfiable bytes range answers 416 with "
    "`Content-Range: bytes */size`. `If-None-Match` with the `ETag` answers 304; `If-Range` "
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
    __slots__ = ("_chunks", "_on_complete", "_path")

    def __init__(
        self,
        *,
        status_code: int,
        headers: dict[str, str],
        chunks: Callable[[], AsyncIterator[bytes]] | None,
        path: Path | None = None,
        on_complete: Callable[[], Awaitable[None]] | None = None,
        is_head_response: bool = False,
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
        try:
            async for chunk in self._chunks():
                if disconnected.is_set():
                    return
                await send({"type": "http.response.body", "body": chunk, "more_body": True})
            if disconnected.is_set():
                return
            await send({"type": "http.response.body", "body": b"", "more_body": False})
        finally:
            listener.cancel()
        if self._on_complete is not None:
            await self._on_complete()


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


def download_response(
    request: Request[Any, Any, Any],
    storage: ObjectStorage,
    item: Downloadable,
    *,
    on_complete: Callable[[], Awaitable[None]] | None = None,
) -> Response[Any]:
    """The RFC 9110 answer to a GET or HEAD of ``item`` (see the module docstring)."""
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
            )
        )
    headers["Content-Length"] = str(item.size)
    return Download(
        DownloadResponse(
            status_code=200,
            headers=headers,
            chunks=None if item.size == 0 else (lambda: storage.read(item.key)),
            path=_local_path(storage, item.key),
            on_complete=None if head else on_complete,
            is_head_response=head,
        )
    )
