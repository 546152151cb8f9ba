"""Per-user TOTP (RFC 6238): set up, confirm, disable. Each needs proof of the account."""

from __future__ import annotations

from dataclasses import dataclass

from orbsurv.application.identity.ports import (
    OtpVerifier,
    PasswordHasher,
    ProfileCache,
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


class ManageOtp:
    def __init__(
        self,
        users: UserRepository,
        sessions: SessionRepository,
        hasher: PasswordHasher,
        otp: OtpVerifier,
        issuer: SessionIssuer,
        profiles: ProfileCache,
        audit: AuditLog,
        uow: UnitOfWork,
        clock: Clock,
    ) -> None:
        self._profiles = profiles
        self._users = users
        self._sessions = sessions
        self._hasher = hasher
        self._otp = otp
        self._issuer = issuer
        self._audit = audit
        self._uow = uow
        self._clock = clock

    async def _user(self, principal: Principal) -> User:
        user = await self._users.get(principal.user_id)
        if user is None or not user.is_active:
            raise Unauthenticated("This account no longer exists.", code="unauthenticated")
        return user

    async def _check_password(self, user: User, password: str) -> None:
        if not await self._hasher.verify(user.password_hash, password):
            raise InvalidInput("The password is incorrect.", code="wrong_password")

    def _check_code(self, user: User, code: str) -> None:
        assert user.otp_secret is not None
        step = self._otp.matching_step(user.otp_secret, code, self._clock.now())
        if step is None or (user.otp_last_step is not None and step <= user.otp_last_step):
            raise InvalidInput("The one-time code is wrong or already used.", code="invalid_otp")
        user.otp_last_step = step

    async def _save(self, user: User, action: str, context: RequestContext) -> None:
        user.updated_at = self._clock.now()
        await self._users.update(user)
        await self._audit.record(
            AuditEvent(
                action=action,
                occurred_at=user.updated_at,
                context=context,
                actor_user_id=user.id,
                target_type="user",
                target_id=user.id,
            )
        )
        await self._uow.commit()
        await self._profiles.invalidate([user.id])

    async def set_up(
        self, principal: Principal, password: str, context: RequestContext
    ) -> OtpEnrollment:
        user = await self._user(principal)
        await self._check_password(user, password)
        if user.otp_enabled:
            raise Conflict(
                "Two-factor sign-in is already on; turn it off first.", code="otp_already_enabled"
            )
        user.otp_secret = self._otp.new_secret()
        user.otp_last_step = None
        await self._save(user, "otp.setup_started", context)
        return OtpEnrollment(
            user.otp_secret, self._otp.provisioning_uri(user.otp_secret, user.email)
        )

    async def confirm(self, principal: Principal, code: str, context: RequestContext) -> None:
        user = await self._user(principal)
        if user.otp_enabled:
            raise Conflict("Two-factor sign-in is already on.", code="otp_already_enabled")
        if user.otp_secret is None:
            raise InvalidInput("Start with POST /auth/otp/setup.", code="otp_not_set_up")
        self._check_code(user, code)
        user.otp_enabled = True
        await self._save(user, "otp.enabled", context)

    async def disable(
        self, principal: Principal, password: str, code: str | None, context: RequestContext
    ) -> None:
        user = await self._user(principal)
        await self._check_password(user, password)
        if not user.otp_enabled:
            raise InvalidInput("Two-factor sign-in is not on.", code="otp_not_enabled")
        self._check_code(user, code or "")
        user.otp_enabled = False
        user.otp_secret = None
        user.otp_last_step = None
        now = self._clock.now()
        # Sessions opened with the second factor lose their basis.
        ended = [s.id for s in await self._sessions.list_live(user.id, now) if s.scope is Scope.DEV]
        for session_id in ended:
            await self._sessions.revoke(session_id, now, "otp_disabled")
        await self._save(user, "otp.disabled", context)
        await self._issuer.revoke_in_cache(ended)
