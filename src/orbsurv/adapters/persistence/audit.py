"""The audit trail and security alerts, appended in the caller's transaction."""

from __future__ import annotations

from sqlalchemy.dialects import postgresql, sqlite
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
        one is dropped and ``False`` returned. One statement decides, against the partial unique
        index on open alerts, so concurrent equal alerts store (and mail) one."""
        dialect = postgresql if self._conn.dialect.name == "postgresql" else sqlite
        statement = (
            dialect.insert(security_alerts)
            .values(
                id=alert.id,
                raised_at=alert.raised_at,
                rule=alert.rule,
                severity=alert.severity.value,
                subject=alert.subject[:255],
                message=alert.message[:500],
                details=bounded(alert.metadata),
            )
            .on_conflict_do_nothing(
                index_elements=["rule", "subject"],
                index_where=security_alerts.c.acknowledged_at.is_(None),
            )
            .returning(security_alerts.c.id)
        )
        return (await self._conn.execute(statement)).first() is not None
