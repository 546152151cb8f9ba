"""One guessing budget per account, spent by every check of the account's password.

Once the account is known, failures count against the account itself, not against what the
client typed: a sign-in by email, a sign-in by username and the current-password checks of the
portal (change password, change email, turn two-factor sign-in on or off) all draw from the same
budget (5 failures in 15 minutes lock it for 15 minutes; OWASP Authentication Cheat Sheet,
"Protect Against Automated Attacks"). An identifier that matches no account keeps a budget keyed
on that identifier, as before. The keys of the two kinds never collide: a username that looks
like an account id does not spend that account's budget.

A guess is spent before its password is checked, and given back (the budget is reset) once the
password proves right. Checking first and counting after lets guesses sent in parallel all pass
the check while none is counted yet, multiplying the budget by the concurrency.

One-time codes (RFC 6238) have a budget of their own per account, with the same limits: every
check of a code (a dev sign-in, turning two-factor sign-in on or off) spends a guess before the
code is checked, and only a right code gives the guesses back. The password alone never does:
whoever knows it can reset the password budget at will (a plain sign-in), so a code budget that
a right password reset would let them try every code (RFC 6238 section 5.2 asks for a limit on
code attempts; OWASP Multifactor Authentication Cheat Sheet). Where a request needs both the
password and a code, the password's guess stays spent too until the code is also right.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from orbsurv.application.identity.policy import IdentityPolicy
from orbsurv.application.identity.ports import PasswordHasher, RateDecision, RateLimiter
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


def second_factor_budget(user_id: str) -> str:
    """The rate-limit key of a known account's one-time code guesses."""
    return f"otp:user:{user_id}"


def too_many_attempts(retry_after: int) -> RateLimited:
    return RateLimited(TOO_MANY, retry_after=retry_after, code="too_many_attempts")


async def spend_guess(limiter: RateLimiter, policy: IdentityPolicy, key: str) -> RateDecision:
    """Spend one guess of the budget under ``key`` before a password is checked; the caller
    resets the budget when the password proves right. Reaching the limit locks the budget for
    ``account_lock_seconds``. Raises ``RateLimited`` (``too_many_attempts``, with the seconds
    until the lock ends) when no guess is left: that password is never checked."""
    decision = await limiter.hit(
        key,
        limit=policy.account_failure_limit,
        window_seconds=policy.account_failure_window_seconds,
        block_seconds=policy.account_lock_seconds,
    )
    if not decision.allowed:
        raise too_many_attempts(decision.retry_after)
    return decision


async def second_factor_open(limiter: RateLimiter, policy: IdentityPolicy, user_id: str) -> None:
    """Raise ``RateLimited`` (``too_many_attempts``, with the seconds until the lock ends) while
    the account's code budget is spent; spends nothing. Asked before the password is checked, so
    a locked account answers the same whether the password was right or not."""
    decision = await limiter.peek(second_factor_budget(user_id), limit=policy.account_failure_limit)
    if not decision.allowed:
        raise too_many_attempts(decision.retry_after)


async def spend_code_guess(
    limiter: RateLimiter, policy: IdentityPolicy, user_id: str
) -> RateDecision:
    """Spend one guess of the account's code budget before a code is checked (one atomic
    counter, so parallel guesses get no more checks than the limit); raises ``RateLimited``
    (``too_many_attempts``) when none is left: that code is never checked."""
    return await spend_guess(limiter, policy, second_factor_budget(user_id))


async def both_proved(limiter: RateLimiter, user_id: str) -> None:
    """The password and the code both proved right: give back every guess of the account."""
    await limiter.reset(account_budget(user_id))
    await limiter.reset(second_factor_budget(user_id))


async def record_failed_check(
    audit: AuditLog,
    policy: IdentityPolicy,
    user: User,
    spent: RateDecision,
    context: RequestContext,
    now: datetime,
    *,
    proof: str,
    counter: str,
) -> None:
    """Audit a wrong ``proof`` (``password`` or ``otp``) inside a session: ``<proof>_check.failed``
    with the failures ``spent`` counted (under ``counter``), and ``login.locked_out`` on the
    failure that spends the budget. The caller commits."""
    await audit.record(
        AuditEvent(
            action=f"{proof}_check.failed",
            occurred_at=now,
            context=context,
            actor_user_id=user.id,
            target_type="user",
            target_id=user.id,
            metadata={counter: spent.count},
        )
    )
    if spent.count == policy.account_failure_limit:
        await audit.record(
            AuditEvent(
                action="login.locked_out",
                occurred_at=now,
                context=context,
                actor_user_id=user.id,
                target_type="account",
                target_id=user.email,
                metadata={"lock_seconds": policy.account_lock_seconds, "via": f"{proof}_check"},
            )
        )


@dataclass(frozen=True, slots=True)
class CheckCurrentPassword:
    """Re-authentication inside a session: the password must be right, and wrong guesses spend
    the account's budget.

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
        """The password is the whole proof: a right one gives the account's guesses back."""
        await self.first_of_two(user, password, context)
        await self.limiter.reset(account_budget(user.id))

    async def first_of_two(self, user: User, password: str, context: RequestContext) -> None:
        """The password as the first half of a proof: a right one leaves its guess spent, and
        the caller gives the guesses back (``both_proved``) only once the second half is right
        too. Raises as ``__call__`` does."""
        policy = self.policy
        spent = await spend_guess(self.limiter, policy, account_budget(user.id))
        if await self.hasher.verify(user.password_hash, password):
            return
        await record_failed_check(
            self.audit,
            policy,
            user,
            spent,
            context,
            self.clock.now(),
            proof="password",
            counter="account_failures",
        )
        await self.uow.commit()
        raise InvalidInput("The current password is incorrect.", code="wrong_password")
