"""The signed-in user's own account: profile, email, password, organization, settings, dashboard."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any

from orbsurv.application.account.policy import AccountPolicy
from orbsurv.application.account.ports import ActionTokens, DashboardReader, UserSettingsRepository
from orbsurv.application.identity.ports import (
    PasswordHasher,
    ProfileCache,
    SessionRepository,
    UserRepository,
)
from orbsurv.application.identity.sessions import SessionIssuer
from orbsurv.application.ports import AuditLog, Clock, EmailComposer, Outbox, UnitOfWork
from orbsurv.domain.audit import AuditEvent, RequestContext
from orbsurv.domain.errors import Conflict, InvalidInput, Unauthenticated
from orbsurv.domain.identity import (
    Principal,
    TokenPurpose,
    User,
    UserSettings,
    check_password_policy,
    normalise_email,
)

UNSET: Any = object()


@dataclass(frozen=True, slots=True)
class ProfileChanges:
    """Only the fields given change; ``UNSET`` leaves a field alone, ``None`` clears it."""

    name: str | None = UNSET
    organization: str | None = UNSET
    username: str | None = UNSET


class _AccountUseCase:
    def __init__(
        self,
        users: UserRepository,
        profiles: ProfileCache,
        audit: AuditLog,
        uow: UnitOfWork,
        clock: Clock,
    ) -> None:
        self._users = users
        self._profiles = profiles
        self._audit = audit
        self._uow = uow
        self._clock = clock

    async def _user(self, principal: Principal) -> User:
        user = await self._users.get(principal.user_id)
        if user is None or not user.is_active:
            raise Unauthenticated("This account no longer exists.", code="unauthenticated")
        return user

    async def _audited(
        self, user: User, action: str, context: RequestContext, **metadata: Any
    ) -> None:
        await self._audit.record(
            AuditEvent(
                action=action,
                occurred_at=self._clock.now(),
                context=context,
                actor_user_id=user.id,
                target_type="user",
                target_id=user.id,
                metadata=metadata,
            )
        )

    async def _save(
        self, user: User, action: str, context: RequestContext, **metadata: Any
    ) -> User:
        user.updated_at = self._clock.now()
        await self._users.update(user)
        await self._audited(user, action, context, **metadata)
        await self._uow.commit()
        await self._profiles.invalidate([user.id])
        return user


class UpdateProfile(_AccountUseCase):
    async def __call__(
        self, principal: Principal, changes: ProfileChanges, context: RequestContext
    ) -> User:
        user = await self._user(principal)
        changed = []
        for name in ("name", "organization", "username"):
            value = getattr(changes, name)
            if value is UNSET:
                continue
            if name == "username" and value is not None:
                value = value.lower()
            if getattr(user, name) != value:
                setattr(user, name, value)
                changed.append(name)
        if not changed:
            return user
        return await self._save(user, "profile.updated", context, fields=",".join(changed))


class UpdateOrganization(_AccountUseCase):
    def __init__(
        self,
        users: UserRepository,
        profiles: ProfileCache,
        audit: AuditLog,
        uow: UnitOfWork,
        clock: Clock,
        settings: UserSettingsRepository,
    ) -> None:
        super().__init__(users, profiles, audit, uow, clock)
        self._settings = settings

    async def __call__(
        self,
        principal: Principal,
        organization: str | None,
        timezone: str | None,
        context: RequestContext,
    ) -> User:
        """``timezone`` is an IANA name already checked by the caller's adapter."""
        user = await self._user(principal)
        user.organization = organization
        if timezone is not None:
            stored = await self._settings.get(user.id)
            stored.timezone = timezone
            await self._settings.save(stored, self._clock.now())
        return await self._save(user, "organization.updated", context, timezone=timezone)


class ChangePassword(_AccountUseCase):
    def __init__(
        self,
        users: UserRepository,
        profiles: ProfileCache,
        audit: AuditLog,
        uow: UnitOfWork,
        clock: Clock,
        hasher: PasswordHasher,
        sessions: SessionRepository,
        issuer: SessionIssuer,
        outbox: Outbox,
        composer: EmailComposer,
    ) -> None:
        super().__init__(users, profiles, audit, uow, clock)
        self._hasher = hasher
        self._sessions = sessions
        self._issuer = issuer
        self._outbox = outbox
        self._composer = composer

    async def __call__(
        self, principal: Principal, current: str, new: str, context: RequestContext
    ) -> None:
        user = await self._user(principal)
        if not await self._hasher.verify(user.password_hash, current):
            raise InvalidInput("The current password is incorrect.", code="wrong_password")
        check_password_policy(new, field="new_password")
        user.password_hash = await self._hasher.hash(new)
        now = self._clock.now()
        revoked = await self._sessions.revoke_all(
            user.id, now, "password_changed", keep=principal.session_id
        )
        await self._outbox.enqueue(self._composer.password_changed(user.email))
        await self._save(user, "password.changed", context, sessions_revoked=len(revoked))
        await self._issuer.revoke_in_cache(revoked)


