"""Per-user TOTP (RFC 6238): set up, confirm, disable. Each needs proof of the account.

Set-up and disabling need the current password, and wrong guesses spend the account's sign-in
budget (``credentials``). Confirming and disabling need a code, and every code checked spends a
guess of the account's code budget first (``credentials``: only a right code gives it back, never
the password alone); disabling keeps the password's guess spent too until its code is right. Each
writes through ``UserRepository.update``, which refuses a write based on a stale read: of two
concurrent confirmations with one code, one wins."""

from __future__ import annotations

from dataclasses import dataclass

from orbsurv.application.identity.credentials import (
    CheckCurrentPassword,
    both_proved,
    proved,
    record_failed_check,
    second_factor_budget,
    second_factor_open,
    spend_code_guess,
)
from orbsurv.application.identity.policy import IdentityPolicy
from orbsurv.application.identity.ports import (
    OtpVerifier,
    ProfileCache,
    RateDecision,
    RateLimiter,
    SessionRepository,
    UserRepository,
)
from orbsurv.application.identity.sessions import SessionIssuer
from orbsurv.application.ports import AuditLog, Clock, UnitOfWork
from orbsurv.domain.audit import AuditEvent, RequestContext
from orbsurv.domain.errors import Conflict, InvalidInput, Unauthenticated
from orbsurv.domain.identity import Principal, Scope, User


@dataclass(frozen=True, slots=True)
class OtpEnrollment:
    secret: str
    otpauth_uri: str


@dataclass(frozen=True, slots=True)
class ManageOtp:
    users: UserRepository
    sessions: SessionRepository
    otp: OtpVerifier
    issuer: SessionIssuer
    profiles: ProfileCache
    audit: AuditLog
    uow: UnitOfWork
    clock: Clock
    check: CheckCurrentPassword
    limiter: RateLimiter
    policy: IdentityPolicy

    async def _user(self, principal: Principal) -> User:
        user = await self.users.get(principal.user_id)
        if user is None or not user.is_active:
            raise Unauthenticated("This account no longer exists.", code="unauthenticated")
        return user

    async def _check_code(self, user: User, code: str, context: RequestContext) -> None:
        """Spend a guess of the account's code budget, then check the code against the stored
        secret: a step at or before the last one spent is refused (RFC 6238 section 5.2).
        Raises ``RateLimited`` (``too_many_attempts``) with no guess left and ``InvalidInput``
        (``invalid_otp``, the failure audited and committed) for a wrong code; its guess stays
        spent."""
        assert user.otp_secret is not None
        spent = await spend_code_guess(self.limiter, self.policy, user.id)
        step = self.otp.matching_step(user.otp_secret, code, self.clock.now())
        if step is None or (user.otp_last_step is not None and step <= user.otp_last_step):
            await self._code_failed(user, spent, context)
            raise InvalidInput("The one-time code is wrong or already used.", code="invalid_otp")
        user.otp_last_step = step

    async def _code_failed(self, user: User, spent: RateDecision, context: RequestContext) -> None:
        locked = spent.count == self.policy.account_failure_limit
        await record_failed_check(
            self.audit,
            self.policy,
            user,
            spent.count,
            "account" if locked else None,
            context,
            self.clock.now(),
            proof="otp",
            counter="otp_failures",
        )
        await self.uow.commit()

    async def _save(self, user: User, action: str, context: RequestContext) -> None:
        user.updated_at = self.clock.now()
        await self.users.update(user)
        await self.audit.record(
            AuditEvent(
                action=action,
                occurred_at=user.updated_at,
                context=context,
                actor_user_id=user.id,
                target_type="user",
                target_id=user.id,
            )
        )
        await self.uow.commit()
        await self.profiles.invalidate([user.id])

    async def set_up(
        self, principal: Principal, password: str, context: RequestContext
    ) -> OtpEnrollment:
        user = await self._user(principal)
        await self.check(user, password, context)
        if user.otp_enabled:
            raise Conflict(
                "Two-factor sign-in is already on; turn it off first.", code="otp_already_enabled"
            )
        user.otp_secret = self.otp.new_secret()
        user.otp_last_step = None
        await self._save(user, "otp.setup_started", context)
        return OtpEnrollment(
            user.otp_secret, self.otp.provisioning_uri(user.otp_secret, user.email)
        )

    async def confirm(self, principal: Principal, code: str, context: RequestContext) -> None:
        user = await self._user(principal)
        if user.otp_enabled:
            raise Conflict("Two-factor sign-in is already on.", code="otp_already_enabled")
        if user.otp_secret is None:
            raise InvalidInput("Start with POST /auth/otp/setup.", code="otp_not_set_up")
        await second_factor_open(self.limiter, self.policy, user.id)
        await self._check_code(user, code, context)
        await self.limiter.reset(second_factor_budget(user.id))
        user.otp_enabled = True
        await self._save(user, "otp.enabled", context)

    async def disable(
        self, principal: Principal, password: str, code: str | None, context: RequestContext
    ) -> None:
        user = await self._user(principal)
        # A spent code budget answers 429 before the password is checked, whatever it is.
        await second_factor_open(self.limiter, self.policy, user.id)
        guess = await self.check.first_of_two(user, password, context)
        if not user.otp_enabled:
            await proved(self.limiter, guess)  # the password was the whole proof
            raise InvalidInput("Two-factor sign-in is not on.", code="otp_not_enabled")
        await self._check_code(user, code or "", context)
        await both_proved(self.limiter, guess, user.id)
        user.otp_enabled = False
        user.otp_secret = None
        user.otp_last_step = None
        now = self.clock.now()
        # Sessions opened with the second factor lose their basis.
        ended = [s.id for s in await self.sessions.list_live(user.id, now) if s.scope is Scope.DEV]
        for session_id in ended:
            await self.sessions.revoke(session_id, now, "otp_disabled")
        await self._save(user, "otp.disabled", context)
        await self.issuer.revoke_in_cache(ended)
