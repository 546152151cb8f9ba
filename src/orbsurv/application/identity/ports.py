"""Ports of the identity context."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Protocol

from orbsurv.domain.identity import AccessClaims, Role, Scope, Session, User
from orbsurv.domain.pagination import Page, PageRequest


class UserRepository(Protocol):
    async def add(self, user: User) -> None:
        """Insert a new user; raise ``Conflict`` (``email_taken``, ``username_taken``)
        on a duplicate."""
        ...

    async def update(self, user: User) -> None:
        """Write the mutable fields of ``user`` back (never ``last_login_at``, which sign-in
        owns) if the row is still at ``user.version``, and advance ``user.version``. Raise
        ``Conflict`` (``concurrent_update``) when another write came in between: a change is
        never based on a stale read (lost update). A changed password hash, email, role or active
        state advances the account's credential generation in the same statement, which ends
        every action token issued before; raise ``Conflict`` (``email_taken``,
        ``username_taken``) on a duplicate."""
        ...

    async def record_login(
        self, user_id: str, verified_hash: str, now: datetime, new_hash: str | None = None
    ) -> bool:
        """Set ``last_login_at`` (and ``new_hash``, a rehash of the same password) only while
        the account is active and still holds ``verified_hash``; ``False`` when a password
        change or deactivation came in between (the change wins)."""
        ...

    async def claim_otp_step(self, user_id: str, secret: str, step: int) -> bool:
        """Spend TOTP time step ``step`` of ``secret`` in one conditional update: ``True`` for
        the one caller whose step is newer than the last one used (RFC 6238 section 5.2: a code
        is accepted once); ``False`` for every other, however concurrent."""
        ...

    async def get(self, user_id: str) -> User | None: ...

    async def get_by_email(self, email: str) -> User | None:
        """Look up by normalised email."""
        ...

    async def get_by_username(self, username: str) -> User | None:
        """Look up by username, case-insensitively."""
        ...

    async def list(self, page: PageRequest) -> Page[User]:
        """Newest first, ties broken by id."""
        ...


class PasswordHasher(Protocol):
    @property
    def dummy_hash(self) -> str:
        """A hash of nothing anyone knows, verified when the account does not exist so that
        unknown accounts take as long as known ones."""
        ...

    async def hash(self, password: str) -> str: ...

    async def verify(self, password_hash: str, password: str) -> bool: ...

    def needs_rehash(self, password_hash: str) -> bool: ...


@dataclass(frozen=True, slots=True)
class RefreshTokenRecord:
    token_hash: str
    session_id: str
    issued_at: datetime
    used_at: datetime | None
    child_hash: str | None
    sealed_child: str | None
    child_used: bool


class SessionRepository(Protocol):
    async def add(self, session: Session, refresh_hash: str) -> None: ...

    async def get(self, session_id: str) -> Session | None: ...

    async def list_live(self, user_id: str, now: datetime) -> list[Session]:
        """The user's sessions that are neither revoked nor expired, newest first."""
        ...

    async def rotate(
        self,
        refresh_hash: str,
        child_hash: str,
        sealed_child: str,
        now: datetime,
        expires_at: datetime,
        *,
        lifetime: timedelta | None = None,
        dev_lifetime: timedelta | None = None,
    ) -> Session | None:
        """Spend ``refresh_hash`` and issue ``child_hash`` in one conditional update. Returns the
        session when this call won; ``None`` when the token is unknown, spent, or its session is
        revoked, expired, or older than its absolute ``lifetime`` (``dev_lifetime`` for a dev-scope
        session) counted from its ``created_at``. The session's new expiry is the earlier of
        ``expires_at`` (the sliding one) and ``created_at`` + its lifetime, so no refresh extends
        a session past it. Of two concurrent calls with one token, at most one wins."""
        ...

    async def find_token(self, refresh_hash: str) -> RefreshTokenRecord | None: ...

    async def revoke_by_token(
        self, refresh_hash: str, now: datetime, reason: str, *, used_since: datetime
    ) -> Session | None:
        """Revoke the session ``refresh_hash`` belongs to, in one conditional update, if the
        token may still act for it: unused, or spent at or after ``used_since`` with its child
        unused (the refresh grace window), and the session live. Returns the revoked session,
        or ``None`` (nothing revoked) for an unknown or dead token or session."""
        ...

    async def revoke(self, session_id: str, now: datetime, reason: str) -> bool:
        """Revoke one live session; ``False`` when it was not live."""
        ...

    async def revoke_all(
        self, user_id: str, now: datetime, reason: str, *, keep: str | None = None
    ) -> list[str]:
        """Revoke every live session of the user but ``keep``; returns their ids."""
        ...


