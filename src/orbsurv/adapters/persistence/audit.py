"""The audit trail and security alerts, appended in the caller's transaction."""

from __future__ import annotations

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncConnection

from orbsurv.adapters.persistence.tables import audit_events, security_alerts
from orbsurv.domain.audit import AuditEvent, SecurityAlert, bounded


class SqlAuditLog:
    def __init__(self, connection: AsyncConnection) -> None:
        self._conn = connection

    async def record(self, event: AuditEvent) -> None:
        context = event.context
        await self._conn.execute(
            audit_events.insert().values(
                id=event.id,
                occurred_at=event.occurred_at,
                action=event.action,
                actor_user_id=event.actor_user_id,
                target_type=event.target_type,
                target_id=event.target_id[:255] if event.target_id else None,
                ip=context.ip,
                user_agent=context.user_agent[:512] if context.user_agent else None,
                request_id=context.request_id,
                details=bounded(event.metadata),
            )
        )


class SqlAlertSink:
    def __init__(self, connection: AsyncConnection) -> None:
        self._conn = connection

    async def raise_alert(self, alert: SecurityAlert) -> bool:
        """De-duplicated: while an equal alert (same rule and subject) is unacknowledged, a new
        one is dropped and ``False`` returned."""
        open_one = await self._conn.execute(
            sa.select(security_alerts.c.id)
            .where(
                security_alerts.c.rule == alert.rule,
                security_alerts.c.subject == alert.subject[:255],
                security_alerts.c.acknowledged_at.is_(None),
            )
            .limit(1)
        )
        if open_one.first() is not None:
            return False
        await self._conn.execute(
            security_alerts.insert().values(
                id=alert.id,
                raised_at=alert.raised_at,
                rule=alert.rule,
                severity=alert.severity.value,
                subject=alert.subject[:255],
                message=alert.message[:500],
                details=bounded(alert.metadata),
            )
        )
        return True
