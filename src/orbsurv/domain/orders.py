"""Pre-orders: the plans the site sells before launch, and the orders placed for them.

The plan catalogue belongs to the server: an order always carries the catalogue's price and
currency, whatever price the browser showed or sent. Prices are integers in minor units (cents),
so no amount is ever a binary fraction.
"""

from __future__ import annotations

import enum
import re
from dataclasses import dataclass, replace
from datetime import datetime
from decimal import Decimal, InvalidOperation

from orbsurv.domain.errors import FieldInvalid

PLAN_KEY = re.compile(r"^[a-z][a-z0-9_-]{0,31}$")
CURRENCY = re.compile(r"^[A-Z]{3}$")  # ISO 4217 alphabetic code
DEFAULT_PLANS = "starter:Starter=299,perimeter:Perimeter=649,enterprise:Enterprise=0"


class OrderStatus(enum.Enum):
    """``pending`` until the buyer's account exists, then ``completed``; an operator may cancel."""

    PENDING = "pending"
    COMPLETED = "completed"
    CANCELLED = "cancelled"


@dataclass(frozen=True, slots=True)
class Plan:
    key: str  # lower case: starter, perimeter, enterprise
    name: str
    price_cents: int  # per month, in minor units of the catalogue's currency; 0 = priced on quote
    currency: str


@dataclass(frozen=True, slots=True)
class PlanCatalogue:
    plans: tuple[Plan, ...]

    @classmethod
    def parse(cls, spec: str, currency: str = "USD") -> PlanCatalogue:
        """Read ``key[:Name]=price,...`` (price in major units, at most two decimals, >= 0).

        Raises ``ValueError`` naming the bad entry: an unknown shape, a duplicate key, a
        negative or over-precise price, a currency that is not three capital letters."""
        if not CURRENCY.match(currency):
            raise ValueError(f"{currency!r} is not a three-letter currency code like USD")
        plans: list[Plan] = []
        for entry in (part.strip() for part in spec.split(",")):
            if not entry:
                continue
            head, sep, amount = entry.partition("=")
            key, _, name = head.partition(":")
            key = key.strip().lower()
            if not sep or not PLAN_KEY.match(key):
                raise ValueError(f"{entry!r} is not key[:Name]=price")
            if any(plan.key == key for plan in plans):
                raise ValueError(f"plan {key!r} is listed twice")
            plans.append(Plan(key, name.strip() or key.title(), _cents(entry, amount), currency))
        if not plans:
            raise ValueError("the catalogue lists no plan")
        return cls(tuple(plans))

    @property
    def keys(self) -> tuple[str, ...]:
        return tuple(plan.key for plan in self.plans)

    def find(self, plan_type: str, *, field: str = "plan_type") -> Plan:
        """The plan named ``plan_type`` in any case; ``FieldInvalid`` listing the plans."""
        wanted = plan_type.strip().lower()
        for plan in self.plans:
            if plan.key == wanted:
                return plan
        raise FieldInvalid(field, f"must be one of: {', '.join(self.keys)}")


def _cents(entry: str, amount: str) -> int:
    try:
        value = Decimal(amount.strip())
    except InvalidOperation:
        raise ValueError(f"{entry!r}: the price is not a number") from None
    cents = value * 100
    if not value.is_finite() or value < 0 or cents != cents.to_integral_value():
        raise ValueError(f"{entry!r}: the price must be >= 0 with at most two decimals")
    return int(cents)


@dataclass(frozen=True, slots=True)
class Order:
    id: str
    email: str  # normalised
    name: str
    plan_type: str
    price_cents: int
    currency: str
    status: OrderStatus
    created_at: datetime
    updated_at: datetime
    user_id: str | None = None
    ip: str | None = None
    user_agent: str | None = None

    @classmethod
    def place(
        cls,
        *,
        order_id: str,
        email: str,
        name: str,
        plan: Plan,
        now: datetime,
        user_id: str | None = None,
        ip: str | None = None,
        user_agent: str | None = None,
    ) -> Order:
        """A new pending order at the catalogue's price (the client's price plays no part)."""
        return cls(
            id=order_id,
            email=email,
            name=name,
            plan_type=plan.key,
            price_cents=plan.price_cents,
            currency=plan.currency,
            status=OrderStatus.PENDING,
            created_at=now,
            updated_at=now,
            user_id=user_id,
            ip=ip,
            user_agent=user_agent,
        )

    def cancelled(self, now: datetime) -> Order:
        return replace(self, status=OrderStatus.CANCELLED, updated_at=now)


class LinkState(enum.Enum):
    """Where a registration link stands: only a ``live`` one opens anything."""

    LIVE = "live"
    USED = "used"
    EXPIRED = "expired"


@dataclass(frozen=True, slots=True)
class RegistrationLink:
    email: str
    expires_at: datetime
    used_at: datetime | None

    def state(self, now: datetime) -> LinkState:
        if self.used_at is not None:
            return LinkState.USED
        if now >= self.expires_at:
            return LinkState.EXPIRED
        return LinkState.LIVE
