"""RecordDenial: every refused console request is audited; a burst of them raises an alert."""

from __future__ import annotations

from orbsurv.application.identity.ports import RateLimiter
from orbsurv.application.ports import AlertSink, AuditLog, Clock, UnitOfWork
from orbsurv.domain.audit import AuditEvent, RequestContext, SecurityAlert, Severity
from orbsurv.domain.identity import Principal

BURST = 10  # denials of one account ...
BURST_WINDOW_SECONDS = 60  # ... within a minute


class RecordDenial:
    def __init__(
        self,
        audit: AuditLog,
        alerts: AlertSink,
        limiter: RateLimiter,
        uow: UnitOfWork,
        clock: Clock,
    ) -> None:
        self._audit = audit
        self._alerts = alerts
        self._limiter = limiter
        self._uow = uow
        self._clock = clock

    async def __call__(self, principal: Principal, path: str, context: RequestContext) -> None:
        now = self._clock.now()
        await self._audit.record(
            AuditEvent(
                action="access.denied",
                occurred_at=now,
                context=context,
                actor_user_id=principal.user_id,
                target_type="route",
                target_id=path,
                metadata={"role": principal.role.value, "scope": principal.scope.value},
            )
        )
        burst = await self._limiter.hit(
            f"denied:{principal.user_id}", limit=BURST, window_seconds=BURST_WINDOW_SECONDS
        )
        if burst.count == BURST:
            await self._alerts.raise_alert(
                SecurityAlert(
                    rule="forbidden_burst",
                    severity=Severity.MEDIUM,
                    subject=principal.user_id,
                    message=f"{BURST} refused console requests within a minute.",
                    raised_at=now,
                    metadata={"ip": context.ip},
                )
            )
        await self._uow.commit()
