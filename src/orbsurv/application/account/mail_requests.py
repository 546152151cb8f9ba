"""Requests that send mail to an address: verification (resend) and password reset.

Both answer the same whether or not the address has an account, and both are rate limited per
address and per client IP. The mail itself goes through the outbox, never inline.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta

from orbsurv.application.account.policy import AccountPolicy
from orbsurv.application.account.ports import ActionTokens, MailRequests
from orbsurv.application.identity.ports import RateLimiter, UserRepository
from orbsurv.application.ports import AuditLog, Clock, EmailComposer, Outbox, UnitOfWork
from orbsurv.domain.audit import AuditEvent, RequestContext, budget_client
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
    kind = TokenPurpose.VERIFY_EMAIL
    action = ""

    def __init__(
        self,
        requests: MailRequests,
        limiter: RateLimiter,
        audit: AuditLog,
        uow: UnitOfWork,
        clock: Clock,
        policy: AccountPolicy,
    ) -> None:
        self._requests = requests
        self._limiter = limiter
        self._audit = audit
        self._uow = uow
        self._clock = clock
        self._policy = policy

    async def _limit(self, email: str, context: RequestContext) -> None:
        window = self._policy.mail_window_seconds
        checks = (
            (f"{self.action}:address:{email}", self._policy.per_address_limit),
            (f"{self.action}:ip:{budget_client(context.ip)}", self._policy.per_ip_limit),
        )
        for key, limit in checks:
            decision = await self._limiter.hit(key, limit=limit, window_seconds=window)
            if not decision.allowed:
                raise RateLimited(
                    "Too many requests for this address; try again later.",
                    retry_after=decision.retry_after,
                )

    async def __call__(self, request: MailRequest) -> None:
        """The same work for every address: no account is looked up here."""
        email = normalise_email(request.email)
        await self._limit(email, request.context)
        now = self._clock.now()
        await self._requests.record(self.kind, email, now)
        await self._audit.record(
            AuditEvent(
                action=self.action,
                occurred_at=now,
                context=request.context,
                target_type="email",
                target_id=email,
            )
        )
        await self._uow.commit()


class ResendVerification(_AddressMail):
    kind = TokenPurpose.VERIFY_EMAIL
    action = "email_verification.requested"


class RequestPasswordReset(_AddressMail):
    kind = TokenPurpose.RESET_PASSWORD
    action = "password_reset.requested"


class ProcessMailRequests:
    """The worker side: resolve each request to an account and queue its mail (or nothing)."""

    def __init__(
        self,
        requests: MailRequests,
        users: UserRepository,
        tokens: ActionTokens,
        outbox: Outbox,
        composer: EmailComposer,
        verification: VerificationMailer,
        uow: UnitOfWork,
        clock: Clock,
        policy: AccountPolicy,
    ) -> None:
        self._requests = requests
        self._users = users
        self._tokens = tokens
        self._outbox = outbox
        self._composer = composer
        self._verification = verification
        self._uow = uow
        self._clock = clock
        self._policy = policy

    async def __call__(self, limit: int = 50) -> int:
        now = self._clock.now()
        claimed = await self._requests.claim(now, now + timedelta(minutes=2), limit)
        await self._uow.commit()
        for request in claimed:
            user = await self._users.get_by_email(request.email)
            if user is not None and user.is_active:
                if request.kind is TokenPurpose.RESET_PASSWORD:
                    await self._queue_reset(user)
                elif not user.email_verified:
                    await self._verification.queue(user)
            await self._requests.done(request.id, self._clock.now())
            await self._uow.commit()
        return len(claimed)

    async def _queue_reset(self, user: User) -> None:
        now = self._clock.now()
        token = await self._tokens.issue(
            TokenPurpose.RESET_PASSWORD,
            user.id,
            now,
            now + timedelta(seconds=self._policy.reset_ttl_seconds),
        )
        link = self._policy.link("/auth/password-reset/page", token)
        await self._outbox.enqueue(self._composer.reset_password(user.email, link))
