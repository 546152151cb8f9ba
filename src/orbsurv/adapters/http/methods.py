"""``Allow`` lists every method of the path (RFC 9110 section 10.2.1), on OPTIONS as on 405.

Litestar builds a path's automatic OPTIONS answer from the handlers registered first; when another
router adds a method to the same path later (``GET /users`` from the console, ``POST /users`` from
identity), the 405 answer knows every method but OPTIONS does not. This hook rewrites the header of
the automatic OPTIONS answer from the finished route table.
"""

from __future__ import annotations

from litestar import Litestar
from litestar.routes import HTTPRoute
from litestar.types import BeforeMessageSendHookHandler, Message, Scope


def allow_header_fixer(app: Litestar) -> BeforeMessageSendHookHandler:
    """A ``before_send`` hook for ``app`` (call after the app is built)."""
    allow = {
        route.path: ", ".join(sorted(route.methods))
        for route in app.routes
        if isinstance(route, HTTPRoute)
    }

    async def fix_allow(message: Message, scope: Scope) -> None:
        if message["type"] != "http.response.start" or scope.get("method") != "OPTIONS":
            return
        methods = allow.get(str(scope.get("path_template", "")))
        if methods is None:
            return
        original = list(message.get("headers", []))
        headers = [(name, value) for name, value in original if name.lower() != b"allow"]
        if len(headers) != len(original):  # only answers that carried Allow
            message["headers"] = [*headers, (b"allow", methods.encode())]

    return fix_allow
