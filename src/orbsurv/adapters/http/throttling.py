"""Per-client-IP budgets for anonymous writes, spent before anything the client sent is read.

A route opts in with ``opt={THROTTLE_KEY: Bucket.X}`` (``throttled(Bucket.X)``); the
``before_request`` hook ``throttle_first`` spends one request of the client's budget before the
body is read, screened or decoded, so a client over its budget costs a cache round trip, not a
parse or a database connection. The client is the address the trusted-proxy rule resolves
(``request_context``), never a header the client chose."""

from __future__ import annotations

from typing import Any

from litestar import Request

from orbsurv.adapters.http.client import request_context
from orbsurv.adapters.http.di import app_container
from orbsurv.application.throttle import Bucket, ThrottleClient

THROTTLE_KEY = "throttle"


def throttled(bucket: Bucket) -> dict[str, Any]:
    """The ``opt`` entry that puts a route under ``bucket``'s per-IP budget."""
    return {THROTTLE_KEY: bucket}


async def throttle_first(request: Request[Any, Any, Any]) -> None:
    """Raise ``RateLimited`` (429 ``rate_limited`` with ``Retry-After``) when the route is
    throttled and the client's budget for it is spent."""
    bucket: Bucket | None = request.route_handler.opt.get(THROTTLE_KEY)
    if bucket is None:
        return
    throttle = await app_container(request.app.state).get(ThrottleClient)
    await throttle(bucket, request_context(request).ip)
