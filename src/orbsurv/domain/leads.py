"""Marketing intake: what the public forms submit, and how browser crashes are grouped."""

from __future__ import annotations

import enum
import hashlib
from dataclasses import dataclass, field
from datetime import datetime


class Form(enum.Enum):
    WAITLIST = "waitlist"
    CONTACT = "contact"
    INVESTOR_INTEREST = "investor_interest"
    PILOT_REQUEST = "pilot_request"


@dataclass(frozen=True, slots=True)
class Lead:
    """One submission: ``fields`` are the form's own columns, already validated."""

    form: Form
    email: str
    fields: dict[str, str | None] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class ClientError:
    message: str
    stack: str | None = None
    url: str | None = None
    line: int | None = None
    column: int | None = None
    user_agent: str | None = None

    @property
    def fingerprint(self) -> str:
        """Message plus the first stack frame: one crash loop makes one row with a count."""
        first_frame = next(
            (line.strip() for line in (self.stack or "").splitlines() if line.strip()), ""
        )
        return hashlib.sha256(f"{self.message}\n{first_frame}".encode()).hexdigest()


@dataclass(frozen=True, slots=True)
class Submitter:
    ip: str | None
    user_agent: str | None
    at: datetime
