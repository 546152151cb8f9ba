"""Ports of marketing intake."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any, Protocol

from orbsurv.application.ports import OutgoingEmail
from orbsurv.domain.leads import ClientError, Lead, Submitter
from orbsurv.domain.pagination import Cursor, CursorPage


class LeadRepository(Protocol):
    async def add(self, lead: Lead, by: Submitter) -> None:
        """Store a contact, investor-interest or pilot-request submission (every one is kept).
        Raises ``ValueError`` for a waitlist sign-up: those go through the ``Waitlist`` port."""
        ...

    async def record_error(self, error: ClientError, by: Submitter) -> None:
        """Count one occurrence under the error's fingerprint."""
        ...

    async def claim_acknowledgement(self, email: str, now: datetime, every_seconds: int) -> bool:
        """``True`` (and remembered) when no acknowledgement went to ``email`` in the period."""
        ...

    async def page(
        self, kind: str, cursor: Cursor | None, limit: int
    ) -> CursorPage[dict[str, Any]]:
        """Newest first, by keyset; ``kind`` is a form name or ``client_errors``."""
        ...

    async def count(self, kind: str) -> int: ...


class SubmissionViews(LeadRepository, Protocol):
    """The console's submission lists: the same reads on a connection that never writes (no
    wait for a write lock; see ``ConsoleViews``)."""


class Waitlist(Protocol):
    async def join(
        self,
        signup: Lead,
        by: Submitter,
        *,
        acknowledgement: OutgoingEmail,
        every_seconds: int,
    ) -> bool:
        """Store a waitlist sign-up (one row per email; a repeat records its newer ``source``
        and ``name``) and, when no acknowledgement went to the address within
        ``every_seconds``, queue ``acknowledgement`` in the outbox: one transaction, committed
        when this returns. ``True`` for a new address, ``False`` for a repeat."""
        ...


class CaptchaVerifier(Protocol):
    async def verify(self, token: str | None, ip: str | None) -> bool:
        """Whether the token proves a human; ``False`` for a missing token."""
        ...


class AnalyticsStore(Protocol):
    async def append(
        self,
        events: Sequence[Any],
        *,
        actor_user_id: str | None,
        ip: str | None,
        user_agent: str | None,
        request_id: str | None,
        received_at: datetime,
    ) -> None: ...

    async def consent(
        self, *, client_id: str | None, user_id: str | None, cursor: Cursor | None, limit: int
    ) -> CursorPage[dict[str, Any]]:
        """Cookie-consent events (of one client or one user when given), newest first by
        (created_at, id): at most ``limit`` strictly after ``cursor``, and the next cursor
        when more remain."""
        ...


class ConsentViews(AnalyticsStore, Protocol):
    """The console's cookie-consent list on a connection that never writes."""
