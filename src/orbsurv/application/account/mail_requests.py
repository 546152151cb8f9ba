"""Requests that send mail to an address: verification (resend) and password reset.

Both answer the same whether or not the address has an account, and both are rate limited per
address and per client IP. The mail itself goes through the outbox, never inline.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta

from orbsurv.application.account.policy import AccountPolicy
from orbsurv.application.account.ports import ActionTokens
from orbsurv.application.identity.ports import RateLimiter, UserRepository
from orbsurv.application.ports import AuditLog, Clock, EmailComposer, Outbox, UnitOfWork
from orbsurv.domain.audit import AuditEvent, RequestContext
from orbsurv.domain.errors import RateLimited
from orbsurv.domain.identity import TokenPurpose, User, normalise_email


@dataclass(frozen=True, slots=True)
class MailRequest:
    email: str
    context: RequestContext


class VerificationMailer:
    """Issues a verification token and queues the mail (used by registration and resend)."""

    def __init__(
        self,
        tokens: ActionTokens,
        outbox: Outbox,
        composer: EmailComposer,
        clock: Clock,
        policy: AccountPolicy,
    ) -> None:
        self._tokens = tokens
        self._outbox = outbox
        self._composer = composer
        self._clock = clock
        self._policy = policy

    async def queue(self, user: User) -> None:
        now = self._clock.now()
        token = await self._tokens.issue(
            TokenPurpose.VERIFY_EMAIL,
            user.id,
            now,
            now + timedelta(seconds=self._policy.verify_ttl_seconds),
        )
        link = self._policy.link("/auth/verify-page", token)
        await self._outbox.enqueue(self._composer.verify_email(user.email, link))


class _AddressMail:
    action = ""

    def __init__(
        self,
        users: UserRepository,
        limiter: RateLimiter,
        audit: AuditLog,
        uow: UnitOfWork,
        clock: Clock,
        policy: AccountPolicy,
    ) -> None:
        self._users = users
        self._limiter = limiter
        self._audit = audit
        self._uow = uow
        self._clock = clock
        self._policy = policy

    async def _limit(self, email: str, context: RequestContext) -> None:
        window = self._policy.mail_window_seconds
        checks = (
            (f"{self.action}:address:{email}", self._policy.per_address_limit),
            (f"{self.action}:ip:{context.ip or 'unknown'}", self._policy.per_ip_limit),
        )
        for key, limit in checks:
            decision = await self._limiter.hit(key, limit=limit, window_seconds=window)
            if not decision.allowed:
                raise RateLimited(
                    "Too many requests for this address; try again later.",
                    retry_after=decision.retry_after,
                )

    async def __call__(self, request: MailRequest) -> None:
        email = normalise_email(request.email)
        await self._limit(email, request.context)
        user = await self._users.get_by_email(email)
        # The same audit row either way, so both paths cost the same.
        await self._audit.record(
            AuditEvent(
                action=self.action,
                occurred_at=self._clock.now(),
                context=request.context,
                actor_user_id=user.id if user else None,
                target_type="email",
                target_id=email,
            )
        )
        if user is not None and user.is_active:
            await self._send(user)
        await self._uow.commit()

    async def _send(self, user: User) -> None:
        raise NotImplementedError


class ResendVerification(_AddressMail):
    action = "email_verification.requested"

    def __init__(
        self,
        users: UserRepository,
        limiter: RateLimiter,
        audit: AuditLog,
        uow: UnitOfWork,
        clock: Clock,
        policy: AccountPolicy,
        verification: VerificationMailer,
    ) -> None:
        super().__init__(users, limiter, audit, uow, clock, policy)
        self._verification = verification

    async def _send(self, user: User) -> None:
        if not user.email_verified:
            await self._verification.queue(user)


class RequestPasswordReset(_AddressMail):
    action = "password_reset.requested"

    def __init__(
        self,
        users: UserRepository,
        limiter: RateLimiter,
        audit: AuditLog,
        uow: UnitOfWork,
        clock: Clock,
        policy: AccountPolicy,
        tokens: ActionTokens,
        outbox: Outbox,
        composer: EmailComposer,
    ) -> None:
        super().__init__(users, limiter, audit, uow, clock, policy)
        self._tokens = tokens
        self._outbox = outbox
        self._composer = composer

    async def _send(self, user: User) -> None:
        now = self._clock.now()
        token = await self._tokens.issue(
            TokenPurpose.RESET_PASSWORD,
            user.id,
            now,
            now + timedelta(seconds=self._policy.reset_ttl_seconds),
        )
        link = self._policy.link("/auth/password-reset/page", token)
        await self._outbox.enqueue(self._composer.reset_password(user.email, link))
