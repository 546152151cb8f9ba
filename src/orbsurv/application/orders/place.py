"""PlaceOrder: the site's purchase path, open to the internet like the public forms.

The plan must be in the server's catalogue (an unknown plan is a 422 listing the plans, checked
before any rate limit is spent), and the order stores the catalogue's price: a price the client
sends is ignored, so a tampered cart cannot buy cheaper. Orders share the forms' abuse controls:
a rate-limit bucket per client IP, a honeypot answered like a success that stores nothing, and
the captcha port when one is configured.

Mail goes through the outbox, never inline. An address without an account gets a registration
link (a single-use token kept only as an HMAC, expiring after the policy's TTL); several orders
while that link is live share it instead of mailing a new one each time, which the database
decides in one statement. The link stands for the address's pending orders (its page shows the
newest, its sign-up completes them all), so once an operator has cancelled every one, the next
order replaces the link and mails the new one: the old token stops working, and the
``order_cancelled`` refusal's "place the order again for a new link" holds. An address that
already has an account gets a short "order received, sign in" notice instead (at most one per
address per ``notice_every_seconds``). The order is linked to that account at once only when the
account has verified the address: anyone may register an address they do not own, and must not
read the orders its owner places (``VerifyEmail`` links them once the mailbox is proved). The
answer is the same either way, so it reveals nothing about which addresses have accounts.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from orbsurv.application.identity.ports import RateLimiter, UserRepository
from orbsurv.application.leads.ports import CaptchaVerifier
from orbsurv.application.leads.submit import IntakePolicy
from orbsurv.application.orders.policy import OrderPolicy
from orbsurv.application.orders.ports import OrderRepository, RegistrationLinks
from orbsurv.application.ports import Clock, EmailComposer, Outbox, UnitOfWork
from orbsurv.domain.audit import budget_client
from orbsurv.domain.errors import Forbidden, RateLimited
from orbsurv.domain.identity import new_id
from orbsurv.domain.orders import Order, Plan


@dataclass(frozen=True, slots=True)
class OrderRequest:
    name: str
    email: str  # already validated and normalised
    plan_type: str  # any case
    ip: str | None
    user_agent: str | None
    honeypot: str | None = None
    captcha_token: str | None = None


@dataclass(frozen=True, slots=True)
class PlaceOrder:
    orders: OrderRepository
    links: RegistrationLinks
    users: UserRepository
    limiter: RateLimiter
    captcha: CaptchaVerifier
    outbox: Outbox
    composer: EmailComposer
    uow: UnitOfWork
    clock: Clock
    policy: OrderPolicy
    intake: IntakePolicy

    async def __call__(self, request: OrderRequest) -> Order:
        """The stored order (``pending``). Raises ``FieldInvalid`` (unknown plan),
        ``RateLimited``, ``Forbidden`` (``captcha_failed``)."""
        plan = self.policy.catalogue.find(request.plan_type)
        decision = await self.limiter.hit(
            f"form:orders:{budget_client(request.ip)}",
            limit=self.intake.form_limit,
            window_seconds=self.intake.form_window_seconds,
        )
        if not decision.allowed:
            raise RateLimited("Too many orders; try again later.", retry_after=decision.retry_after)
        now = self.clock.now()
        if request.honeypot:  # a bot: answer as if all went well, keep and mail nothing
            return self._order(request, plan, now, user_id=None)
        if self.intake.captcha_required and not await self.captcha.verify(
            request.captcha_token, request.ip
        ):
            raise Forbidden("The captcha was missing or not solved.", code="captcha_failed")
        account = await self.users.get_by_email(request.email)
        owner = account.id if account is not None and account.email_verified else None
        order = self._order(request, plan, now, user_id=owner)
        cancelled_at = None
        if account is None:  # this placement may issue or replace the address's link
            await self.orders.take_turn(request.email)
            cancelled_at = await self.orders.all_cancelled_at(request.email)
        await self.orders.add(order)
        if account is not None:
            notice = await self.limiter.hit(
                f"orders:notice:{request.email}",
                limit=1,
                window_seconds=self.policy.notice_every_seconds,
            )
            if notice.allowed:
                await self.outbox.enqueue(self.composer.order_received(request.email, plan.name))
        else:
            expires_at = now + timedelta(seconds=self.policy.link_ttl_seconds)
            token = await self.links.issue(
                request.email, now, expires_at, replace_issued_by=cancelled_at
            )
            if token is not None:
                await self.outbox.enqueue(
                    self.composer.order_registration(
                        request.email, self.policy.link(token), plan.name
                    )
                )
        await self.uow.commit()
        return order

    @staticmethod
    def _order(request: OrderRequest, plan: Plan, now: datetime, user_id: str | None) -> Order:
        return Order.place(
            order_id=new_id(),
            email=request.email,
            name=request.name,
            plan=plan,
            now=now,
            user_id=user_id,
            ip=request.ip,
            user_agent=request.user_agent,
        )