class SessionStatus(Protocol):
    """The source of truth for revocation, consulted when the cache cannot answer."""

    async def is_revoked(self, session_id: str) -> bool:
        """``True`` for a revoked or unknown session. Raise ``DependencyUnavailable`` when the
        database cannot answer: never guess."""
        ...


@dataclass(frozen=True, slots=True)
class Revocation:
    session_id: str
    revoked_at: datetime


class SessionRevocations(Protocol):
    """Recent revocations from the source of truth, to build and refresh a denylist mirror."""

    async def revoked_since(self, cutoff: datetime) -> list[Revocation]:
        """Every session whose ``revoked_at`` is at or after ``cutoff`` (timezone-aware UTC),
        in no particular order. Raise ``DependencyUnavailable`` when the database cannot
        answer."""
        ...


class TokenCodec(Protocol):
    def issue_access(
        self,
        *,
        user_id: str,
        session_id: str,
        role: Role,
        scope: Scope,
        amr: Sequence[str],
        now: datetime,
        not_after: datetime | None = None,
    ) -> tuple[str, int]:
        """A signed access token and its lifetime in seconds: the codec's lifetime, cut to end
        at ``not_after`` (its session's end) when that comes first (at least one second)."""
        ...

    def decode_access(self, token: str, now: datetime | None = None) -> AccessClaims:
        """Verify signature, algorithm, issuer, audience, type and time; raise ``InvalidToken``."""
        ...

    @property
    def access_ttl_seconds(self) -> int:
        """The lifetime of an access token, from ``iat`` to ``exp`` (seconds)."""
        ...

    @property
    def accepted_for_seconds(self) -> int:
        """The longest after its issue that an access token can still be accepted (seconds):
        its lifetime, the clock-skew leeway allowed past ``exp``, and one second for the
        whole-second ``iat``. A revocation must be remembered this long after it was made."""
        ...


class CacheUnavailable(Exception):
    """The shared cache did not answer; callers fall back to the source of truth."""


class TokenDenylist(Protocol):
    """A fast copy of recent revocations; the sessions table is the source of truth.

    Callers write the revocation to the database and commit it before calling
    ``revoke_sessions``: losing the cache loses speed, never a revocation."""

    async def revoke_sessions(self, session_ids: Sequence[str], ttl_seconds: int) -> None:
        """Make every access token of these (already committed) revoked sessions fail at once
        on every worker, for ``ttl_seconds`` (``TokenCodec.accepted_for_seconds``). Never
        raises for a cache fault: the other workers learn it from the database."""
        ...

    async def is_session_revoked(self, session_id: str) -> bool:
        """Raise ``CacheUnavailable`` when the answer cannot be trusted (the copy is not in
        step with the database); the caller then asks ``SessionStatus``."""
        ...


@dataclass(frozen=True, slots=True)
class RateDecision:
    allowed: bool
    count: int
    retry_after: int


class RateLimiter(Protocol):
    async def hit(
        self, key: str, *, limit: int, window_seconds: int, block_seconds: int | None = None
    ) -> RateDecision:
        """Count one event in a window that starts at the first event. ``allowed`` while the count
        is at most ``limit``; reaching ``limit`` with ``block_seconds`` extends the window to it."""
        ...

    async def peek(self, key: str, *, limit: int) -> RateDecision:
        """Without counting: ``allowed`` while fewer than ``limit`` events were counted."""
        ...

    async def peek_many(self, checks: Sequence[tuple[str, int]]) -> list[RateDecision]:
        """``peek`` for several (key, limit) pairs at once (one round trip where it matters)."""
        ...

    async def reset(self, key: str) -> None: ...

    async def give_back(self, key: str) -> None:
        """Uncount one event counted by ``hit`` (never below zero, the window unchanged): a
        guess spent before a check that proved right."""
        ...


class OtpVerifier(Protocol):
    def new_secret(self) -> str: ...

    def provisioning_uri(self, secret: str, account: str) -> str: ...

    def matching_step(self, secret: str, code: str, now: datetime) -> int | None:
        """The time step the code belongs to (current one, one before or after), or ``None``."""
        ...


class UserLookup(Protocol):
    """Reads one user outside any request transaction (only when the cache misses)."""

    async def get(self, user_id: str) -> User | None: ...


class ProfileCache(Protocol):
    """Users as the profile routes show them, cached in each worker.

    ``lookup`` returns the cached user (or ``None``) and a ticket; ``store`` keeps a user read
    after that lookup only if nothing was invalidated in between, so a slow read never re-caches
    a value that changed meanwhile. ``invalidate`` runs after the change is committed and reaches
    every worker.
    """

    def lookup(self, user_id: str) -> tuple[User | None, int]: ...

    def store(self, user: User, ticket: int) -> None: ...

    async def invalidate(self, user_ids: Sequence[str]) -> None: ...
