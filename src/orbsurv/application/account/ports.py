"""Ports of the account context (verification, reset, portal)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Protocol

from orbsurv.domain.identity import TokenPurpose, UserSettings


@dataclass(frozen=True, slots=True)
class ActionToken:
    purpose: TokenPurpose
    user_id: str
    new_email: str | None
    expires_at: datetime


class ActionTokens(Protocol):
    async def issue(
        self,
        purpose: TokenPurpose,
        user_id: str,
        now: datetime,
        expires_at: datetime,
        new_email: str | None = None,
    ) -> str:
        """A new single-use token bound to the account's current credential generation; only a
        keyed hash of it is stored."""
        ...

    async def issue_within(
        self,
        purpose: TokenPurpose,
        user_id: str,
        now: datetime,
        expires_at: datetime,
        *,
        since: datetime,
        limit: int,
        new_email: str | None = None,
    ) -> str | None:
        """``issue`` (``new_email`` as there), unless ``limit`` tokens of ``purpose`` were
        already issued to the account since ``since`` *and* one of them is still live (unused,
        unexpired, of the current credential generation): then ``None``, since the mail that
        carried it is already in the owner's mailbox. Decided under a per-account lock, so
        concurrent calls never issue past the limit while a live token exists (at most one more
        per link lifetime otherwise)."""
        ...

    async def consume(
        self, purposes: Sequence[TokenPurpose], token: str, now: datetime
    ) -> ActionToken | None:
        """Spend the token if it is one of ``purposes``, unused, unexpired and issued under the
        account's current credential generation (no password, email, role or active-state change
        since, OWASP Forgot Password Cheat Sheet); else ``None``. One conditional update: of
        concurrent calls with one token, at most one gets it."""
        ...


class UserSettingsRepository(Protocol):
    async def get(self, user_id: str) -> UserSettings:
        """The stored settings, or the defaults."""
        ...

    async def merge(
        self, user_id: str, section: str, changes: dict[str, Any], now: datetime
    ) -> UserSettings:
        """Merge ``changes`` into the ``section`` (``notifications`` or ``automation``) under a
        row lock, so concurrent merges of different keys all keep their keys; the result."""
        ...

    async def set_timezone(self, user_id: str, timezone: str, now: datetime) -> None:
        """Set the time zone alone (the other settings are not written back)."""
        ...


@dataclass(frozen=True, slots=True)
class DashboardFigures:
    metrics: dict[str, int]
    recent_logs: list[dict[str, Any]]


class DashboardReader(Protocol):
    async def figures(self, user_id: str, email: str, now: datetime) -> DashboardFigures: ...


@dataclass(frozen=True, slots=True)
class MailRequestRecord:
    id: str
    kind: TokenPurpose
    email: str


class MailRequests(Protocol):
    """Requests for mail to an address, recorded on the request path and resolved by a worker,
    so the request costs the same whether or not the address has an account."""

    async def record(self, kind: TokenPurpose, email: str, now: datetime) -> None: ...

    async def claim(
        self, now: datetime, lease_until: datetime, limit: int
    ) -> list[MailRequestRecord]: ...

    async def done(self, request_id: str, now: datetime) -> None: ...
