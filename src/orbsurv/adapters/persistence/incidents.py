"""``SqlAuditTrail``: one audit event in a short transaction of its own.

For use cases that run outside a request's transaction (a completion that streamed and scanned
gigabytes): the event goes through the alerting audit log, so the alert policy (for example
"malware found") sees it exactly as it sees events recorded inside a request.
"""

from __future__ import annotations

from sqlalchemy.ext.asyncio import AsyncEngine

from orbsurv.adapters.persistence.audit import SqlAlertSink, SqlAuditLog
from orbsurv.adapters.persistence.outbox import SqlOutbox
from orbsurv.application.alerts import AlertingAuditLog, OutboxAlertNotifier
from orbsurv.application.ports import Clock
from orbsurv.domain.audit import AuditEvent


class SqlAuditTrail:
    def __init__(self, engine: AsyncEngine, clock: Clock, alert_emails: tuple[str, ...]) -> None:
        self._engine = engine
        self._clock = clock
        self._alert_emails = alert_emails

    async def record(self, event: AuditEvent) -> None:
        async with self._engine.begin() as conn:
            notifier = OutboxAlertNotifier(SqlOutbox(conn, self._clock), self._alert_emails)
            log = AlertingAuditLog(SqlAuditLog(conn), SqlAlertSink(conn), notifier)
            await log.record(event)
