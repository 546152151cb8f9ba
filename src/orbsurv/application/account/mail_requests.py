"""Requests that send mail to an address: verification (resend) and password reset.

Both answer 202 with the same body whether or not the address has an account, and do the same
work for every address: the request is recorded, and the worker resolves it to an account and
its mail (``ProcessMailRequests``). Nothing a stranger can do stops the owner's request:

- the request path counts only the client IP's budget (``per_ip_limit`` requests per
  ``mail_window_seconds``; 429 ``rate_limited`` past it), never a budget of the address, which
  anyone could spend naming the victim (OWASP Forgot Password Cheat Sheet: return a consistent
  message, and protect against automated submissions without locking the user out);
- the worker counts the mails *sent* to the account, in the database (the tokens it issued):
  past ``per_account_mails`` in the window it sends nothing new while a link it sent is still
  live, since that mail is in the owner's mailbox; once no link is live it sends a new one. So
  the owner always holds a working link, and the account's mailbox receives at most
  ``per_account_mails`` mails per window plus one per link lifetime.
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

    async def queue(self, user: User, *, within_budget: bool = False) -> None:
        """Issue a link and queue its mail; with ``within_budget`` (a resend anyone may ask
        for), nothing while the account's mail budget is spent and a link is live."""
        now = self._clock.now()
        expires_at = now + timedelta(seconds=self._policy.verify_ttl_seconds)
        if within_budget:
            token = await self._tokens.issue_within(
                TokenPurpose.VERIFY_EMAIL,
                user.id,
                now,
                expires_at,
                since=now - timedelta(seconds=self._policy.mail_window_seconds),
                limit=self._policy.per_account_mails,
            )
            if token is None:
                return
        else:
            token = await self._tokens.issue(TokenPurpose.VERIFY_EMAIL, user.id, now, expires_at)
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

    async def _limit(self, context: RequestContext) -> None:
        """The client's budget only: no budget of the address, which would let anyone who
        names it stop its owner's requests."""
        decision = await self._limiter.hit(
            f"{self.action}:ip:{budget_client(context.ip)}",
            limit=self._policy.per_ip_limit,
            window_seconds=self._policy.mail_window_seconds,
        )
        if not decision.allowed:
            raise RateLimited(
                "Too many requests from this client; try again later.",
                retry_after=decision.retry_after,
            )

    async def __call__(self, request: MailRequest) -> None:
        """The same work for every address: no account is looked up here."""
        email = normalise_email(request.email)
        await self._limit(request.context)
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
                    await self._verification.queue(user, within_budget=True)
            await self._requests.done(request.id, self._clock.now())
            await self._uow.commit()
        return len(claimed)

    async def _queue_reset(self, user: User) -> None:
        """A reset link, unless the account's mail budget is spent while a link is live."""
        now = self._clock.now()
        token = await self._tokens.issue_within(
            TokenPurpose.RESET_PASSWORD,
            user.id,
            now,
            now + timedelta(seconds=self._policy.reset_ttl_seconds),
            since=now - timedelta(seconds=self._policy.mail_window_seconds),
            limit=self._policy.per_account_mails,
        )
        if token is None:
            return
        link = self._policy.link("/auth/password-reset/page", token)
        await self._outbox.enqueue(self._composer.reset_password(user.email, link))
