"""LogIn: password (and for the dev scope, a second factor) in, a session and token pair out.

Unknown accounts answer exactly like wrong passwords, after verifying against a dummy hash so they
take as long. Guesses are counted per account and client, per account across clients
(whichever identifier was typed: see ``credentials``) and per client IP across accounts, each
spent before the password is checked and given back when it proves right, so parallel guesses
get no more checks than any budget and successful sign-ins behind one address never add up; a
spent budget answers 429. One client's failures lock only that client out of the account: the
owner signs in from elsewhere, is mailed about the lock-out, and may reset the password. A dev
sign-in's code also spends a guess of the account's code budget, which only a right code gives
back; with a wrong code the password's guess stays spent too (``credentials``).

A sign-in writes only what it owns: ``last_login_at``, a rehash of the password it verified, the
TOTP step it spent. The first two are conditional on the hash it verified and the account being
active, so a password change or deactivation committed during the ~20 ms argon2 check wins and
the sign-in is refused; the step is spent by one conditional update, so one code opens one
session however many requests carry it (RFC 6238 section 5.2).
"""

from __future__ import annotations

import hmac
from dataclasses import dataclass

from orbsurv.application.identity.credentials import (
    NO_GUESS,
    Guess,
    LockoutNotice,
    account_budget,
    both_proved,
    give_back,
    identifier_budget,
    proved,
    record_lockout,
    second_factor_open,
    spend_code_guess,
    spend_guess,
    too_many_attempts,
)
from orbsurv.application.identity.policy import IdentityPolicy
from orbsurv.application.identity.ports import (
    OtpVerifier,
    PasswordHasher,
    RateDecision,
    RateLimiter,
    UserRepository,
)
from orbsurv.application.identity.sessions import IssuedTokens, SessionIssuer
from orbsurv.application.ports import AuditLog, Clock, UnitOfWork
from orbsurv.domain.audit import AuditEvent, RequestContext, budget_client
from orbsurv.domain.errors import Forbidden, RateLimited, Unauthenticated
from orbsurv.domain.identity import Role, Scope, User, normalise_email

INVALID_CREDENTIALS = "The email or password is incorrect."


@dataclass(frozen=True, slots=True)
class LoginCommand:
    identifier: str  # an email address or a username
    password: str
    context: RequestContext
    scope: Scope = Scope.USER
    otp: str | None = None
    # The identifier broke the address rules (the caller's adapter checks them): it names no
    # account, so only the IP's budget is spent, never a budget keyed on the typed text.
    malformed: bool = False


