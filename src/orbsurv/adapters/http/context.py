"""Per-request context: the request id, echoed on every response and carried by every log line
the request causes (there is no access-log line); and the response headers every answer
carries, errors and 404s included.

* ``X-Content-Type-Options: nosniff`` on every response (OWASP Secure Headers).
* ``Cache-Control: no-store`` unless the handler chose a policy: token responses and personal
  data must never sit in a shared or browser cache (RFC 9111 section 5.2.2.5; OWASP ASVS 8.2.1).
* ``Connection: close`` on a response that starts before the request body was read to its end
  (a 413 from ``Content-Length``, a 404 or 405 from routing, an early 401): the unread body would
  otherwise be left on a keep-alive connection that the server then drops without a word, and
  the client's next request on it fails (RFC 9112 section 9.6).
* HTML refuses to be framed (``X-Frame-Options: DENY`` and CSP ``frame-ancestors 'none'``,
  against clickjacking); a page that sends its own CSP keeps it.
"""

from __future__ import annotations

import re
import secrets
from collections.abc import Iterable
from contextvars import ContextVar
from time import perf_counter
from typing import TYPE_CHECKING

from litestar.enums import ScopeType
from litestar.types import ASGIApp, Message, Receive, ReceiveMessage, Scope, Send

if TYPE_CHECKING:
    from orbsurv.adapters.http.metrics import HttpMetrics

REQUEST_ID: ContextVar[str | None] = ContextVar("request_id", default=None)
_SANE_REQUEST_ID = re.compile(r"[A-Za-z0-9._-]{1,128}")
_HEADER = b"x-request-id"
UNMATCHED_ROUTE = "<unmatched>"


_NOSNIFF = (b"x-content-type-options", b"nosniff")
_CLOSE = (b"connection", b"close")
_NO_STORE = (b"cache-control", b"no-store")
_NO_FRAMES = (
    (b"x-frame-options", b"DENY"),
    (b"content-security-policy", b"frame-ancestors 'none'"),
)


def secure_headers(headers: list[tuple[bytes, bytes]]) -> list[tuple[bytes, bytes]]:
    """``headers`` plus the defaults above that the response does not set itself."""
    present = {name.lower(): value for name, value in headers}
    added = [h for h in (_NOSNIFF, _NO_STORE) if h[0] not in present]
    if present.get(b"content-type", b"").startswith(b"text/html"):
        added.extend(h for h in _NO_FRAMES if h[0] not in present)
    return [*headers, *added]


def has_body(headers: Iterable[tuple[bytes, bytes]]) -> bool:
    """Whether the request announces a body (``Content-Length`` above 0 or chunked)."""
    for name, value in headers:
        if name == b"transfer-encoding" or (name == b"content-length" and value.strip() != b"0"):
            return True
    return False


def header(headers: Iterable[tuple[bytes, bytes]], name: bytes) -> str | None:
    """The first value of the header ``name`` (lower case, as ASGI gives names) in the raw ASGI
    ``headers``, decoded as ISO-8859-1 (RFC 9110 section 5.5); ``None`` when absent. Cheaper
    than building Litestar's header map, which the hot paths never need."""
    for key, value in headers:
        if key == name:
            return value.decode("latin-1")
    return None


def request_id_from(headers: Iterable[tuple[bytes, bytes]]) -> str:
    """The client's ``X-Request-ID`` when it is a sane token, a fresh one otherwise."""
    candidate = header(headers, _HEADER)
    if candidate is not None and _SANE_REQUEST_ID.fullmatch(candidate):
        return candidate
    return secrets.token_hex(16)  # 32 hex digits, as a UUID4 in hex; cheaper to make


class RequestContextMiddleware:
    """The outermost layer: request id, latency metrics, nothing kept after the request ends.

    It wraps the whole Litestar ASGI handler, so routing failures (404, 405) carry the request id
    too. It holds no reference to the request once it returns.
    """

    def __init__(self, app: ASGIApp, metrics: HttpMetrics | None) -> None:
        self._app = app
        self._metrics = metrics

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != ScopeType.HTTP:
            await self._app(scope, receive, send)
            return
        method = scope["method"]
        request_id = request_id_from(scope["headers"])
        scope.setdefault("state", {})["request_id"] = request_id
        token = REQUEST_ID.set(request_id)
        header = (_HEADER, request_id.encode("latin-1"))
        status = 500
        started = perf_counter()

        body_pending = has_body(scope["headers"])

        async def receive_noting_the_end() -> ReceiveMessage:
            nonlocal body_pending
            message = await receive()
            if (
                message["type"] == "http.request" and not message.get("more_body", False)
            ) or message["type"] == "http.disconnect":
                body_pending = False
            return message

        async def send_with_request_id(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
                headers = secure_headers([*message.get("headers", ()), header])
                if body_pending:
                    headers.append(_CLOSE)
                message["headers"] = headers
            await send(message)

        try:
            await self._app(scope, receive_noting_the_end, send_with_request_id)
        finally:
            if self._metrics is not None:
                route = scope.get("path_template") or UNMATCHED_ROUTE
                self._metrics.observe(method, route, status, perf_counter() - started)
            REQUEST_ID.reset(token)
