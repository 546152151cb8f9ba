"""Analytics and cookie-consent events: bounded, append-only."""

from __future__ import annotations

import enum
import json
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from orbsurv.domain.errors import FieldInvalid

MAX_BATCH = 50
MAX_METADATA_KEYS = 20
MAX_METADATA_VALUE = 500
MAX_METADATA_BYTES = 4096


class EventType(enum.Enum):
    COOKIE_CONSENT = "cookie_consent"
    PAGE_VIEW = "page_view"
    USER_ACTIVITY = "user_activity"


CONSENT_ACTIONS = frozenset({"accepted", "declined"})


@dataclass(frozen=True, slots=True)
class AnalyticsEvent:
    event_type: EventType
    action: str
    page: str | None = None
    client_id: str | None = None
    occurred_at: datetime | None = None
    metadata: dict[str, Any] = field(default_factory=dict)

    def check(self, position: int | None) -> None:
        """Raise ``FieldInvalid`` naming the field as the client sent it: ``events[i].action``
        in a batch (``position`` i), ``action`` for a single event (``position`` ``None``)."""
        prefix = "" if position is None else f"events[{position}]."
        if self.event_type is EventType.COOKIE_CONSENT and self.action not in CONSENT_ACTIONS:
            raise FieldInvalid(
                f"{prefix}action", "must be 'accepted' or 'declined' for cookie_consent"
            )
        if len(self.metadata) > MAX_METADATA_KEYS:
            raise FieldInvalid(f"{prefix}metadata", f"has more than {MAX_METADATA_KEYS} keys")
        for key, value in self.metadata.items():
            if isinstance(value, dict | list):
                raise FieldInvalid(f"{prefix}metadata.{key}", "must be a string, number or boolean")
            if isinstance(value, str) and len(value) > MAX_METADATA_VALUE:
                raise FieldInvalid(
                    f"{prefix}metadata.{key}", f"is longer than {MAX_METADATA_VALUE} characters"
                )
        if len(json.dumps(self.metadata, ensure_ascii=False).encode()) > MAX_METADATA_BYTES:
            raise FieldInvalid(f"{prefix}metadata", f"is larger than {MAX_METADATA_BYTES} bytes")
