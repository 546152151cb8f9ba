"""RecordDenial: every refused console request is audited with its burst count (the alert
policy raises an alert when the burst reaches its limit)."""

from __future__ import annotations

from orbsurv.application.identity.ports import RateLimiter
from orbsurv.application.ports import AuditLog, Clock, UnitOfWork
from orbsurv.domain.audit import AuditEvent, RequestContext
from orbsurv.domain.identity import Principal

BURST = 10  # denials of one account ...
BURST_WINDOW_SECONDS = 60  # ... within a minute


class RecordDenial:
    def __init__(
        self, audit: AuditLog, limiter: RateLimiter, uow: UnitOfWork, clock: Clock
    ) -> None:
        self._audit = audit
        self._limiter = limiter
        self._uow = uow
        self._clock = clock

    async def __call__(self, principal: Principal, path: str, context: RequestContext) -> None:
        burst = await self._limiter.hit(
            f"denied:{principal.user_id}", limit=BURST, window_seconds=BURST_WINDOW_SECONDS
        )
        await self._audit.record(
            AuditEvent(
                action="access.denied",
                occurred_at=self._clock.now(),
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
        )
        await self._uow.commit()
