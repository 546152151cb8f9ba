"""The console's write side: change a user's role or state, end their sessions, acknowledge an
alert, send mail as an operator. Every one is audited; each revokes what it must at once."""

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


class ManageUser:
    def __init__(
        self,
        users: UserRepository,
        reader: ConsoleReader,
        sessions: SessionRepository,
        issuer: SessionIssuer,
        profiles: ProfileCache,
        audit: AuditLog,
        uow: UnitOfWork,
        clock: Clock,
    ) -> None:
        self._users = users
        self._reader = reader
        self._sessions = sessions
        self._issuer = issuer
        self._profiles = profiles
        self._audit = audit
        self._uow = uow
        self._clock = clock

    async def _target(self, user_id: str) -> User:
        user = await self._users.get(user_id)
        if user is None:
            raise NotFound("No such user.", code="user_not_found")
        return user

    async def change(
        self, operator: Principal, user_id: str, change: UserChange, context: RequestContext
    ) -> User:
        user = await self._target(user_id)
        now = self._clock.now()
        before = {"role": user.role.value, "is_active": user.is_active}
        losing_dev = (
            user.role is Role.DEV
            and user.is_active
            and (
                (change.role is not None and change.role is not Role.DEV)
                or change.is_active is False
            )
        )
        if losing_dev and await self._reader.count_active(Role.DEV) <= 1:
            raise Conflict("The last dev cannot be demoted or deactivated.", code="last_dev")
        if change.role is not None:
            user.role = change.role
        if change.is_active is not None:
            user.is_active = change.is_active
        after = {"role": user.role.value, "is_active": user.is_active}
        if after == before:
            return user
        user.updated_at = now
        await self._users.update(user)
        revoked = await self._sessions.revoke_all(user.id, now, "changed_by_operator")
        await self._audit.record(
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
        await self._uow.commit()
        await self._issuer.revoke_in_cache(revoked)
        await self._profiles.invalidate([user.id])
        return user

    async def end_sessions(self, operator: Principal, user_id: str, context: RequestContext) -> int:
        user = await self._target(user_id)
        now = self._clock.now()
        revoked = await self._sessions.revoke_all(user.id, now, "ended_by_operator")
        await self._audit.record(
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
        await self._uow.commit()
        await self._issuer.revoke_in_cache(revoked)
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
