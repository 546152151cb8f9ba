"""One guessing budget per account, spent by every check of the account's password.

Once the account is known, failures count against the account itself, not against what the
client typed: a sign-in by email, a sign-in by username and the current-password checks of the
portal (change password, change email, turn two-factor sign-in on or off) all draw from the same
budget (5 failures in 15 minutes lock it for 15 minutes; OWASP Authentication Cheat Sheet,
"Protect Against Automated Attacks"). An identifier that matches no account keeps a budget keyed
on that identifier, as before. The keys of the two kinds never collide: a username that looks
like an account id does not spend that account's budget.
"""

from __future__ import annotations

from dataclasses import dataclass

from orbsurv.application.identity.policy import IdentityPolicy
from orbsurv.application.identity.ports import PasswordHasher, RateLimiter
from orbsurv.application.ports import AuditLog, Clock, UnitOfWork
from orbsurv.domain.audit import AuditEvent, RequestContext
from orbsurv.domain.errors import InvalidInput, RateLimited
from orbsurv.domain.identity import User

TOO_MANY = "Too many failed attempts for this account; try again later."


def account_budget(user_id: str) -> str:
    """The rate-limit key of a known account's password guesses."""
    return f"login:user:{user_id}"


def identifier_budget(identifier: str) -> str:
    """The rate-limit key of guesses for an identifier that matches no account."""
    return f"login:identifier:{identifier}"


def too_many_attempts(retry_after: int) -> RateLimited:
    return RateLimited(TOO_MANY, retry_after=retry_after, code="too_many_attempts")


@dataclass(frozen=True, slots=True)
class CheckCurrentPassword:
    """Re-authentication inside a session: the password must be right, and wrong guesses spend
    the account's budget.

    The guess is counted before the password is checked and given back when it is right.
    Raises ``RateLimited`` (``too_many_attempts``, with the seconds until the lock ends) while
    the budget is spent, whatever the password, and ``InvalidInput`` (``wrong_password``) for a
    wrong one; a wrong guess is audited and committed before the error is raised."""

    hasher: PasswordHasher
    limiter: RateLimiter
    audit: AuditLog
    uow: UnitOfWork
    clock: Clock
    policy: IdentityPolicy

    async def __call__(self, user: User, password: str, context: RequestContext) -> None:
        policy = self.policy
        key = account_budget(user.id)
        decision = await self.limiter.peek(key, limit=policy.account_failure_limit)
        if not decision.allowed:
            raise too_many_attempts(decision.retry_after)
        # Spent before the check, given back when the password is right: parallel guesses
        # cannot all pass the peek above before any of them is counted.
        spent = await self.limiter.hit(
            key,
            limit=policy.account_failure_limit,
            window_seconds=policy.account_failure_window_seconds,
            block_seconds=policy.account_lock_seconds,
        )
        if not spent.allowed:
            raise too_many_attempts(spent.retry_after)
        if await self.hasher.verify(user.password_hash, password):
            await self.limiter.reset(key)
            return
        now = self.clock.now()
        await self.audit.record(
            AuditEvent(
                action="password_check.failed",
                occurred_at=now,
                context=context,
                actor_user_id=user.id,
                target_type="user",
                target_id=user.id,
                metadata={"account_failures": spent.count},
            )
        )
        if spent.count == policy.account_failure_limit:
            await self.audit.record(
                AuditEvent(
                    action="login.locked_out",
                    occurred_at=now,
                    context=context,
                    actor_user_id=user.id,
                    target_type="account",
                    target_id=user.email,
                    metadata={"lock_seconds": policy.account_lock_seconds, "via": "password_check"},
                )
            )
        await self.uow.commit()
        raise InvalidInput("The current password is incorrect.", code="wrong_password")
