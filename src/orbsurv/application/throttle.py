"""ThrottleClient: per-client-IP budgets for the anonymous writes that had none of their own.

Anything the internet may write without an account costs storage, so each such route spends one
unit of a budget per request, keyed on the client's address as the trusted-proxy rule resolved it
(never on anything the client typed: a header, a ``client_id``, an email) and counted per IPv6
/64 (``budget_client``). A spent budget is ``RateLimited`` (429 ``rate_limited`` with
``Retry-After``, the seconds until the window ends). The public forms, orders and client error
reports keep their own budgets in their use cases; this one serves the routes that write from
anyone and had none: analytics and cookie-consent events, and registration (every route that
creates an account, the sign-up through an order's link included). (OWASP API Security Top 10
2023, API4 "Unrestricted Resource Consumption".)
"""

from __future__ import annotations

import enum
from dataclasses import dataclass

from orbsurv.application.identity.ports import RateLimiter
from orbsurv.domain.audit import budget_client
from orbsurv.domain.errors import RateLimited


class Bucket(enum.Enum):
    """One budget per kind of write, so spending one never blocks another."""

    ANALYTICS = "analytics"
    REGISTRATION = "registration"


@dataclass(frozen=True, slots=True)
class Budget:
    limit: int  # requests ...
    window_seconds: int  # ... per window, which starts at the first request


@dataclass(frozen=True, slots=True)
class ThrottlePolicy:
    analytics: Budget = Budget(30, 60)
    registration: Budget = Budget(10, 3600)

    def budget(self, bucket: Bucket) -> Budget:
        return self.analytics if bucket is Bucket.ANALYTICS else self.registration


@dataclass(frozen=True, slots=True)
class ThrottleClient:
    limiter: RateLimiter
    policy: ThrottlePolicy

    async def __call__(self, bucket: Bucket, ip: str | None) -> None:
        """Spend one request of ``ip``'s budget for ``bucket``; raise ``RateLimited`` (code
        ``rate_limited``, ``retry_after`` in seconds) when none is left."""
        budget = self.policy.budget(bucket)
        decision = await self.limiter.hit(
            f"throttle:{bucket.value}:{budget_client(ip)}",
            limit=budget.limit,
            window_seconds=budget.window_seconds,
        )
        if not decision.allowed:
            raise RateLimited(
                "Too many requests from this address; try again later.",
                retry_after=decision.retry_after,
            )
