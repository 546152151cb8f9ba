"""Ports shared by every context."""

from __future__ import annotations

from collections.abc import AsyncIterable, AsyncIterator
from dataclasses import dataclass
from datetime import datetime
from typing import Protocol

from orbsurv.domain.audit import AuditEvent, SecurityAlert


class Clock(Protocol):
    def now(self) -> datetime:
        """The current time, timezone-aware UTC."""
        ...


class UnitOfWork(Protocol):
    """One transaction. Nothing is kept unless ``commit`` is called."""

    async def commit(self) -> None: ...

    async def rollback(self) -> None: ...


class DependencyNotReady(Exception):
    """The dependency answers but cannot serve yet; ``state`` says why and what fixes it.

    ``state`` is shown to operators (``orbsurv check``, ``/readyz``): it must name the gap and
    the command that closes it, and never carry a secret.
    """

    def __init__(self, state: str) -> None:
        super().__init__(state)
        self.state = state


class DependencyProbe(Protocol):
    """Answers whether one backing service can serve right now."""

    @property
    def name(self) -> str: ...

    async def check(self) -> None:
        """Return when the dependency answers; raise when it does not.

        Raises ``DependencyNotReady`` when it answers but is not usable as it is (a database
        that is not migrated); any other exception counts as unavailable.
        """
        ...


@dataclass(frozen=True, slots=True)
class StoredObject:
    key: str
    size: int


class ObjectStorage(Protocol):
    """Bytes by key. Writes stream; nothing reads a whole object into memory."""

    async def put(
        self, key: str, chunks: AsyncIterable[bytes], *, max_size: int | None = None
    ) -> StoredObject:
        """Store the chunks under ``key``.

        Past ``max_size`` bytes raise ``ObjectTooLarge`` and keep nothing."""
        ...

    def read(self, key: str, *, start: int = 0, end: int | None = None) -> AsyncIterator[bytes]:
        """Stream bytes ``start..end`` (inclusive) of ``key``.

        Raise ``ObjectNotFound`` when it is missing."""
        ...

    async def size(self, key: str) -> int | None:
        """The size of ``key`` in bytes, or ``None`` when it does not exist."""
        ...

    async def delete(self, key: str) -> None:
        """Remove ``key``; removing a missing key is not an error."""
        ...


@dataclass(frozen=True, slots=True)
class OutgoingEmail:
    to: str
    subject: str
    text: str
    html: str | None = None


class Mailer(Protocol):
    async def send(self, message: OutgoingEmail) -> None:
        """Deliver one message or raise ``MailDeliveryFailed``."""
        ...


class AuditLog(Protocol):
    async def record(self, event: AuditEvent) -> None:
        """Append one event, in the caller's transaction."""
        ...


class AlertSink(Protocol):
    async def raise_alert(self, alert: SecurityAlert) -> bool:
        """Store one alert in the caller's transaction; ``False`` when an equal one (same rule
        and subject) is still unacknowledged, so nothing new was stored."""
        ...


class Outbox(Protocol):
    async def enqueue(self, message: OutgoingEmail) -> None:
        """Queue one message in the caller's transaction; a worker delivers it later."""
        ...


@dataclass(frozen=True, slots=True)
class QueuedMessage:
    id: str
    message: OutgoingEmail
    attempts: int


class OutboxStore(Protocol):
    """The delivery side of the outbox, for the worker."""

    async def claim(self, now: datetime, lease_until: datetime, limit: int) -> list[QueuedMessage]:
        """Lease up to ``limit`` due messages; a leased message is invisible to other claims."""
        ...

    async def mark_sent(self, message_id: str, now: datetime) -> None: ...

    async def mark_failed(
        self, message_id: str, error: str, attempts: int, retry_at: datetime | None
    ) -> None:
        """Record a failed attempt; ``retry_at=None`` gives the message up (dead)."""
        ...


class EmailComposer(Protocol):
    """Fixed templates, text and HTML; nothing a stranger typed is echoed."""

    def verify_email(self, to: str, link: str) -> OutgoingEmail: ...

    def reset_password(self, to: str, link: str) -> OutgoingEmail: ...

    def confirm_new_email(self, to: str, link: str) -> OutgoingEmail: ...

    def email_change_notice(self, to: str) -> OutgoingEmail: ...

    def password_changed(self, to: str) -> OutgoingEmail: ...

    def form_acknowledgement(self, to: str, form: str) -> OutgoingEmail:
        """Thanks for a public form; names the form, echoes nothing that was submitted."""
        ...

    def order_registration(self, to: str, link: str, plan: str) -> OutgoingEmail:
        """A pre-order's single-use registration link; ``plan`` is the catalogue's name."""
        ...

    def order_received(self, to: str, plan: str) -> OutgoingEmail:
        """A pre-order from an address that has an account: sign in to see it."""
        ...