@dataclass(frozen=True, slots=True)
class LogIn:
    users: UserRepository
    hasher: PasswordHasher
    otp: OtpVerifier
    limiter: RateLimiter
    issuer: SessionIssuer
    audit: AuditLog
    uow: UnitOfWork
    clock: Clock
    policy: IdentityPolicy
    notice: LockoutNotice

    async def __call__(self, command: LoginCommand) -> IssuedTokens:
        """Raise ``Unauthenticated`` (``invalid_credentials``, ``invalid_otp``), ``RateLimited``
        (``too_many_attempts``) or ``Forbidden`` (``email_not_verified``, ``dev_role_required``)."""
        identifier = normalise_email(command.identifier)
        ip_key = f"login:ip:{budget_client(command.context.ip)}"
        if command.malformed:
            by_ip = await self._spend_ip_guess(ip_key)
            await self.hasher.verify(self.hasher.dummy_hash, command.password)  # as slow
            await self._fail(command, identifier, NO_GUESS, by_ip, None, "bad_credentials")
            raise Unauthenticated(INVALID_CREDENTIALS, code="invalid_credentials")
        user = await self._find(identifier)
        account_key = account_budget(user.id) if user else identifier_budget(identifier)
        subject = user.email if user is not None else identifier
        by_ip = await self._spend_ip_guess(ip_key)
        try:
            guess = await spend_guess(self.limiter, self.policy, account_key, command.context.ip)
        except RateLimited:
            await self.limiter.give_back(ip_key)  # no password was checked
            raise
        if command.scope is Scope.DEV and user is not None:
            try:  # a spent code budget answers 429 whether the password is right or not
                await second_factor_open(self.limiter, self.policy, user.id)
            except RateLimited:
                await self.limiter.give_back(ip_key)
                await give_back(self.limiter, guess)
                raise

        password_hash = user.password_hash if user is not None else self.hasher.dummy_hash
        valid = await self.hasher.verify(password_hash, command.password)
        if user is None or not valid or not user.is_active:
            await self._fail(command, subject, guess, by_ip, user, "bad_credentials")
            raise Unauthenticated(INVALID_CREDENTIALS, code="invalid_credentials")

        amr: tuple[str, ...] = ("pwd",)
        if command.scope is Scope.DEV and user.role is Role.DEV:
            try:
                await spend_code_guess(self.limiter, self.policy, user.id)
            except RateLimited:
                await self.limiter.give_back(ip_key)  # no code was checked
                raise
            if not await self._second_factor_ok(user, command.otp):
                await self._fail(command, subject, guess, by_ip, user, "bad_otp")  # kept spent
                raise Unauthenticated("The one-time code is missing or wrong.", code="invalid_otp")
            amr = ("pwd", "otp")
            await both_proved(self.limiter, guess, user.id)
        else:  # the credentials proved right: the guesses are given back
            await proved(self.limiter, guess)
        await self.limiter.give_back(ip_key)

        if self.policy.require_verified_email and not user.email_verified:
            raise Forbidden(
                "Verify your email address before signing in.", code="email_not_verified"
            )
        if command.scope is Scope.DEV and user.role is not Role.DEV:
            raise Forbidden("The dev scope needs the dev role.", code="dev_role_required")
        now = self.clock.now()
        new_hash = None
        if self.hasher.needs_rehash(password_hash):
            new_hash = await self.hasher.hash(command.password)
        if not await self.users.record_login(user.id, password_hash, now, new_hash):
            # The password changed, or the account was deactivated, after it was read.
            raise Unauthenticated(INVALID_CREDENTIALS, code="invalid_credentials")
        user.last_login_at = now
        user.password_hash = new_hash or password_hash
        tokens = await self.issuer.open(user, scope=command.scope, amr=amr, context=command.context)
        await self.audit.record(
            AuditEvent(
                action="login.succeeded",
                occurred_at=now,
                context=command.context,
                actor_user_id=user.id,
                target_type="session",
                target_id=tokens.session.id,
                metadata={"scope": command.scope.value, "amr": " ".join(amr)},
            )
        )
        await self.uow.commit()
        return tokens

    async def _find(self, identifier: str) -> User | None:
        if "@" in identifier:
            return await self.users.get_by_email(identifier)
        return await self.users.get_by_username(identifier)

    async def _spend_ip_guess(self, ip_key: str) -> RateDecision:
        """Spend one guess of the client IP's budget (its failures across accounts) before a
        password is checked; raise when none is left."""
        policy = self.policy
        by_ip = await self.limiter.hit(
            ip_key, limit=policy.ip_failure_limit, window_seconds=policy.ip_failure_window_seconds
        )
        if not by_ip.allowed:
            raise too_many_attempts(by_ip.retry_after)
        return by_ip

    async def _second_factor_ok(self, user: User, code: str | None) -> bool:
        if not code:
            return False
        if user.otp_enabled and user.otp_secret:
            step = self.otp.matching_step(user.otp_secret, code, self.clock.now())
            if step is None:
                return False
            # Wrong, or already used in its window, unless this call spends it first.
            return await self.users.claim_otp_step(user.id, user.otp_secret, step)
        master = self.policy.dev_master_otp
        return master is not None and hmac.compare_digest(code.encode(), master.encode())

    async def _fail(
        self,
        command: LoginCommand,
        identifier: str,
        guess: Guess,
        by_ip: RateDecision,
        user: User | None,
        reason: str,
    ) -> None:
        """Audit the failure (its guesses are already spent); the audit trail's alert policy
        sees the counts on the events. A failure that locks the account (for this client or for
        all) is audited as ``login.locked_out`` and, for a known account, mailed to its owner
        once per lock-out window."""
        policy = self.policy
        now = self.clock.now()
        actor = user.id if user is not None else None
        await self.audit.record(
            AuditEvent(
                action="login.failed",
                occurred_at=now,
                context=command.context,
                actor_user_id=actor,
                target_type="account",
                target_id=identifier,
                metadata={
                    "reason": reason,
                    "ip_failures": by_ip.count,
                    "ip_limit": policy.ip_failure_limit,
                    "client_failures": guess.client.count,
                    "account_failures": guess.account.count,
                },
            )
        )
        lockout = guess.lockout(policy)
        if lockout is not None:
            await record_lockout(
                self.audit,
                policy,
                command.context,
                now,
                subject=identifier,
                actor=actor,
                scope=lockout,
            )
            if user is not None:
                await self.notice(user)
        await self.uow.commit()
