"""``Allow`` lists every method of the path (RFC 9110 section 10.2.1), on OPTIONS as on 405.

Litestar builds a path's automatic OPTIONS answer from the handlers registered first; when another
router adds a method to the same path later (``GET /users`` from the console, ``POST /users`` from
identity), the 405 answer knows every method but OPTIONS does not. This hook rewrites the header of
the automatic OPTIONS answer from the finished route table.
"""

from __future__ import annotations

import re

from litestar import Litestar
from litestar.routes import HTTPRoute
from litestar.types import BeforeMessageSendHookHandler, Message, Scope


def allow_header_fixer(app: Litestar) -> BeforeMessageSendHookHandler:
    """A ``before_send`` hook for ``app`` (call after the app is built)."""
    methods_by_path: dict[str, set[str]] = {}
    for route in app.routes:  # one path may appear as several routes (one per router)
        if isinstance(route, HTTPRoute):
            methods_by_path.setdefault(route.path, set()).update(route.methods)
    # Matched on the concrete path: a handler registered under two paths reports one template.
    allow = [
        (_pattern(path), ", ".join(sorted(methods))) for path, methods in methods_by_path.items()
    ]

    async def fix_allow(message: Message, scope: Scope) -> None:
        if message["type"] != "http.response.start" or scope.get("method") != "OPTIONS":
            return
        path = str(scope.get("path", ""))
        methods = next((value for pattern, value in allow if pattern.fullmatch(path)), None)
        if methods is None:
            return
        original = list(message.get("headers", []))
        headers = [(name, value) for name, value in original if name.lower() != b"allow"]
        if len(headers) != len(original):  # only answers that carried Allow
            message["headers"] = [*headers, (b"allow", methods.encode())]

    return fix_allow


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
