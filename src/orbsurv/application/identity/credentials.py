"""Guessing budgets per account and client, spent by every check of the account's password.

Once the account is known, failures count against the account itself, not against what the
client typed: a sign-in by email, a sign-in by username and the current-password checks of the
portal (change password, change email, turn two-factor sign-in on or off) all draw from the same
budgets. An identifier that matches no account keeps budgets keyed on that identifier
(normalised as the look-up normalises it), with the same limits, so a locked unknown address
answers exactly like a locked account. The keys of the two kinds never collide: a username that
looks like an account id does not spend that account's budget.

Two budgets guard each account (OWASP Authentication Cheat Sheet, "Account Lockout": lock-outs
keyed so an attacker cannot lock the owner out, and a ceiling so distributed guessing stays
bounded):

- per account and client (the client IP; an IPv6 client by its site's /56, RFC 6177, since a
  site holds 256 /64 networks and would otherwise be 256 clients): ``account_failure_limit``
  failures (5) in ``account_failure_window_seconds`` (15 min) lock that account's password
  checks *from that client* for ``account_lock_seconds`` (15 min). An attacker's failures lock
  only the attacker's own pair (a locked pair's refused guesses spend nothing more); the owner
  signs in from any other client. Widening the pair to the site costs an innocent neighbour
  little: only this account, only from that site.
- per account, across every client: ``account_ceiling_limit`` failures (100) in the same window
  lock the account's password checks from every client for ``account_lock_seconds``, so an
  attacker spread over many addresses gets at most that many guesses per window. Reaching it
  takes 20 distinct clients (IPv4 addresses or IPv6 sites): the price of bounding distributed
  guessing at all.

Either lock answers 429 ``too_many_attempts`` with the seconds until it ends; each lock-out is
audited (``login.locked_out``, which raises the ``account_lockout`` alert), and the owner of a
known account is mailed once per lock-out window (``LockoutNotice``). A password reset ends the
account's lock-out (the ceiling and the resetting client's pair).

A guess is spent before its password is checked, and given back once the password proves right
(the pair is reset, the ceiling uncounts that one guess). Checking first and counting after lets
guesses sent in parallel all pass the check while none is counted yet, multiplying the budget by
the concurrency. Each count is one atomic increment of the rate limiter (a Lua script on Redis);
the counters live in Redis, or per process while Redis does not answer, and restart from zero
when Redis loses its data (docs/operations.md, failure modes).

One-time codes (RFC 6238) have a budget of their own per account, with the same limits: every
check of a code (a dev sign-in, turning two-factor sign-in on or off) spends a guess before the
code is checked, and only a right code gives the guesses back. Only someone who knows the
password (or holds a session) reaches a code check, so this budget stays per account. The
password alone never gives it back: whoever knows it can reset the password budget at will (a
plain sign-in), so a code budget that a right password reset would let them try every code (RFC
6238 section 5.2 asks for a limit on code attempts; OWASP Multifactor Authentication Cheat
Sheet). Where a request needs both the password and a code, the password's guess stays spent too
until the code is also right.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from orbsurv.application.identity.policy import IdentityPolicy
from orbsurv.application.identity.ports import PasswordHasher, RateDecision, RateLimiter
from orbsurv.application.ports import AuditLog, Clock, EmailComposer, Outbox, UnitOfWork
from orbsurv.domain.audit import IPV6_SITE_PREFIX, AuditEvent, RequestContext, budget_client
from orbsurv.domain.errors import InvalidInput, RateLimited
from orbsurv.domain.identity import User

TOO_MANY = "Too many failed attempts for this account; try again later."


def account_budget(user_id: str) -> str:
    """The rate-limit key of a known account's password guesses from every client."""
    return f"login:user:{user_id}"


def identifier_budget(identifier: str) -> str:
    """The rate-limit key of guesses for an identifier that matches no account."""
    return f"login:identifier:{identifier}"


