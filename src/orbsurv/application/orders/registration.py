"""Following the registration link of a pre-order: see what it is for, then open the account.

The link proves the mailbox, so the new account's address counts as verified. Spending the token
is one conditional update (``used_at IS NULL AND expires_at > now``): of two concurrent sign-ups
with one link, exactly one wins, and the other is told the link was used. The account row goes in
under the unique index on ``users.email``, so an address registered meanwhile is a clean 409
``email_taken`` and the whole transaction (the spent token included) rolls back. Token checks
come before the password is hashed, so a made-up token costs one indexed read; that read's
transaction ends before hashing, so no lock is held while the hasher works.

A link stands for every pending order of its address: the preview shows the newest, the sign-up
completes them all. It opens an account only while one is pending: once an operator has cancelled
them all, the preview is 404 and the sign-up 400 ``order_cancelled``; the address's next order
mails a new link and the old token is then unknown (``invalid_token``), never revived. The sign-up
completes the pending orders in its own transaction and refuses (rolling back the account and
the spent token) when a cancellation committed meanwhile left none.
"""

from __future__ import annotations

from dataclasses import dataclass

from orbsurv.application.identity.ports import PasswordHasher, UserRepository
from orbsurv.application.identity.sessions import IssuedTokens, SessionIssuer
from orbsurv.application.orders.ports import OrderRepository, RegistrationLinks
from orbsurv.application.ports import AuditLog, Clock, UnitOfWork
from orbsurv.domain.audit import AuditEvent, RequestContext
from orbsurv.domain.errors import InvalidInput, NotFound
from orbsurv.domain.identity import Role, Scope, User, check_password_policy, new_id
from orbsurv.domain.orders import LinkState, Order

UNKNOWN_LINK = "This registration link is not valid; use the link from your latest order email."
LINK_ERRORS = {
    LinkState.USED: ("This registration link was already used; sign in instead.", "token_used"),
    LinkState.EXPIRED: (
        "This registration link has expired; place the order again for a new one.",
        "token_expired",
    ),
}
MAX_TOKEN_LENGTH = 256


def order_cancelled() -> InvalidInput:
    return InvalidInput(
        "The order behind this link was cancelled; place the order again for a new link.",
        code="order_cancelled",
    )


def link_error(state: LinkState | None) -> InvalidInput:
    """400 with a code a client can act on: ``token_used``, ``token_expired``, ``invalid_token``."""
    if state is None or state is LinkState.LIVE:
        return InvalidInput(UNKNOWN_LINK, code="invalid_token")
    message, code = LINK_ERRORS[state]
    return InvalidInput(message, code=code)


@dataclass(frozen=True, slots=True)
class OrderPreview:
    email: str
    order: Order


@dataclass(frozen=True, slots=True)
class ViewOrderLink:
    """What a live link is for; ``NotFound`` for any other token, so nothing is enumerable."""

    links: RegistrationLinks
    orders: OrderRepository
    clock: Clock

    async def __call__(self, token: str) -> OrderPreview:
        link = await self.links.find(token) if 0 < len(token) <= MAX_TOKEN_LENGTH else None
        if link is None or link.state(self.clock.now()) is not LinkState.LIVE:
            raise NotFound("No order waits behind this link.")
        order = await self.orders.latest_pending_for_email(link.email)
        if order is None:
            raise NotFound("No order waits behind this link.")
        return OrderPreview(email=link.email, order=order)


@dataclass(frozen=True, slots=True)
class OrderSignUp:
    token: str
    password: str
    context: RequestContext
    name: str | None = None
    organization: str | None = None


@dataclass(frozen=True, slots=True)
class OrderRegistration:
    user: User
    tokens: IssuedTokens
    orders_completed: int


@dataclass(frozen=True, slots=True)
class RegisterFromOrder:
    links: RegistrationLinks
    orders: OrderRepository
    users: UserRepository
    hasher: PasswordHasher
    issuer: SessionIssuer
    audit: AuditLog
    uow: UnitOfWork
    clock: Clock

    async def __call__(self, command: OrderSignUp) -> OrderRegistration:
        """Raises ``FieldInvalid`` (password policy), ``InvalidInput`` (``invalid_token``,
        ``token_used``, ``token_expired``, ``order_cancelled``), ``Conflict``
        (``email_taken``)."""
        check_password_policy(command.password)
        if not 0 < len(command.token) <= MAX_TOKEN_LENGTH:
            raise link_error(None)
        found = await self.links.find(command.token)
        pending = await self.orders.latest_pending_for_email(found.email) if found else None
        await self.uow.rollback()  # hash outside any transaction (on SQLite: the write lock)
        if found is None or found.state(self.clock.now()) is not LinkState.LIVE:
            raise link_error(found.state(self.clock.now()) if found else None)
        if pending is None:
            raise order_cancelled()
        password_hash = await self.hasher.hash(command.password)
        now = self.clock.now()
        email = await self.links.consume(command.token, now)
        if email is None:  # spent or expired since it was read: tell which
            again = await self.links.find(command.token)
            raise link_error(again.state(now) if again else None)
        name = command.name if command.name is not None else pending.name
        user = User(
            id=new_id(),
            email=email,
            password_hash=password_hash,
            role=Role.USER,
            created_at=now,
            updated_at=now,
            name=name,
            organization=command.organization,
            email_verified=True,  # the link in the mail proved the mailbox
        )
        await self.users.add(user)  # the unique index decides a race: Conflict email_taken
        completed = await self.orders.complete_pending(email, user.id, now)
        if not completed:  # cancelled since it was read: nothing of this call is committed
            raise order_cancelled()
        await self.audit.record(
            AuditEvent(
                action="user.registered",
                occurred_at=now,
                context=command.context,
                actor_user_id=user.id,
                target_type="user",
                target_id=user.id,
                metadata={"via": "order", "orders_completed": completed},
            )
        )
        tokens = await self.issuer.open(
            user, scope=Scope.USER, amr=("pwd",), context=command.context
        )
        await self.uow.commit()
        return OrderRegistration(user=user, tokens=tokens, orders_completed=completed)
