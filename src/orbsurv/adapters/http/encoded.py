"""A JSON answer encoded once by msgspec and sent as two ASGI messages.

For a returned value, Litestar builds a ``Response`` and then an ``ASGIResponse`` on every
request: it merges the layers' headers and cookies, resolves the type encoders, picks a
serializer and encodes the headers one by one. On ``GET /users/me`` that generic path was about
12 µs of the route's 42 µs in-process, and it made the profile answer 0.7 times as many requests
per second as healthz (``bench/hot_paths.py``). ``EncodedJson`` keeps the route's OpenAPI
description (a handler annotated ``-> EncodedJson[UserOut]`` documents ``UserOut``) and sends
the same status, header fields and bytes as the generic path; the middleware still adds the
request id and the security headers.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any, TypeVar

import msgspec
from litestar import Request, Response
from litestar.background_tasks import BackgroundTask, BackgroundTasks
from litestar.datastructures import Cookie, MutableScopeHeaders
from litestar.enums import MediaType
from litestar.response.base import ASGIResponse
from litestar.types import Receive, Scope, Send

T = TypeVar("T")

_JSON = MediaType.JSON.value.encode("latin-1")


class EncodedJson(Response[T]):
    """``content`` (a msgspec Struct, or anything ``msgspec.json.encode`` takes without
    hooks) as ``application/json``, encoded when the response is made.

    A route that adds its own header fields, cookies or background task, and a response given
    any of them, take Litestar's generic path, so nothing set on a layer is lost."""

    __slots__ = ("_body",)

    def __init__(self, content: T, *, status_code: int = 200) -> None:
        # What ``Response.__init__`` would set for these arguments, without its copying (1.4 µs).
        self.content = content
        self.background = None
        self.cookies = []
        self.encoding = "utf-8"
        self.headers = {}
        self.media_type = MediaType.JSON
        self.status_code = status_code
        self.response_type_encoders = {}
        self._body = msgspec.json.encode(content)

    def to_asgi_response(
        self,
        app: Any,
        request: Request[Any, Any, Any],
        *,
        background: BackgroundTask | BackgroundTasks | None = None,
        cookies: Iterable[Cookie] | None = None,
        encoded_headers: Iterable[tuple[bytes, bytes]] | None = None,
        headers: dict[str, str] | None = None,
        is_head_response: bool = False,
        media_type: MediaType | str | None = None,
        status_code: int | None = None,
        type_encoders: Any = None,
    ) -> ASGIResponse:
        if (
            background
            or cookies
            or encoded_headers
            or headers
            or self.background
            or self.cookies
            or self.headers
        ):
            return super().to_asgi_response(
                app,
                request,
                background=background,
                cookies=cookies,
                encoded_headers=encoded_headers,
                headers=headers,
                is_head_response=is_head_response,
                media_type=media_type,
                status_code=status_code,
                type_encoders=type_encoders,
            )
        return _Encoded(
            self.status_code or status_code or 200,
            self._body,
            head=is_head_response,
        )


class _Encoded(ASGIResponse):
    """Every field ``ASGIResponse`` would hold for this body, set directly: its constructor
    parses header fields and cookies the answer does not have (4 µs). Sends the status with
    ``Content-Type`` and ``Content-Length``, then the body (none for a HEAD, whose length
    stays the GET's: RFC 9110 section 8.6)."""

    __slots__ = ()

    def __init__(self, status_code: int, body: bytes, *, head: bool) -> None:
        self.headers = MutableScopeHeaders()
        self.headers.headers = [
            (b"content-type", _JSON),
            (b"content-length", str(len(body)).encode("latin-1")),
        ]
        self.background = None
        self.body = b"" if head else body
        self.content_length = len(body)
        self.encoding = "utf-8"
        self.is_head_response = head
        self.status_code = status_code
        self._encoded_cookies = ()

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        await send(
            {
                "type": "http.response.start",
                "status": self.status_code,
                "headers": self.headers.headers,
            }
        )
        await send({"type": "http.response.body", "body": self.body, "more_body": False})
