"""The alert rules: pure, one audit event in, the alerts it raises out."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pytest

from orbsurv.application.alerts import AlertingAuditLog
from orbsurv.domain.audit import AlertPolicy, AuditEvent, RequestContext, SecurityAlert, Severity

AT = datetime(2026, 9, 1, tzinfo=UTC)
CONTEXT = RequestContext(ip="203.0.113.7")


def event(action: str, **kwargs: Any) -> AuditEvent:
    return AuditEvent(action=action, occurred_at=AT, context=CONTEXT, **kwargs)


@pytest.mark.parametrize(
    ("audit", "rules"),
    [
        (
            event("login.locked_out", target_id="ada@example.com"),
            [("account_lockout", Severity.MEDIUM, "ada@example.com")],
        ),
        (
            event("login.failed", metadata={"ip_failures": 20, "ip_limit": 20}),
            [("brute_force_ip", Severity.HIGH, "203.0.113.7")],
        ),
        (event("login.failed", metadata={"ip_failures": 19, "ip_limit": 20}), []),
        (
            event("login.failed", metadata={"ip_failures": 21, "ip_limit": 20}),
            [],
        ),  # once, at the limit
        (
            event("refresh.reused", actor_user_id="u1", target_id="s1"),
            [("refresh_token_reuse", Severity.HIGH, "u1")],
        ),
        (
            event("user.changed", target_id="u2", metadata={"from_role": "user", "role": "dev"}),
            [("role_elevated", Severity.HIGH, "u2")],
        ),
        (event("user.changed", target_id="u2", metadata={"from_role": "dev", "role": "user"}), []),
        (
            event("user.changed", target_id="u2", metadata={"from_role": "admin", "role": "admin"}),
            [],
        ),
        (
            event("access.denied", actor_user_id="u3", metadata={"burst": 10, "burst_limit": 10}),
            [("forbidden_burst", Severity.MEDIUM, "u3")],
        ),
        (
            event(
                "access.denied.suppressed",
                actor_user_id="u3",
                metadata={"counted": 40, "suppressed": 20, "burst_limit": 10},
            ),
            [("forbidden_burst", Severity.MEDIUM, "u3")],
        ),  # a capped flood keeps the alert raised (again, if it was acknowledged)
        (
            event("malware.detected", target_id="upload-1"),
            [("malware_found", Severity.HIGH, "upload-1")],
        ),
        (event("login.succeeded"), []),
    ],
)
def test_rules(audit: AuditEvent, rules: list[tuple[str, Severity, str]]) -> None:
    raised = AlertPolicy().evaluate(audit)
    assert [(a.rule, a.severity, a.subject) for a in raised] == rules


class Trail:
    def __init__(self) -> None:
        self.events: list[AuditEvent] = []

    async def record(self, audit: AuditEvent) -> None:
        self.events.append(audit)


class Sink:
    """De-duplicates like the SQL sink: one open alert per rule and subject."""

    def __init__(self) -> None:
        self.open: set[tuple[str, str]] = set()

    async def raise_alert(self, alert: SecurityAlert) -> bool:
        key = (alert.rule, alert.subject)
        if key in self.open:
            return False
        self.open.add(key)
        return True


class Notifier:
    def __init__(self) -> None:
        self.sent: list[str] = []

    async def notify(self, alert: SecurityAlert) -> None:
        self.sent.append(alert.rule)


async def test_high_alerts_notify_once_while_open() -> None:
    trail, sink, notifier = Trail(), Sink(), Notifier()
    log = AlertingAuditLog(trail, sink, notifier)
    reuse = event("refresh.reused", actor_user_id="u1", target_id="s1")
    await log.record(reuse)
    await log.record(reuse)
    await log.record(event("login.locked_out", target_id="ada@example.com"))  # medium: no mail
    assert len(trail.events) == 3
    assert notifier.sent == ["refresh_token_reuse"]
    assert sink.open == {("refresh_token_reuse", "u1"), ("account_lockout", "ada@example.com")}


@pytest.mark.parametrize(
    ("count", "due"),
    [
        (10, False),
        (20, False),
        (21, False),
        (30, False),
        (40, True),
        (60, False),
        (80, True),
        (160, True),
        (320, True),
        (480, False),
    ],
)
def test_a_capped_flood_is_summarised_each_time_it_doubles(count: int, due: bool) -> None:
    from orbsurv.application.console.denials import milestone

    assert milestone(count, 20) is due
