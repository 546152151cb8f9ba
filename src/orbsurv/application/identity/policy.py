"""The identity policy: lifetimes, lockout thresholds and switches, from the composition root."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta

from orbsurv.domain.identity import Scope


@dataclass(frozen=True, slots=True)
class IdentityPolicy:
    refresh_ttl_seconds: int = 30 * 24 * 3600
    refresh_reuse_grace_seconds: int = 10
    session_absolute_seconds: int = 720 * 3600  # no refresh extends a session past this age
    dev_session_reauth_seconds: int = 12 * 3600  # a dev-scope session ends at this age
    account_failure_limit: int = 5  # failed logins per account from one client ...
    account_failure_window_seconds: int = 15 * 60  # ... within this window ...
    account_lock_seconds: int = 15 * 60  # ... lock the account's logins from it this long
    account_ceiling_limit: int = 100  # failed logins per account from all clients in the window
    ip_failure_limit: int = 20  # failed logins per client IP ...
    ip_failure_window_seconds: int = 60  # ... per minute
    require_verified_email: bool = False
    dev_master_otp: str | None = None  # development only; the settings refuse it elsewhere

    def session_lifetime(self, scope: Scope) -> timedelta:
        """The absolute lifetime of a session of ``scope`` from its sign-in: a dev-scope session
        lives at most ``dev_session_reauth_seconds``, every session at most
        ``session_absolute_seconds`` (OWASP Session Management Cheat Sheet, absolute timeout)."""
        seconds = self.session_absolute_seconds
        if scope is Scope.DEV:
            seconds = min(seconds, self.dev_session_reauth_seconds)
        return timedelta(seconds=seconds)
