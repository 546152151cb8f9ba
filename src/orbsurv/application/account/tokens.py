"""Following the links in mail: verify an address (or apply an email change), reset a password."""

from __future__ import annotations

from dataclasses import dataclass

from orbsurv.application.account.ports import ActionTokens
from orbsurv.application.identity.credentials import end_lockout
from orbsurv.application.identity.ports import (
    PasswordHasher,
    ProfileCache,
    RateLimiter,
    SessionRepository,
    UserRepository,
)
from orbsurv.application.identity.sessions import SessionIssuer
from orbsurv.application.orders.ports import OrderRepository
from orbsurv.application.ports import AuditLog, Clock, EmailComposer, Outbox, UnitOfWork
from orbsurv.domain.audit import AuditEvent, RequestContext
from orbsurv.domain.errors import InvalidInput
from orbsurv.domain.identity import TokenPurpose, User, check_password_policy

BAD_LINK = "This link is invalid, expired or already used."


@dataclass(frozen=True, slots=True)
class Verified:
    user: User
    changed_email: bool


@dataclass(frozen=True, slots=True)
class VerifyEmail:
    """Spend a verification or email-change token. Never accepts a password-reset token. An
    applied email change ends every other outstanding link of the account (the reset and
    verification links sent to the old address). The proved address's pre-orders that no
    account holds yet become the account's (``PlaceOrder`` links an order at once only to a
    verified account)."""

    tokens: ActionTokens
    users: UserRepository
    orders: OrderRepository
    profiles: ProfileCache
    audit: AuditLog
    uow: UnitOfWork
    clock: Clock

    async def __call__(self, token: str, context: RequestContext) -> Verified:
        now = self.clock.now()
        spent = await self.tokens.consume(
            (TokenPurpose.VERIFY_EMAIL, TokenPurpose.CHANGE_EMAIL), token, now
        )
        user = await self.users.get(spent.user_id) if spent else None
        if spent is None or user is None or not user.is_active:
            raise InvalidInput(BAD_LINK, code="invalid_token")
        changed = spent.purpose is TokenPurpose.CHANGE_EMAIL and spent.new_email is not None
        if changed:
            assert spent.new_email is not None
            user.email = spent.new_email
        user.email_verified = True
        user.updated_at = now
        await self.users.update(user)  # a taken address raises Conflict: nothing is kept
        await self.orders.claim_unlinked(user.email, user.id, now)
        await self.audit.record(
            AuditEvent(
                action="email.changed" if changed else "email.verified",
                occurred_at=now,
                context=context,
                actor_user_id=user.id,
                target_type="user",
                target_id=user.id,
            )
        )
        await self.uow.commit()
        await self.profiles.invalidate([user.id])
        return Verified(user=user, changed_email=changed)


@dataclass(frozen=True, slots=True)
class ResetPassword:
    """Set a new password with a reset token: burns it, ends every session and every other
    outstanding link of the account, does not sign in. A token issued before the password,
    email, role or active state last changed is refused like a used one (400 ``invalid_token``)."""

    tokens: ActionTokens
    users: UserRepository
    sessions: SessionRepository
    hasher: PasswordHasher
    limiter: RateLimiter
    issuer: SessionIssuer
    outbox: Outbox
    composer: EmailComposer
    audit: AuditLog
    uow: UnitOfWork
    clock: Clock

    async def __call__(self, token: str, new_password: str, context: RequestContext) -> None:
        check_password_policy(new_password, field="new_password")  # before the token is spent
        now = self.clock.now()
        spent = await self.tokens.consume((TokenPurpose.RESET_PASSWORD,), token, now)
        user = await self.users.get(spent.user_id) if spent else None
        if spent is None or user is None or not user.is_active:
            raise InvalidInput(BAD_LINK, code="invalid_token")
        user.password_hash = await self.hasher.hash(new_password)
        user.updated_at = now
        await self.users.update(user)
        revoked = await self.sessions.revoke_all(user.id, now, "password_reset")
        await self.outbox.enqueue(self.composer.password_changed(user.email))
        await self.audit.record(
            AuditEvent(
                action="password.reset",
                occurred_at=now,
                context=context,
                actor_user_id=user.id,
                target_type="user",
                target_id=user.id,
                metadata={"sessions_revoked": len(revoked)},
            )
        )
        await self.uow.commit()
        await self.issuer.revoke_in_cache(revoked)
        await end_lockout(self.limiter, user.id, context.ip)  # the lock ends with the reset
