"""Ports of the operator console (read side and exports)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Protocol

from orbsurv.domain.identity import Role, User
from orbsurv.domain.pagination import Cursor, CursorPage, Page, PageRequest


@dataclass(frozen=True, slots=True)
class AuditFilter:
    action: str | None = None
    actor_user_id: str | None = None
    ip: str | None = None
    since: datetime | None = None
    until: datetime | None = None


@dataclass(frozen=True, slots=True)
class UserDetail:
    user: User
    sessions: int
    last_login_at: datetime | None


class ConsoleReader(Protocol):
    async def totals(self) -> dict[str, int]: ...

    async def users(self, q: str | None, role: Role | None, page: PageRequest) -> Page[User]: ...

    async def user(self, user_id: str, now: datetime) -> UserDetail | None: ...

    async def lock_active(self, role: Role) -> int:
        """How many active users hold ``role``, their rows locked until the transaction ends:
        two concurrent demotions of two devs cannot both count the other one."""
        ...

    async def audit(
        self, where: AuditFilter, cursor: Cursor | None, limit: int
    ) -> CursorPage[dict[str, Any]]: ...

    async def alerts(
        self, only_unacknowledged: bool, severity: str | None, cursor: Cursor | None, limit: int
    ) -> CursorPage[dict[str, Any]]: ...

    async def acknowledge(self, alert_id: str, by: str, now: datetime) -> dict[str, Any] | None:
        """Mark acknowledged (once: a repeat keeps the first); ``None`` for an unknown id."""
        ...


class ConsoleViews(ConsoleReader, Protocol):
    """The console's list and detail pages: the same reads on a connection that never writes,
    so they never queue for a write lock (SQLite has one; its transactions that may write begin
    IMMEDIATE). ``lock_active`` and ``acknowledge`` belong to the use cases' ``ConsoleReader``."""


class SubmissionExport(Protocol):
    def columns(self, kind: str) -> list[str]:
        """The exported columns, in order (a header even for an empty list)."""
        ...

    def rows(self, kind: str) -> AsyncIterator[dict[str, Any]]:
        """Every row of a submission list, newest first, streamed from the database."""
        ...
