"""The audit trail and security alerts: what happened, who did it, from where."""

from __future__ import annotations

import enum
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
