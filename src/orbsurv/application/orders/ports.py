"""Ports of the pre-order context."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import datetime
from typing import Any, Protocol

from orbsurv.domain.orders import Order, OrderStatus, RegistrationLink
from orbsurv.domain.pagination import Cursor, CursorPage, Page, PageRequest


class OrderRepository(Protocol):
    async def add(self, order: Order) -> None: ...

    async def get(self, order_id: str) -> Order | None: ...

    async def latest_pending_for_email(self, email: str) -> Order | None:
        """The newest order placed with this (normalised) address that is still pending
        (neither completed by a sign-up nor cancelled by an operator)."""
        ...

    async def take_turn(self, email: str) -> None:
        """Wait for, then hold until the transaction ends, the address's turn to place an
        order: placements for one address run one after another, so each reads the orders and
        link the one before it committed. (Two that both read "every order cancelled" would
        both replace the link, and the first one's mail would carry a dead link.)"""
        ...

    async def all_cancelled_at(self, email: str) -> datetime | None:
        """When the address's last pending order was cancelled: the newest ``updated_at`` of its
        cancelled orders while none is pending; ``None`` while one is pending or when none was
        ever cancelled. A live link issued before then opens nothing and may be replaced."""
        ...

    async def complete_pending(self, email: str, user_id: str, now: datetime) -> int:
        """Link every pending order of ``email`` to ``user_id`` and complete it, in one
        statement; returns how many orders changed."""
        ...

    async def claim_unlinked(self, email: str, user_id: str, now: datetime) -> int:
        """Link every order of ``email`` that no account holds yet to ``user_id``, whatever its
        status, in one statement; returns how many orders changed. Called once the account has
        proved the mailbox (a verified address)."""
        ...

    async def cancel(self, order_id: str, now: datetime) -> bool:
        """Cancel the order in one conditional statement; ``True`` when this call changed it
        (``False`` for an order already cancelled, or an unknown id)."""
        ...

    async def mine(self, user_id: str, page: PageRequest) -> Page[Order]:
        """The user's orders, newest first, ties broken by id: those linked to the account, and
        those of its address that no account holds while the account has verified the address
        (an order placed while the address was being verified is read as claimed, though the
        claim ran before the order was stored)."""
        ...

    async def page(
        self, status: OrderStatus | None, cursor: Cursor | None, limit: int
    ) -> CursorPage[Order]:
        """Every order (or those with ``status``), newest first, by keyset."""
        ...


class RegistrationLinks(Protocol):
    """Single-use registration links, one per address; only a keyed hash of a token is kept."""

    async def issue(
        self,
        email: str,
        now: datetime,
        expires_at: datetime,
        replace_issued_by: datetime | None = None,
    ) -> str | None:
        """A new token for ``email``, or ``None`` while the address already has a live link
        (unused and unexpired) issued after ``replace_issued_by``: a live link issued at or
        before that moment (when every order it stood for was cancelled) is replaced, and the
        old token stops working. Decided by the database in one statement on the address's
        row, so two concurrent orders from one address issue at most one token."""
        ...

    async def find(self, token: str) -> RegistrationLink | None:
        """The link this token opens, in whatever state; ``None`` for an unknown token."""
        ...

    async def consume(self, token: str, now: datetime) -> str | None:
        """Spend a live token in one conditional update and return its address; ``None`` when
        it is unknown, used or expired. Of two concurrent calls, at most one wins."""
        ...


class OrderExport(Protocol):
    def columns(self) -> list[str]:
        """The exported columns, in order (a header even when there is no order)."""
        ...

    def rows(self, status: OrderStatus | None = None) -> AsyncIterator[dict[str, Any]]:
        """Every order (only those in ``status`` when given), newest first, streamed from the
        database."""
        ...