def client_budget(account_key: str, ip: str | None) -> str:
    """The rate-limit key of one client's guesses against ``account_key``."""
    return f"{account_key}:client:{budget_client(ip, IPV6_SITE_PREFIX)}"


def second_factor_budget(user_id: str) -> str:
    """The rate-limit key of a known account's one-time code guesses."""
    return f"otp:user:{user_id}"


def too_many_attempts(retry_after: int) -> RateLimited:
    return RateLimited(TOO_MANY, retry_after=retry_after, code="too_many_attempts")


@dataclass(frozen=True, slots=True)
class Guess:
    """One password guess spent against an account: the counts after it, per client and for
    the whole account."""

    client_key: str
    account_key: str
    client: RateDecision
    account: RateDecision

    def lockout(self, policy: IdentityPolicy) -> str | None:
        """``client`` when this guess locked the account for its client, ``account`` when it
        locked the account for every client, else ``None``."""
        if self.account.count == policy.account_ceiling_limit:
            return "account"
        if self.client.count == policy.account_failure_limit:
            return "client"
        return None


NO_GUESS = Guess("", "", RateDecision(True, 0, 0), RateDecision(True, 0, 0))


async def spend_guess(
    limiter: RateLimiter, policy: IdentityPolicy, account_key: str, ip: str | None
) -> Guess:
    """Spend one guess of the client's and of the account's budget under ``account_key`` before
    a password is checked; the caller calls ``proved`` when the password proves right. Reaching
    a limit locks that budget for ``account_lock_seconds``. Raises ``RateLimited``
    (``too_many_attempts``, with the seconds until the lock ends) when either has no guess left:
    that password is never checked, and nothing stays spent for it."""
    client_key = client_budget(account_key, ip)
    client = await limiter.hit(
        client_key,
        limit=policy.account_failure_limit,
        window_seconds=policy.account_failure_window_seconds,
        block_seconds=policy.account_lock_seconds,
    )
    if not client.allowed:
        raise too_many_attempts(client.retry_after)
    account = await limiter.hit(
        account_key,
        limit=policy.account_ceiling_limit,
        window_seconds=policy.account_failure_window_seconds,
        block_seconds=policy.account_lock_seconds,
    )
    if not account.allowed:
        await limiter.give_back(client_key)  # no password was checked
        raise too_many_attempts(account.retry_after)
    return Guess(client_key, account_key, client, account)


async def give_back(limiter: RateLimiter, guess: Guess) -> None:
    """No password was checked for ``guess`` after all: uncount it from both budgets."""
    if guess.client_key:
        await limiter.give_back(guess.client_key)
        await limiter.give_back(guess.account_key)


async def proved(limiter: RateLimiter, guess: Guess) -> None:
    """The password of ``guess`` proved right: the client's failures are forgotten, and the
    account's ceiling uncounts this guess (other clients' failures stay counted)."""
    if guess.client_key:
        await limiter.reset(guess.client_key)
        await limiter.give_back(guess.account_key)


async def end_lockout(limiter: RateLimiter, user_id: str, ip: str | None) -> None:
    """After a password reset: the account's ceiling and the resetting client's pair end."""
    key = account_budget(user_id)
    await limiter.reset(key)
    await limiter.reset(client_budget(key, ip))


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
    decision = await limiter.hit(
        second_factor_budget(user_id),
        limit=policy.account_failure_limit,
        window_seconds=policy.account_failure_window_seconds,
        block_seconds=policy.account_lock_seconds,
    )
    if not decision.allowed:
        raise too_many_attempts(decision.retry_after)
    return decision


async def both_proved(limiter: RateLimiter, guess: Guess, user_id: str) -> None:
    """The password and the code both proved right: give back every guess of the account."""
    await proved(limiter, guess)
    await limiter.reset(second_factor_budget(user_id))


