"""The signed-in user's own account: profile, email, password, organization, settings, dashboard."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any

from orbsurv.application.account.policy import AccountPolicy
from orbsurv.application.account.ports import ActionTokens, DashboardReader, UserSettingsRepository
from orbsurv.application.identity.credentials import CheckCurrentPassword
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


@dataclass(frozen=True, slots=True)
class OrganizationChanges:
    """A merge: ``organization`` left ``UNSET`` keeps its value (``None`` clears it);
    ``timezone`` is an IANA name already checked by the caller's adapter, ``None`` keeps the
    stored one (a time zone is never cleared)."""

    organization: str | None = UNSET
    timezone: str | None = None


@dataclass(frozen=True, slots=True)
class _AccountUseCase:
    """Each use case reads the account, changes it and writes it back through
    ``UserRepository.update``, which refuses the write if the row changed since the read."""

    users: UserRepository
    profiles: ProfileCache
    audit: AuditLog
    uow: UnitOfWork
    clock: Clock

    async def _user(self, principal: Principal) -> User:
        user = await self.users.get(principal.user_id)
        if user is None or not user.is_active:
            raise Unauthenticated("This account no longer exists.", code="unauthenticated")
        return user

    async def _audited(
        self, user: User, action: str, context: RequestContext, **metadata: Any
    ) -> None:
        await self.audit.record(
            AuditEvent(
                action=action,
                occurred_at=self.clock.now(),
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
        user.updated_at = self.clock.now()
        await self.users.update(user)
        await self._audited(user, action, context, **metadata)
        await self.uow.commit()
        await self.profiles.invalidate([user.id])
        return user


@dataclass(frozen=True, slots=True)
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


@dataclass(frozen=True, slots=True)
class UpdateOrganization(_AccountUseCase):
    settings: UserSettingsRepository

    async def __call__(
        self, principal: Principal, changes: OrganizationChanges, context: RequestContext
    ) -> User:
        """Merge ``changes`` into the account (PATCH and PUT alike): what is left out keeps its
        value, and nothing given (``{}``) changes nothing, writes nothing and returns the
        account as stored, as ``UpdateProfile`` does."""
        user = await self._user(principal)
        if changes.organization is UNSET and changes.timezone is None:
            return user
        if changes.organization is not UNSET:
            user.organization = changes.organization
        if changes.timezone is not None:
            await self.settings.set_timezone(user.id, changes.timezone, self.clock.now())
        return await self._save(user, "organization.updated", context, timezone=changes.timezone)


@dataclass(frozen=True, slots=True)
class ChangePassword(_AccountUseCase):
    """Needs the current password (wrong guesses spend the account's sign-in budget). The new
    hash is written before the other sessions are revoked, so a sign-in racing the change either
    fails its conditional write or has its session revoked here; the change also ends every
    outstanding action token (see ``UserRepository.update``)."""

    hasher: PasswordHasher
    sessions: SessionRepository
    issuer: SessionIssuer
    outbox: Outbox
    composer: EmailComposer
    check: CheckCurrentPassword

    async def __call__(
        self, principal: Principal, current: str, new: str, context: RequestContext
    ) -> None:
        user = await self._user(principal)
        await self.check(user, current, context)
        check_password_policy(new, field="new_password")
        user.password_hash = await self.hasher.hash(new)
        now = self.clock.now()
        user.updated_at = now
        await self.users.update(user)
        revoked = await self.sessions.revoke_all(
            user.id, now, "password_changed", keep=principal.session_id
        )
        await self.outbox.enqueue(self.composer.password_changed(user.email))
        await self._audited(user, "password.changed", context, sessions_revoked=len(revoked))
        await self.uow.commit()
        await self.profiles.invalidate([user.id])
        await self.issuer.revoke_in_cache(revoked)


@dataclass(frozen=True, slots=True)
class RequestEmailChange(_AccountUseCase):
    """Needs the current password (wrong guesses spend the account's sign-in budget); the change
    applies when the link sent to the new address is opened, and the old address gets a
    notice. The confirmation mails are bounded per account like reset and verification mails
    (``ActionTokens.issue_within``: past ``per_account_mails`` links in ``mail_window_seconds``,
    nothing new while one is live), so an account cannot mail a stranger's address without
    bound; the answer is the same either way, saying nothing about the address (OWASP
    Forgot Password Cheat Sheet's consistent message)."""

    tokens: ActionTokens
    outbox: Outbox
    composer: EmailComposer
    policy: AccountPolicy
    check: CheckCurrentPassword

    async def __call__(
        self, principal: Principal, new_email: str, password: str, context: RequestContext
    ) -> None:
        user = await self._user(principal)
        await self.check(user, password, context)
        address = normalise_email(new_email)
        if address == user.email:
            raise InvalidInput("That is already your email address.", code="same_email")
        if await self.users.get_by_email(address) is not None:
            raise Conflict("An account with this email already exists.", code="email_taken")
        now = self.clock.now()
        token = await self.tokens.issue_within(
            TokenPurpose.CHANGE_EMAIL,
            user.id,
            now,
            now + timedelta(seconds=self.policy.verify_ttl_seconds),
            since=now - timedelta(seconds=self.policy.mail_window_seconds),
            limit=self.policy.per_account_mails,
            new_email=address,
        )
        if token is not None:
            await self.outbox.enqueue(
                self.composer.confirm_new_email(
                    address, self.policy.link("/auth/verify-page", token)
                )
            )
            await self.outbox.enqueue(self.composer.email_change_notice(user.email))
        await self._audited(user, "email.change_requested", context)
        await self.uow.commit()


@dataclass(frozen=True, slots=True)
class ManageSettings:
    settings: UserSettingsRepository
    audit: AuditLog
    uow: UnitOfWork
    clock: Clock

    async def get(self, principal: Principal) -> UserSettings:
        return await self.settings.get(principal.user_id)

    async def merge(
        self,
        principal: Principal,
        section: str,
        changes: dict[str, Any],
        context: RequestContext,
    ) -> UserSettings:
        """Merge ``changes`` (already validated keys) into ``notifications`` or ``automation``;
        two concurrent merges of different keys both keep their keys (the repository merges
        atomically)."""
        now = self.clock.now()
        stored = await self.settings.merge(principal.user_id, section, changes, now)
        await self.audit.record(
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
        await self.uow.commit()
        return stored


@dataclass(frozen=True, slots=True)
class Dashboard:
    user: User
    metrics: dict[str, int]
    recent_logs: list[dict[str, Any]] = field(default_factory=list)
    command_center_url: str = ""


@dataclass(frozen=True, slots=True)
class DashboardSummary:
    users: UserRepository
    reader: DashboardReader
    clock: Clock
    policy: AccountPolicy

    async def __call__(self, principal: Principal) -> Dashboard:
        user = await self.users.get(principal.user_id)
        if user is None or not user.is_active:
            raise Unauthenticated("This account no longer exists.", code="unauthenticated")
        figures = await self.reader.figures(user.id, user.email, self.clock.now())
        return Dashboard(
            user=user,
            metrics=figures.metrics,
            recent_logs=figures.recent_logs,
            command_center_url=self.policy.command_center_url,
        )
