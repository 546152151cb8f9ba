"""Deadlines on request bodies: a client that stops sending is answered, not waited on for ever.

The ASGI server gives a request body no idle timeout: a client that sends its headers and a few
bytes and then nothing keeps its request (and whatever the request holds) for as long as the
socket stays open. ``BodyDeadlines`` wraps ``receive`` of every HTTP request while its body is
still arriving:

* no byte for ``idle_seconds`` (``UPLOAD_IDLE_TIMEOUT_SECONDS``) and
* the body not complete ``max_seconds`` (``UPLOAD_BODY_MAX_SECONDS``) after the request began

raise ``BodyTimeout`` from ``receive``, inside whatever reads the body. Unhandled, it is a 408
``request_timeout`` problem (with ``Connection: close``: the rest of the body is never read);
an upload undoes what it stored before the error goes on (``UploadProject``, ``PublishPackage``)
and a resumable chunk keeps its durable bytes (``AppendUploadChunk``: resume from HEAD). Once
the body has ended, ``receive`` is passed through untouched (a streaming response waits on it
for the client's disconnect).
"""

from __future__ import annotations

import asyncio

from litestar.enums import ScopeType
from litestar.exceptions import HTTPException
from litestar.types import ASGIApp, Receive, ReceiveMessage, Scope, Send


class BodyTimeout(HTTPException):
    """The request body stalled or took too long: 408 ``request_timeout``."""

    status_code = 408


class BodyDeadlines:
    def __init__(self, app: ASGIApp, *, idle_seconds: float, max_seconds: float) -> None:
        self._app = app
        self._idle = idle_seconds
        self._max = max_seconds

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != ScopeType.HTTP:
            await self._app(scope, receive, send)
            return
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self._max
        ended = False

        async def receive_in_time() -> ReceiveMessage:
            nonlocal ended
            if ended:
                return await receive()
            left = deadline - loop.time()
            wait = min(self._idle, left)
            try:
                message = await asyncio.wait_for(receive(), max(wait, 0.0))
            except TimeoutError:
                if wait >= left:
                    detail = f"The request body took longer than {self._max:g} seconds."
                else:
                    detail = f"No byte of the request body arrived for {self._idle:g} seconds."
                raise BodyTimeout(detail=detail) from None
            if message["type"] != "http.request" or not message.get("more_body", False):
                ended = True
            return message

        await self._app(scope, receive_in_time, send)
