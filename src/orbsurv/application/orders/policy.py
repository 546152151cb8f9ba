"""The pre-order policy, built by the composition root from the settings."""

from __future__ import annotations

from dataclasses import dataclass, field

from orbsurv.domain.orders import DEFAULT_PLANS, PlanCatalogue


@dataclass(frozen=True, slots=True)
class OrderPolicy:
    catalogue: PlanCatalogue = field(default_factory=lambda: PlanCatalogue.parse(DEFAULT_PLANS))
    link_ttl_seconds: int = 7 * 24 * 3600  # a registration link works this long, once
    signup_url: str = "http://127.0.0.1:8000/signup.html"  # the site's page the link opens
    notice_every_seconds: int = 3600  # "order received, sign in" mails per address, at most

    def link(self, token: str) -> str:
        joiner = "&" if "?" in self.signup_url else "?"
        return f"{self.signup_url}{joiner}token={token}"
