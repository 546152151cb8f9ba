"""RecordDenial: refused console requests (403) go to the audit trail, boundedly.

Every refusal is counted per account and per client IP in a one-minute window. While both counts
are within ``audit_limit`` (DENIAL_AUDIT_LIMIT, default 20) each refusal is its own
``access.denied`` row, carrying its burst count so the alert policy raises ``forbidden_burst``
when an account reaches ``BURST`` (10) refusals in the minute. Past the limit a refusal writes no
row of its own: one ``access.denied.suppressed`` row is written each time a count reaches twice,
four times, eight times ... the limit (``suppressed`` says how many went unrecorded, ``counted``
the window's total), and it raises ``forbidden_burst`` again should the first alert have been
acknowledged meanwhile. A flood of N refusals in a minute thus costs at most
``limit + log2(N / limit)`` rows per account or address instead of N, and operators still see
it: the alert stays raised and the summary rows show its size. (OWASP Logging Cheat Sheet: the
event log must not itself become a denial-of-service vector.)
"""

from __future__ import annotations

from dataclasses import dataclass

from orbsurv.application.identity.ports import RateLimiter
from orbsurv.application.ports import AuditLog, Clock, UnitOfWork
from orbsurv.domain.audit import AuditEvent, RequestContext, budget_client
from orbsurv.domain.identity import Principal

BURST = 10  # denials of one account ...
BURST_WINDOW_SECONDS = 60  # ... within a minute (also the audit limit's window)
AUDIT_LIMIT = 20  # rows per account and per client IP in that window, by default


@dataclass(frozen=True, slots=True)
class DenialPolicy:
    audit_limit: int = AUDIT_LIMIT  # at least BURST, so the burst alert's row is written


def milestone(count: int, limit: int) -> bool:
    """Whether ``count`` is ``limit`` times 2, 4, 8 ...: where a summary row is due."""
    if count <= limit or count % limit:
        return False
    times = count // limit
    return times & (times - 1) == 0


@dataclass(frozen=True, slots=True)
class RecordDenial:
    audit: AuditLog
    limiter: RateLimiter
    uow: UnitOfWork
    clock: Clock
    policy: DenialPolicy

    async def __call__(self, principal: Principal, path: str, context: RequestContext) -> None:
        """Count the refusal; write its row, a summary row, or nothing (see the module)."""
        window = BURST_WINDOW_SECONDS
        limit = max(self.policy.audit_limit, BURST)
        burst = await self.limiter.hit(
            f"denied:{principal.user_id}", limit=BURST, window_seconds=window
        )
        by_ip = await self.limiter.hit(
            f"denied:ip:{budget_client(context.ip)}", limit=limit, window_seconds=window
        )
        now = self.clock.now()
        if burst.count <= limit and by_ip.count <= limit:
            event = AuditEvent(
                action="access.denied",
                occurred_at=now,
                context=context,
                actor_user_id=principal.user_id,
                target_type="route",
                target_id=path,
                metadata={
                    "role": principal.role.value,
                    "scope": principal.scope.value,
                    "burst": burst.count,
                    "burst_limit": BURST,
                },
            )
        elif milestone(burst.count, limit) or milestone(by_ip.count, limit):
            by_account = milestone(burst.count, limit)
            counted = burst.count if by_account else by_ip.count
            event = AuditEvent(
                action="access.denied.suppressed",
                occurred_at=now,
                context=context,
                actor_user_id=principal.user_id,
                target_type="route",
                target_id=path,
                metadata={
                    "per": "account" if by_account else "ip",
                    "counted": counted,
                    "suppressed": counted - limit,
                    "audit_limit": limit,
                    "window_seconds": window,
                    "burst_limit": BURST,
                },
            )
        else:
            return
        await self.audit.record(event)
        await self.uow.commit()
