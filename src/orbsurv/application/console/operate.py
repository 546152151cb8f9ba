"""The console's write side: change a user's role or state, end their sessions, acknowledge an
alert, send mail as an operator. Every one is audited; each revokes what it must at once.

An operator never changes their own role or active state (409 ``cannot_modify_self``): one
mistaken click would lock them out, and a stolen dev session could not quietly keep itself
while demoting the others; another dev does it. The last active dev stays one: the check counts
the devs with their rows locked, so two concurrent demotions cannot both pass it, and the write
is refused if the user changed since it was read (``UserRepository.update``)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from orbsurv.application.console.ports import ConsoleReader
from orbsurv.application.identity.ports import (
    ProfileCache,
    RateLimiter,
    SessionRepository,
    UserRepository,
)
from orbsurv.application.identity.sessions import SessionIssuer
from orbsurv.application.ports import AuditLog, Clock, Outbox, OutgoingEmail, UnitOfWork
from orbsurv.domain.audit import AuditEvent, RequestContext
from orbsurv.domain.errors import Conflict, NotFound, RateLimited
from orbsurv.domain.identity import Principal, Role, User


@dataclass(frozen=True, slots=True)
class UserChange:
    role: Role | None = None
    is_active: bool | None = None


@dataclass(frozen=True, slots=True)
class ManageUser:
    users: UserRepository
    reader: ConsoleReader
    sessions: SessionRepository
    issuer: SessionIssuer
    profiles: ProfileCache
    audit: AuditLog
    uow: UnitOfWork
    clock: Clock

    async def _target(self, user_id: str) -> User:
        user = await self.users.get(user_id)
        if user is None:
            raise NotFound("No such user.", code="user_not_found")
        return user

    async def change(
        self, operator: Principal, user_id: str, change: UserChange, context: RequestContext
    ) -> User:
        """Raise ``NotFound`` (``user_not_found``) and ``Conflict`` (``cannot_modify_self``,
        ``last_dev``, ``concurrent_update``)."""
        touches_self = user_id == operator.user_id
        if touches_self and (change.role is not None or change.is_active is not None):
            raise Conflict(
                "You cannot change your own role or active state; ask another dev.",
                code="cannot_modify_self",
            )
        user = await self._target(user_id)
        now = self.clock.now()
        before = {"role": user.role.value, "is_active": user.is_active}
        losing_dev = (
            user.role is Role.DEV
            and user.is_active
            and (
                (change.role is not None and change.role is not Role.DEV)
                or change.is_active is False
            )
        )
        if losing_dev and await self.reader.lock_active(Role.DEV) <= 1:
            raise Conflict("The last dev cannot be demoted or deactivated.", code="last_dev")
        if change.role is not None:
            user.role = change.role
        if change.is_active is not None:
            user.is_active = change.is_active
        after = {"role": user.role.value, "is_active": user.is_active}
        if after == before:
            return user
        user.updated_at = now
        await self.users.update(user)
        revoked = await self.sessions.revoke_all(user.id, now, "changed_by_operator")
        await self.audit.record(
            AuditEvent(
                action="user.changed",
                occurred_at=now,
                context=context,
                actor_user_id=operator.user_id,
                target_type="user",
                target_id=user.id,
                metadata={**{f"from_{k}": v for k, v in before.items()}, **after},
            )
        )
        await self.uow.commit()
        await self.issuer.revoke_in_cache(revoked)
        await self.profiles.invalidate([user.id])
        return user

    async def end_sessions(self, operator: Principal, user_id: str, context: RequestContext) -> int:
        user = await self._target(user_id)
        now = self.clock.now()
        revoked = await self.sessions.revoke_all(user.id, now, "ended_by_operator")
        await self.audit.record(
            AuditEvent(
                action="user.sessions_ended",
                occurred_at=now,
                context=context,
                actor_user_id=operator.user_id,
                target_type="user",
                target_id=user.id,
                metadata={"sessions": len(revoked)},
            )
        )
        await self.uow.commit()
        await self.issuer.revoke_in_cache(revoked)
        return len(revoked)


class AcknowledgeAlert:
    def __init__(
        self, reader: ConsoleReader, audit: AuditLog, uow: UnitOfWork, clock: Clock
    ) -> None:
        self._reader = reader
        self._audit = audit
        self._uow = uow
        self._clock = clock

    async def __call__(
        self, operator: Principal, alert_id: str, context: RequestContext
    ) -> dict[str, Any]:
        now = self._clock.now()
        alert = await self._reader.acknowledge(alert_id, operator.user_id, now)
        if alert is None:
            raise NotFound("No such alert.", code="alert_not_found")
        if alert["acknowledged_at"] == now:
            await self._audit.record(
                AuditEvent(
                    action="alert.acknowledged",
                    occurred_at=now,
                    context=context,
                    actor_user_id=operator.user_id,
                    target_type="alert",
                    target_id=alert_id,
                )
            )
        await self._uow.commit()
        return alert


@dataclass(frozen=True, slots=True)
class OperatorEmail:
    to: str
    subject: str
    body: str


class SendOperatorEmail:
    def __init__(
        self, outbox: Outbox, limiter: RateLimiter, audit: AuditLog, uow: UnitOfWork, clock: Clock
    ) -> None:
        self._outbox = outbox
        self._limiter = limiter
        self._audit = audit
        self._uow = uow
        self._clock = clock

    async def __call__(
        self, operator: Principal, mail: OperatorEmail, context: RequestContext
    ) -> None:
        decision = await self._limiter.hit(
            f"operator_mail:{operator.user_id}", limit=20, window_seconds=3600
        )
        if not decision.allowed:
            raise RateLimited(
                "Too many operator emails; try again later.", retry_after=decision.retry_after
            )
        await self._outbox.enqueue(OutgoingEmail(to=mail.to, subject=mail.subject, text=mail.body))
        await self._audit.record(
            AuditEvent(
                action="operator.email_sent",
                occurred_at=self._clock.now(),
                context=context,
                actor_user_id=operator.user_id,
                target_type="email",
                target_id=mail.to,
                metadata={"subject": mail.subject},
            )
        )
        await self._uow.commit()
