"""Orders after they are placed: the buyer's own list, the console's list and cancellation."""

from __future__ import annotations

from dataclasses import dataclass

from orbsurv.application.orders.ports import OrderRepository
from orbsurv.application.ports import AuditLog, Clock, UnitOfWork
from orbsurv.domain.audit import AuditEvent, RequestContext
from orbsurv.domain.errors import NotFound
from orbsurv.domain.identity import Principal
from orbsurv.domain.orders import Order, OrderStatus
from orbsurv.domain.pagination import Cursor, CursorPage, Page, PageRequest


@dataclass(frozen=True, slots=True)
class ListMyOrders:
    orders: OrderRepository

    async def __call__(self, principal: Principal, page: PageRequest) -> Page[Order]:
        """Orders linked to the caller's account (placed while signed up with a verified address,
        completed by the registration link, or claimed when the address was verified) and the
        unlinked orders of its verified address, newest first."""
        return await self.orders.mine(principal.user_id, page)


@dataclass(frozen=True, slots=True)
class ListOrders:
    orders: OrderRepository

    async def __call__(
        self, status: OrderStatus | None, cursor: Cursor | None, limit: int
    ) -> CursorPage[Order]:
        return await self.orders.page(status, cursor, limit)


@dataclass(frozen=True, slots=True)
class CancelOrder:
    """An operator cancels an order; idempotent, audited only when something changed."""

    orders: OrderRepository
    audit: AuditLog
    uow: UnitOfWork
    clock: Clock

    async def __call__(self, operator: Principal, order_id: str, context: RequestContext) -> Order:
        """The order as it now is; ``NotFound`` for an unknown id."""
        now = self.clock.now()
        changed = await self.orders.cancel(order_id, now)
        order = await self.orders.get(order_id)
        if order is None:
            raise NotFound("No order has this id.")
        if changed:
            await self.audit.record(
                AuditEvent(
                    action="order.cancelled",
                    occurred_at=now,
                    context=context,
                    actor_user_id=operator.user_id,
                    target_type="order",
                    target_id=order_id,
                    metadata={"plan_type": order.plan_type, "email": order.email},
                )
            )
        await self.uow.commit()
        return order
