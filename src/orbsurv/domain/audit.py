"""The audit trail and security alerts: what happened, who did it, from where."""

from __future__ import annotations

import enum
import ipaddress
import uuid
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

METADATA_MAX_KEYS = 20
METADATA_MAX_VALUE = 500


@dataclass(frozen=True, slots=True)
class RequestContext:
    """Where a command came from: carried into every audit row."""

    ip: str | None = None
    user_agent: str | None = None
    request_id: str | None = None


IPV6_CLIENT_PREFIX = 64
# One end site is delegated a /56 or a /48 (RFC 6177): 256 or more /64 networks of its own.
IPV6_SITE_PREFIX = 56


def budget_client(ip: str | None, ipv6_prefix: int = IPV6_CLIENT_PREFIX) -> str:
    """The client a per-IP budget (rate limit, guess budget) counts for: an IPv4 address as it
    is (also written IPv4-mapped, ``::ffff:192.0.2.1``), an IPv6 address as its /64 network
    (``2001:db8::/64``), ``unknown`` without an address. One end site is handed a whole /64
    (RFC 6177, RFC 7421), so counting single IPv6 addresses would give one host a fresh budget
    for every request. ``ipv6_prefix`` widens that network where a key should count a whole
    site (``IPV6_SITE_PREFIX``). Text that is no address is returned unchanged."""
    if not ip:
        return "unknown"
    try:
        address = ipaddress.ip_address(ip)
    except ValueError:
        return ip
    if isinstance(address, ipaddress.IPv6Address):
        if address.ipv4_mapped is not None:
            return str(address.ipv4_mapped)
        return str(ipaddress.IPv6Network((address, ipv6_prefix), strict=False))
    return str(address)


def bounded(metadata: dict[str, Any]) -> dict[str, Any]:
    """At most 20 keys; strings cut to 500 characters; other values as their text."""
    kept: dict[str, Any] = {}
    for key, value in list(metadata.items())[:METADATA_MAX_KEYS]:
        if not isinstance(value, bool | int | float | type(None)):
            value = str(value)[:METADATA_MAX_VALUE]
        kept[str(key)[:64]] = value
    return kept


@dataclass(frozen=True, slots=True)
class AuditEvent:
    action: str
    occurred_at: datetime
    context: RequestContext
    actor_user_id: str | None = None
    target_type: str | None = None
    target_id: str | None = None
    metadata: dict[str, Any] = field(default_factory=dict)
    id: str = field(default_factory=lambda: str(uuid.uuid4()))


def malware_detected(
    at: datetime,
    context: RequestContext,
    *,
    actor_user_id: str | None,
    target_type: str,
    target_id: str,
    signature: str,
    file_name: str,
) -> AuditEvent:
    """The event every refused upload records: it raises the "malware found" alert."""
    return AuditEvent(
        "malware.detected",
        at,
        context,
        actor_user_id=actor_user_id,
        target_type=target_type,
        target_id=target_id,
        metadata={"signature": signature, "file_name": file_name},
    )


class Severity(enum.Enum):
    LOW = "low"
    MEDIUM = "medium"
    HIGH = "high"


@dataclass(frozen=True, slots=True)
class SecurityAlert:
    rule: str
    severity: Severity
    subject: str
    message: str
    raised_at: datetime
    metadata: dict[str, Any] = field(default_factory=dict)
    id: str = field(default_factory=lambda: str(uuid.uuid4()))


class AlertPolicy:
    """Which security alerts an audit event raises: pure rules, no I/O.

    Counting rules read counts the use case put on the event (``ip_failures`` and ``ip_limit``
    on a failed sign-in, ``burst`` and ``burst_limit`` on a refused console request). A refusal
    flood whose rows are capped (``access.denied.suppressed``) raises the burst alert again, so
    it stays raised while the flood lasts even if it was acknowledged."""

    def evaluate(self, event: AuditEvent) -> list[SecurityAlert]:
        meta = event.metadata
        at = event.occurred_at
        found: list[SecurityAlert] = []
        if event.action == "login.locked_out":
            subject = event.target_id or "unknown"
            found.append(
                SecurityAlert(
                    "account_lockout",
                    Severity.MEDIUM,
                    subject,
                    f"Repeated failed sign-ins locked {subject}.",
                    at,
                    {"ip": event.context.ip},
                )
            )
        if (
            event.action == "login.failed"
            and meta.get("ip_limit")
            and meta.get("ip_failures") == meta.get("ip_limit")
        ):
            ip = event.context.ip or "unknown"
            found.append(
                SecurityAlert(
                    "brute_force_ip",
                    Severity.HIGH,
                    ip,
                    f"{meta['ip_limit']} failed sign-ins from {ip} within a minute.",
                    at,
                )
            )
        if event.action == "refresh.reused":
            found.append(
                SecurityAlert(
                    "refresh_token_reuse",
                    Severity.HIGH,
                    event.actor_user_id or "unknown",
                    "A spent refresh token was presented again; the session was revoked.",
                    at,
                    {"session_id": event.target_id, "ip": event.context.ip},
                )
            )
        if (
            event.action == "user.changed"
            and meta.get("role") in {"admin", "dev"}
            and meta.get("from_role") != meta.get("role")
        ):
            found.append(
                SecurityAlert(
                    "role_elevated",
                    Severity.HIGH,
                    event.target_id or "unknown",
                    f"A user became {meta['role']}.",
                    at,
                    {"by": event.actor_user_id},
                )
            )
        if (
            event.action == "access.denied"
            and meta.get("burst_limit")
            and meta.get("burst") == meta.get("burst_limit")
        ) or (event.action == "access.denied.suppressed" and meta.get("burst_limit")):
            found.append(
                SecurityAlert(
                    "forbidden_burst",
                    Severity.MEDIUM,
                    event.actor_user_id or "unknown",
                    f"{meta['burst_limit']} refused console requests within a minute.",
                    at,
                    {"ip": event.context.ip},
                )
            )
        if event.action == "malware.detected":
            found.append(
                SecurityAlert(
                    "malware_found",
                    Severity.HIGH,
                    event.target_id or "unknown",
                    "An upload carried malware; nothing was published.",
                    at,
                )
            )
        return found