@dataclass(frozen=True, slots=True)
class LockoutNotice:
    """Tells the owner of a known account that sign-ins were locked, by mail through the outbox
    (in the caller's transaction), at most once per ``account_lock_seconds`` whatever the number
    of clients locked (OWASP Authentication Cheat Sheet: notify the user of a lock-out)."""

    limiter: RateLimiter
    outbox: Outbox
    composer: EmailComposer
    policy: IdentityPolicy

    async def __call__(self, user: User) -> None:
        lock = self.policy.account_lock_seconds
        first = await self.limiter.hit(f"lockout-notice:{user.id}", limit=1, window_seconds=lock)
        if first.allowed:
            await self.outbox.enqueue(self.composer.sign_in_locked(user.email, max(1, lock // 60)))


async def record_lockout(
    audit: AuditLog,
    policy: IdentityPolicy,
    context: RequestContext,
    now: datetime,
    *,
    subject: str,
    actor: str | None,
    scope: str,
    via: str | None = None,
) -> None:
    """Audit a lock-out (``login.locked_out``: the ``account_lockout`` alert) of ``subject`` for
    ``scope`` (``client``: the caller's client; ``account``: every client)."""
    metadata: dict[str, str | int] = {"lock_seconds": policy.account_lock_seconds, "scope": scope}
    if via is not None:
        metadata["via"] = via
    await audit.record(
        AuditEvent(
            action="login.locked_out",
            occurred_at=now,
            context=context,
            actor_user_id=actor,
            target_type="account",
            target_id=subject,
            metadata=metadata,
        )
    )


async def record_failed_check(
    audit: AuditLog,
    policy: IdentityPolicy,
    user: User,
    count: int,
    lockout: str | None,
    context: RequestContext,
    now: datetime,
    *,
    proof: str,
    counter: str,
    notice: LockoutNotice | None = None,
) -> None:
    """Audit a wrong ``proof`` (``password`` or ``otp``) inside a session: ``<proof>_check.failed``
    with the failures ``count``ed (under ``counter``), and ``login.locked_out`` (mailing the
    owner through ``notice``) when the failure caused a ``lockout``. The caller commits."""
    await audit.record(
        AuditEvent(
            action=f"{proof}_check.failed",
            occurred_at=now,
            context=context,
            actor_user_id=user.id,
            target_type="user",
            target_id=user.id,
            metadata={counter: count},
        )
    )
    if lockout is not None:
        await record_lockout(
            audit,
            policy,
            context,
            now,
            subject=user.email,
            actor=user.id,
            scope=lockout,
            via=f"{proof}_check",
        )
        if notice is not None:
            await notice(user)


@dataclass(frozen=True, slots=True)
class CheckCurrentPassword:
    """Re-authentication inside a session: the password must be right, and wrong guesses spend
    the account's budgets for the session's client (``spend_guess``).

    Raises ``RateLimited`` (``too_many_attempts``, with the seconds until the lock ends) while
    a budget is spent, whatever the password, and ``InvalidInput`` (``wrong_password``) for a
    wrong one; a wrong guess is audited and committed before the error is raised."""

    hasher: PasswordHasher
    limiter: RateLimiter
    audit: AuditLog
    uow: UnitOfWork
    clock: Clock
    policy: IdentityPolicy
    notice: LockoutNotice

    async def __call__(self, user: User, password: str, context: RequestContext) -> None:
        """The password is the whole proof: a right one gives the guess back."""
        await proved(self.limiter, await self.first_of_two(user, password, context))

    async def first_of_two(self, user: User, password: str, context: RequestContext) -> Guess:
        """The password as the first half of a proof: a right one leaves its guess spent and is
        returned, and the caller gives it back (``proved`` or ``both_proved``) only once the
        second half is right too. Raises as ``__call__`` does."""
        policy = self.policy
        guess = await spend_guess(self.limiter, policy, account_budget(user.id), context.ip)
        if await self.hasher.verify(user.password_hash, password):
            return guess
        await record_failed_check(
            self.audit,
            policy,
            user,
            guess.client.count,
            guess.lockout(policy),
            context,
            self.clock.now(),
            proof="password",
            counter="account_failures",
            notice=self.notice,
        )
        await self.uow.commit()
        raise InvalidInput("The current password is incorrect.", code="wrong_password")
