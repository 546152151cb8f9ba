"""The identity policy: lifetimes, lockout thresholds and switches, from the composition root."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class IdentityPolicy:
    refresh_ttl_seconds: int = 30 * 24 * 3600
    refresh_reuse_grace_seconds: int = 10
    account_failure_limit: int = 5  # failed logins per account ...
    account_failure_window_seconds: int = 15 * 60  # ... within this window ...
    account_lock_seconds: int = 15 * 60  # ... lock the account's password logins this long
    ip_failure_limit: int = 20  # failed logins per client IP ...
    ip_failure_window_seconds: int = 60  # ... per minute
    require_verified_email: bool = False
    dev_master_otp: str | None = None  # development only; the settings refuse it elsewhere
