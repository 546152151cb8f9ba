from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime, timedelta

from orbsurv.domain.errors import Conflict
from orbsurv.domain.identity import User
from orbsurv.domain.pagination import Page, PageRequest


class FakeClock:
    def __init__(self, start: datetime | None = None) -> None:
        self.current = start or datetime(2026, 1, 1, tzinfo=UTC)

    def now(self) -> datetime:
        return self.current

    def advance(self, **kwargs: float) -> None:
        self.current += timedelta(**kwargs)


class FakeUnitOfWork:
    def __init__(self) -> None:
        self.commits = 0
        self.rollbacks = 0

    async def commit(self) -> None:
        self.commits += 1

    async def rollback(self) -> None:
        self.rollbacks += 1


class FakeUserRepository:
    def __init__(self) -> None:
        self.rows: dict[str, User] = {}

    async def add(self, user: User) -> None:
        if any(u.email == user.email for u in self.rows.values()):
            raise Conflict("An account with this email already exists.", code="email_taken")
        self.rows[user.id] = replace(user)

    async def update(self, user: User) -> None:
        stored = self.rows.get(user.id)
        if stored is None or stored.version != user.version:
            raise Conflict("changed meanwhile", code="concurrent_update")
        user.version += 1
        self.rows[user.id] = replace(user, last_login_at=stored.last_login_at)

    async def record_login(
        self, user_id: str, verified_hash: str, now: datetime, new_hash: str | None = None
    ) -> bool:
        stored = self.rows.get(user_id)
        if stored is None or not stored.is_active or stored.password_hash != verified_hash:
            return False
        stored.last_login_at = now
        stored.password_hash = new_hash or verified_hash
        return True

    async def claim_otp_step(self, user_id: str, secret: str, step: int) -> bool:
        stored = self.rows.get(user_id)
        if stored is None or not stored.otp_enabled or stored.otp_secret != secret:
            return False
        if stored.otp_last_step is not None and stored.otp_last_step >= step:
            return False
        stored.otp_last_step = step
        stored.version += 1
        return True

    async def get(self, user_id: str) -> User | None:
        return self.rows.get(user_id)

    async def get_by_username(self, username: str) -> User | None:
        return next((u for u in self.rows.values() if u.username == username.lower()), None)

    async def get_by_email(self, email: str) -> User | None:
        return next((u for u in self.rows.values() if u.email == email), None)

    async def list(self, page: PageRequest) -> Page[User]:
        ordered = sorted(self.rows.values(), key=lambda u: (u.created_at, u.id), reverse=True)
        return Page(
            items=ordered[page.offset : page.offset + page.page_size],
            total=len(ordered),
            page=page.page,
            page_size=page.page_size,
        )


class FakePasswordHasher:
    """Reversible on purpose: unit tests need speed, not secrecy."""

    dummy_hash = "plain$\x00"

    async def hash(self, password: str) -> str:
        return f"plain${password}"

    async def verify(self, password_hash: str, password: str) -> bool:
        return password_hash == f"plain${password}"

    def needs_rehash(self, password_hash: str) -> bool:
        return False


class CountingHasher(FakePasswordHasher):
    """Records which hashes were verified, and can ask for a rehash."""

    def __init__(self, *, rehash: bool = False) -> None:
        self.verified: list[str] = []
        self.rehash = rehash

    async def verify(self, password_hash: str, password: str) -> bool:
        self.verified.append(password_hash)
        return await super().verify(password_hash, password)

    def needs_rehash(self, password_hash: str) -> bool:
        return self.rehash and not password_hash.startswith("plain$v2$")

    async def hash(self, password: str) -> str:
        return f"plain$v2${password}" if self.rehash else await super().hash(password)


class Recorder:
    """An AuditLog and an AlertSink at once."""

    def __init__(self) -> None:
        self.events: list[object] = []
        self.alerts: list[object] = []

    async def record(self, event: object) -> None:
        self.events.append(event)

    async def raise_alert(self, alert: object) -> None:
        self.alerts.append(alert)
