"""Alerting on the audit trail: every recorded event goes through the alert policy."""

from __future__ import annotations

from typing import Protocol

from orbsurv.application.ports import AlertSink, AuditLog, Outbox, OutgoingEmail
from orbsurv.domain.audit import AlertPolicy, AuditEvent, SecurityAlert, Severity


class AlertNotifier(Protocol):
    async def notify(self, alert: SecurityAlert) -> None:
        """Tell the operators (in the caller's transaction)."""
        ...


class OutboxAlertNotifier:
    """Mails each operator address through the outbox."""

    def __init__(self, outbox: Outbox, recipients: tuple[str, ...]) -> None:
        self._outbox = outbox
        self._recipients = recipients

    async def notify(self, alert: SecurityAlert) -> None:
        text = (
            f"{alert.message}\n\nRule: {alert.rule}\nSeverity: {alert.severity.value}\n"
            f"Subject: {alert.subject}\nRaised: {alert.raised_at.isoformat()}\n\n"
            "Acknowledge it in the operator console."
        )
        subject = f"[Orbsurv] {alert.severity.value} security alert: {alert.rule}"
        for recipient in self._recipients:
            await self._outbox.enqueue(OutgoingEmail(to=recipient, subject=subject, text=text))


class AlertingAuditLog:
    """An AuditLog that also evaluates the alert policy on each event it records: alerts are
    stored (de-duplicated by the sink) and high-severity ones are sent to the operators."""

    def __init__(
        self,
        trail: AuditLog,
        alerts: AlertSink,
        notifier: AlertNotifier,
        policy: AlertPolicy | None = None,
    ) -> None:
        self._trail = trail
        self._alerts = alerts
        self._notifier = notifier
        self._policy = policy or AlertPolicy()

    async def record(self, event: AuditEvent) -> None:
        await self._trail.record(event)
        for alert in self._policy.evaluate(event):
            if await self._alerts.raise_alert(alert) and alert.severity is Severity.HIGH:
                await self._notifier.notify(alert)
