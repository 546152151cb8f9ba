"""Methods the route table implies (RFC 9110): ``Allow`` on OPTIONS, and HEAD wherever GET is.

Litestar builds a path's automatic OPTIONS answer from the handlers registered first; when another
router adds a method to the same path later (``GET /users`` from the console, ``POST /users`` from
identity), the 405 answer knows every method but OPTIONS does not. This hook rewrites the header of
both answers from the finished route table (HEAD included wherever GET is, see below).

Litestar answers HEAD only where a handler declares it; RFC 9110 section 9.1 wants it wherever
GET is. ``HeadAsGet`` runs such a HEAD as the GET and sends its status and header fields without
the content (section 9.3.2).
"""

from __future__ import annotations

import re

from litestar import Litestar
from litestar.enums import ScopeType
from litestar.routes import HTTPRoute
from litestar.types import ASGIApp, BeforeMessageSendHookHandler, Message, Receive, Scope, Send


def _methods_by_path(app: Litestar) -> dict[str, set[str]]:
    methods_by_path: dict[str, set[str]] = {}
    for route in app.routes:  # one path may appear as several routes (one per router)
        if isinstance(route, HTTPRoute):
            methods_by_path.setdefault(route.path, set()).update(route.methods)
    return methods_by_path


def allow_header_fixer(app: Litestar) -> BeforeMessageSendHookHandler:
    """A ``before_send`` hook for ``app`` (call after the app is built)."""
    # Matched on the concrete path: a handler registered under two paths reports one template.
    allow = [
        (_pattern(path), ", ".join(sorted(methods | ({"HEAD"} if "GET" in methods else set()))))
        for path, methods in _methods_by_path(app).items()
    ]

    async def fix_allow(message: Message, scope: Scope) -> None:
        # Only OPTIONS and 405 answers carry Allow: every other answer leaves at once.
        if message["type"] != "http.response.start" or (
            message["status"] != 405 and scope.get("method") != "OPTIONS"
        ):
            return
        original = list(message.get("headers", []))
        headers = [(name, value) for name, value in original if name.lower() != b"allow"]
        if len(headers) == len(original):
            return
        path = str(scope.get("path", ""))
        methods = next((value for pattern, value in allow if pattern.fullmatch(path)), None)
        if methods is not None:
            message["headers"] = [*headers, (b"allow", methods.encode())]

    return fix_allow


class HeadAsGet:
    """ASGI middleware: a HEAD on a path with a GET handler and no HEAD handler of its own runs
    as that GET; the status and header fields (``Content-Length`` included) go out, the content
    does not. Paths that declare HEAD (downloads, tus uploads) keep their own handler."""

    def __init__(self, app: ASGIApp, routes: Litestar) -> None:
        self._app = app
        self._get_only = [
            _pattern(path)
            for path, methods in _methods_by_path(routes).items()
            if "GET" in methods and "HEAD" not in methods
        ]

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if (
            scope["type"] != ScopeType.HTTP
            or scope.get("method") != "HEAD"
            or not any(p.fullmatch(scope["path"]) for p in self._get_only)
        ):
            await self._app(scope, receive, send)
            return

        async def headers_only(message: Message) -> None:
            if message["type"] == "http.response.start":
                await send(message)
            elif message["type"] == "http.response.body" and not message.get("more_body"):
                await send({"type": "http.response.body", "body": b"", "more_body": False})

        await self._app({**scope, "method": "GET"}, receive, headers_only)


def _pattern(path: str) -> re.Pattern[str]:
    parts = re.split(r"(\{[^}]+\})", path)
    return re.compile(
        "".join(
            (".+" if part.endswith(":path}") else "[^/]+")
            if part.startswith("{")
            else re.escape(part)
            for part in parts
        )
        + "/?"
    )
