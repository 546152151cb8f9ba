"""PlaceOrder and ViewOrderLink with in-memory ports: prices, links shared per address, notices."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from orbsurv.adapters.cache.memory import MemoryRateLimiter
from orbsurv.adapters.mail.composer import JinjaEmailComposer
from orbsurv.adapters.security.captcha import NoCaptcha
from orbsurv.application.leads.submit import IntakePolicy
from orbsurv.application.orders.place import OrderRequest, PlaceOrder
from orbsurv.application.orders.policy import OrderPolicy
from orbsurv.application.orders.registration import ViewOrderLink
from orbsurv.domain.errors import FieldInvalid, NotFound, RateLimited
from orbsurv.domain.identity import Role, User
from orbsurv.domain.orders import OrderStatus
from tests.fakes.identity import FakeClock, FakeUnitOfWork, FakeUserRepository
from tests.fakes.orders import FakeOrders, FakeOutbox, FakeRegistrationLinks

T0 = datetime(2026, 11, 30, 12, 0, tzinfo=UTC)
SIGNUP = "https://site.example/signup.html"


class World:
    def __init__(self) -> None:
        self.orders = FakeOrders()
        self.links = FakeRegistrationLinks()
        self.users = FakeUserRepository()
        self.limiter = MemoryRateLimiter()
        self.outbox = FakeOutbox()
        self.uow = FakeUnitOfWork()
        self.clock = FakeClock(T0)
        self.policy = OrderPolicy(signup_url=SIGNUP, link_ttl_seconds=3600)
        self.place = PlaceOrder(
            orders=self.orders,
            links=self.links,
            users=self.users,
            limiter=self.limiter,
            captcha=NoCaptcha(),
            outbox=self.outbox,
            composer=JinjaEmailComposer(),
            uow=self.uow,
            clock=self.clock,
            policy=self.policy,
            intake=IntakePolicy(form_limit=3),
        )
        self.view = ViewOrderLink(links=self.links, orders=self.orders, clock=self.clock)


def request(plan: str = "starter", email: str = "ada@example.com", **extra: str) -> OrderRequest:
    return OrderRequest(
        name="Ada", email=email, plan_type=plan, ip="198.51.100.7", user_agent="t", **extra
    )


def token_of(world: World, index: int = -1) -> str:
    return world.outbox.messages[index].text.split("token=", 1)[1].split()[0]


async def test_orders_share_one_live_link_and_it_shows_the_newest_order() -> None:
    world = World()
    first = await world.place(request("starter"))
    world.clock.advance(seconds=1)  # "newest" is by time; equal times fall back to a random id
    second = await world.place(request("Perimeter"))
    assert (first.price_cents, second.price_cents) == (29900, 64900)
    assert [m.to for m in world.outbox.messages] == ["ada@example.com"]
    assert world.uow.commits == 2
    token = token_of(world)
    assert SIGNUP + "?token=" in world.outbox.messages[0].text
    preview = await world.view(token)
    assert (preview.email, preview.order.id) == ("ada@example.com", second.id)


async def test_a_link_expires_and_a_new_order_mails_a_new_one() -> None:
    world = World()
    await world.place(request())
    token = token_of(world)
    world.clock.advance(seconds=3600)
    with pytest.raises(NotFound):
        await world.view(token)
    await world.place(request())
    assert len(world.outbox.messages) == 2
    assert token_of(world) != token
    assert (await world.view(token_of(world))).email == "ada@example.com"


async def test_after_every_order_is_cancelled_the_next_one_mails_a_new_link() -> None:
    world = World()
    first = await world.place(request("Perimeter"))
    old = token_of(world)
    world.clock.advance(seconds=1)
    await world.orders.cancel(first.id, world.clock.now())
    world.clock.advance(seconds=1)
    await world.place(request("starter"))
    assert len(world.outbox.messages) == 2
    assert "Starter plan" in world.outbox.messages[-1].text
    new = token_of(world)
    assert new != old
    with pytest.raises(NotFound):
        await world.view(old)
    assert (await world.view(new)).order.plan_type == "starter"
    world.clock.advance(seconds=1)
    await world.place(request("enterprise"))  # shares the new live link
    assert len(world.outbox.messages) == 2


def account(*, verified: bool) -> User:
    return User(
        id="u1",
        email="ada@example.com",
        password_hash="x",
        role=Role.USER,
        created_at=T0,
        updated_at=T0,
        email_verified=verified,
    )


async def test_an_account_holder_gets_a_notice_and_the_order_is_linked() -> None:
    world = World()
    await world.users.add(account(verified=True))
    order = await world.place(request())
    await world.place(request("enterprise"))
    assert order.user_id == "u1"
    assert order.status is OrderStatus.PENDING
    [notice] = world.outbox.messages  # one notice an hour, not one per order
    assert "token=" not in notice.text
    assert world.links.rows == {}


async def test_an_unverified_account_gets_the_notice_but_not_the_order() -> None:
    """Whoever registered the address has not proved the mailbox: the order stays unlinked
    until the address is verified (``VerifyEmail`` claims it)."""
    world = World()
    await world.users.add(account(verified=False))
    order = await world.place(request())
    assert order.user_id is None
    assert world.orders.rows[order.id].user_id is None
    [notice] = world.outbox.messages
    assert "token=" not in notice.text
    assert world.links.rows == {}


async def test_unknown_plans_spend_no_limit_and_the_limit_holds() -> None:
    world = World()
    for _ in range(5):
        with pytest.raises(FieldInvalid):
            await world.place(request("gold"))
    for n in range(3):
        await world.place(request(email=f"b{n}@example.com"))
    with pytest.raises(RateLimited):
        await world.place(request())
    assert len(world.orders.rows) == 3


async def test_a_honeypot_keeps_and_mails_nothing() -> None:
    world = World()
    order = await world.place(request(honeypot="http://spam"))
    assert order.status is OrderStatus.PENDING
    assert world.orders.rows == {}
    assert world.outbox.messages == []
    assert world.uow.commits == 0
