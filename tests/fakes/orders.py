"""In-memory pre-order ports for unit tests: the same rules as the SQL adapters."""

from __future__ import annotations

import hashlib
import secrets
from dataclasses import replace
from datetime import datetime

from orbsurv.application.ports import OutgoingEmail
from orbsurv.domain.orders import LinkState, Order, OrderStatus, RegistrationLink
from orbsurv.domain.pagination import Cursor, CursorPage, Page, PageRequest


class FakeOrders:
    def __init__(self) -> None:
        self.rows: dict[str, Order] = {}
        self.verified_addresses: dict[str, str] = {}  # user id -> the address it verified

    async def add(self, order: Order) -> None:
        self.rows[order.id] = order

    async def get(self, order_id: str) -> Order | None:
        return self.rows.get(order_id)

    def _newest(self) -> list[Order]:
        return sorted(self.rows.values(), key=lambda o: (o.created_at, o.id), reverse=True)

    async def latest_pending_for_email(self, email: str) -> Order | None:
        return next(
            (o for o in self._newest() if o.email == email and o.status is OrderStatus.PENDING),
            None,
        )

    async def take_turn(self, email: str) -> None:
        return None  # the unit tests that use this fake place one order at a time

    async def all_cancelled_at(self, email: str) -> datetime | None:
        mine = [o for o in self.rows.values() if o.email == email]
        if any(o.status is OrderStatus.PENDING for o in mine):
            return None
        return max((o.updated_at for o in mine if o.status is OrderStatus.CANCELLED), default=None)

    async def complete_pending(self, email: str, user_id: str, now: datetime) -> int:
        pending = [
            o for o in self.rows.values() if o.email == email and o.status is OrderStatus.PENDING
        ]
        for order in pending:
            self.rows[order.id] = replace(
                order, status=OrderStatus.COMPLETED, user_id=user_id, updated_at=now
            )
        return len(pending)

    async def claim_unlinked(self, email: str, user_id: str, now: datetime) -> int:
        unlinked = [o for o in self.rows.values() if o.email == email and o.user_id is None]
        for order in unlinked:
            self.rows[order.id] = replace(order, user_id=user_id, updated_at=now)
        return len(unlinked)

    async def cancel(self, order_id: str, now: datetime) -> bool:
        order = self.rows.get(order_id)
        if order is None or order.status is OrderStatus.CANCELLED:
            return False
        self.rows[order_id] = order.cancelled(now)
        return True

    async def mine(self, user_id: str, page: PageRequest) -> Page[Order]:
        address = self.verified_addresses.get(user_id)
        found = [
            o
            for o in self._newest()
            if o.user_id == user_id or (o.user_id is None and address and o.email == address)
        ]
        return Page(
            items=found[page.offset : page.offset + page.page_size],
            total=len(found),
            page=page.page,
            page_size=page.page_size,
        )

    async def page(
        self, status: OrderStatus | None, cursor: Cursor | None, limit: int
    ) -> CursorPage[Order]:
        found = [o for o in self._newest() if status is None or o.status is status]
        return CursorPage(items=found[:limit], next_cursor=None)


class FakeRegistrationLinks:
    """One row per address, keyed by a hash of the token, as the SQL adapter keeps them."""

    def __init__(self) -> None:
        self.rows: dict[str, tuple[str, RegistrationLink]] = {}  # email -> (hash, link)
        self.issued_at: dict[str, datetime] = {}

    @staticmethod
    def _hash(token: str) -> str:
        return hashlib.sha256(token.encode()).hexdigest()

    async def issue(
        self,
        email: str,
        now: datetime,
        expires_at: datetime,
        replace_issued_by: datetime | None = None,
    ) -> str | None:
        current = self.rows.get(email)
        if (
            current is not None
            and current[1].state(now) is LinkState.LIVE
            and (replace_issued_by is None or self.issued_at[email] > replace_issued_by)
        ):
            return None
        token = secrets.token_urlsafe(32)
        self.rows[email] = (self._hash(token), RegistrationLink(email, expires_at, None))
        self.issued_at[email] = now
        return token

    async def find(self, token: str) -> RegistrationLink | None:
        wanted = self._hash(token)
        return next((link for h, link in self.rows.values() if h == wanted), None)

    async def consume(self, token: str, now: datetime) -> str | None:
        link = await self.find(token)
        if link is None or link.state(now) is not LinkState.LIVE:
            return None
        self.rows[link.email] = (self._hash(token), replace(link, used_at=now))
        return link.email


class FakeOutbox:
    def __init__(self) -> None:
        self.messages: list[OutgoingEmail] = []

    async def enqueue(self, message: OutgoingEmail) -> None:
        self.messages.append(message)
