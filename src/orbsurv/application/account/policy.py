from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class AccountPolicy:
    base_url: str = "http://127.0.0.1:8000"
    verify_ttl_seconds: int = 24 * 3600
    reset_ttl_seconds: int = 30 * 60
    # verification, reset or email-change mails per account (while a link lives) ...
    per_account_mails: int = 5
    per_ip_limit: int = 20  # ... and requests per client IP ...
    mail_window_seconds: int = 3600  # ... per hour
    command_center_url: str = "/admin"

    def link(self, path: str, token: str) -> str:
        return f"{self.base_url.rstrip('/')}/api/v1{path}?token={token}"
