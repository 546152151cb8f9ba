"""LogIn: password (and for the dev scope, a second factor) in, a session and token pair out.

Unknown accounts answer exactly like wrong passwords, after verifying against a dummy hash so they
take as long. Failures are counted per account and per client IP; a locked account answers 429.
"""

from __future__ import annotations

import hmac
from dataclasses import dataclass

from orbsurv.application.identity.policy import IdentityPolicy
from orbsurv.application.identity.ports import (
    OtpVerifier,
    PasswordHasher,
    RateLimiter,
    UserRepository,
)
from orbsurv.application.identity.sessions import IssuedTokens, SessionIssuer
from orbsurv.application.ports import AuditLog, Clock, UnitOfWork
from orbsurv.domain.audit import AuditEvent, RequestContext
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


class LogIn:
    def __init__(
        self,
        users: UserRepository,
        hasher: PasswordHasher,
        otp: OtpVerifier,
        limiter: RateLimiter,
        issuer: SessionIssuer,
        audit: AuditLog,
        uow: UnitOfWork,
        clock: Clock,
        policy: IdentityPolicy,
    ) -> None:
        self._users = users
        self._hasher = hasher
        self._otp = otp
        self._limiter = limiter
        self._issuer = issuer
        self._audit = audit
        self._uow = uow
        self._clock = clock
        self._policy = policy

    async def __call__(self, command: LoginCommand) -> IssuedTokens:
        identifier = normalise_email(command.identifier)
        account_key = f"login:account:{identifier}"
        ip_key = f"login:ip:{command.context.ip or 'unknown'}"
        account_failures = await self._refuse_if_blocked(account_key, ip_key)

        user = await self._find(identifier)
        password_hash = user.password_hash if user is not None else self._hasher.dummy_hash
        valid = await self._hasher.verify(password_hash, command.password)
        if user is None or not valid or not user.is_active:
            await self._fail(command, identifier, account_key, ip_key, user, "bad_credentials")
            raise Unauthenticated(INVALID_CREDENTIALS, code="invalid_credentials")

        if self._policy.require_verified_email and not user.email_verified:
            raise Forbidden(
                "Verify your email address before signing in.", code="email_not_verified"
            )
        amr: tuple[str, ...] = ("pwd",)
        if command.scope is Scope.DEV:
            if user.role is not Role.DEV:
                raise Forbidden("The dev scope needs the dev role.", code="dev_role_required")
            if not self._second_factor_ok(user, command.otp):
                await self._fail(command, identifier, account_key, ip_key, user, "bad_otp")
                raise Unauthenticated("The one-time code is missing or wrong.", code="invalid_otp")
            amr = ("pwd", "otp")

        if account_failures:
            await self._limiter.reset(account_key)
        now = self._clock.now()
        user.last_login_at = now
        if self._hasher.needs_rehash(user.password_hash):
            user.password_hash = await self._hasher.hash(command.password)
        await self._users.record_login(user)
        tokens = await self._issuer.open(
            user, scope=command.scope, amr=amr, context=command.context
        )
        await self._audit.record(
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
        await self._uow.commit()
        return tokens

    async def _find(self, identifier: str) -> User | None:
        if "@" in identifier:
            return await self._users.get_by_email(identifier)
        return await self._users.get_by_username(identifier)

    async def _refuse_if_blocked(self, account_key: str, ip_key: str) -> int:
        """Raise while the account or the IP is blocked; else the account's failure count."""
        account, by_ip = await self._limiter.peek_many(
            [
                (account_key, self._policy.account_failure_limit),
                (ip_key, self._policy.ip_failure_limit),
            ]
        )
        for decision in (account, by_ip):
            if not decision.allowed:
                raise RateLimited(
                    "Too many failed sign-in attempts; try again later.",
                    retry_after=decision.retry_after,
                    code="too_many_attempts",
                )
        return account.count

    def _second_factor_ok(self, user: User, code: str | None) -> bool:
        if not code:
            return False
        if user.otp_enabled and user.otp_secret:
            step = self._otp.matching_step(user.otp_secret, code, self._clock.now())
            if step is None or (user.otp_last_step is not None and step <= user.otp_last_step):
                return False  # wrong, or already used in its window
            user.otp_last_step = step
            return True
        master = self._policy.dev_master_otp
        return master is not None and hmac.compare_digest(code.encode(), master.encode())

    async def _fail(
        self,
        command: LoginCommand,
        identifier: str,
        account_key: str,
        ip_key: str,
        user: User | None,
        reason: str,
    ) -> None:
        """Count the failure; the audit trail's alert policy sees the counts on the events."""
        policy = self._policy
        account = await self._limiter.hit(
            account_key,
            limit=policy.account_failure_limit,
            window_seconds=policy.account_failure_window_seconds,
            block_seconds=policy.account_lock_seconds,
        )
        by_ip = await self._limiter.hit(
            ip_key, limit=policy.ip_failure_limit, window_seconds=policy.ip_failure_window_seconds
        )
        now = self._clock.now()
        actor = user.id if user is not None else None
        await self._audit.record(
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
                },
            )
        )
        if account.count == policy.account_failure_limit:
            await self._audit.record(
                AuditEvent(
                    action="login.locked_out",
                    occurred_at=now,
                    context=command.context,
                    actor_user_id=actor,
                    target_type="account",
                    target_id=identifier,
                    metadata={"lock_seconds": policy.account_lock_seconds},
                )
            )
        await self._uow.commit()