class RequestEmailChange(_AccountUseCase):
    """Needs the current password; the change applies when the link sent to the new address is
    opened, and the old address gets a notice."""

    def __init__(
        self,
        users: UserRepository,
        profiles: ProfileCache,
        audit: AuditLog,
        uow: UnitOfWork,
        clock: Clock,
        hasher: PasswordHasher,
        tokens: ActionTokens,
        outbox: Outbox,
        composer: EmailComposer,
        policy: AccountPolicy,
    ) -> None:
        super().__init__(users, profiles, audit, uow, clock)
        self._hasher = hasher
        self._tokens = tokens
        self._outbox = outbox
        self._composer = composer
        self._policy = policy

    async def __call__(
        self, principal: Principal, new_email: str, password: str, context: RequestContext
    ) -> None:
        user = await self._user(principal)
        if not await self._hasher.verify(user.password_hash, password):
            raise InvalidInput("The current password is incorrect.", code="wrong_password")
        address = normalise_email(new_email)
        if address == user.email:
            raise InvalidInput("That is already your email address.", code="same_email")
        if await self._users.get_by_email(address) is not None:
            raise Conflict("An account with this email already exists.", code="email_taken")
        now = self._clock.now()
        token = await self._tokens.issue(
            TokenPurpose.CHANGE_EMAIL,
            user.id,
            now,
            now + timedelta(seconds=self._policy.verify_ttl_seconds),
            new_email=address,
        )
        await self._outbox.enqueue(
            self._composer.confirm_new_email(address, self._policy.link("/auth/verify-page", token))
        )
        await self._outbox.enqueue(self._composer.email_change_notice(user.email))
        await self._audited(user, "email.change_requested", context)
        await self._uow.commit()


class ManageSettings:
    def __init__(
        self, settings: UserSettingsRepository, audit: AuditLog, uow: UnitOfWork, clock: Clock
    ) -> None:
        self._settings = settings
        self._audit = audit
        self._uow = uow
        self._clock = clock

    async def get(self, principal: Principal) -> UserSettings:
        return await self._settings.get(principal.user_id)

    async def merge(
        self,
        principal: Principal,
        section: str,
        changes: dict[str, Any],
        context: RequestContext,
    ) -> UserSettings:
        """Merge ``changes`` (already validated keys) into ``notifications`` or ``automation``."""
        stored = await self._settings.get(principal.user_id)
        target: dict[str, Any] = getattr(stored, section)
        target.update(changes)
        now = self._clock.now()
        await self._settings.save(stored, now)
        await self._audit.record(
            AuditEvent(
                action=f"settings.{section}.updated",
                occurred_at=now,
                context=context,
                actor_user_id=principal.user_id,
                target_type="user",
                target_id=principal.user_id,
                metadata={"keys": ",".join(sorted(changes))},
            )
        )
        await self._uow.commit()
        return stored


@dataclass(frozen=True, slots=True)
class Dashboard:
    user: User
    metrics: dict[str, int]
    recent_logs: list[dict[str, Any]] = field(default_factory=list)
    command_center_url: str = ""


class DashboardSummary:
    def __init__(
        self,
        users: UserRepository,
        reader: DashboardReader,
        clock: Clock,
        policy: AccountPolicy,
    ) -> None:
        self._users = users
        self._reader = reader
        self._clock = clock
        self._policy = policy

    async def __call__(self, principal: Principal) -> Dashboard:
        user = await self._users.get(principal.user_id)
        if user is None or not user.is_active:
            raise Unauthenticated("This account no longer exists.", code="unauthenticated")
        figures = await self._reader.figures(user.id, user.email, self._clock.now())
        return Dashboard(
            user=user,
            metrics=figures.metrics,
            recent_logs=figures.recent_logs,
            command_center_url=self._policy.command_center_url,
        )
