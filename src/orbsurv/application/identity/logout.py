"""LogOut, ListSessions, RevokeSession: a user's control over their own sessions."""

from __future__ import annotations

from dataclasses import dataclass

from orbsurv.application.identity.ports import SessionRepository
from orbsurv.application.identity.sessions import SessionIssuer
from orbsurv.application.identity.tokens import hash_token
from orbsurv.application.ports import AuditLog, Clock, UnitOfWork
from orbsurv.domain.audit import AuditEvent, RequestContext
from orbsurv.domain.errors import NotFound, Unauthenticated
from orbsurv.domain.identity import Principal, Session


@dataclass(frozen=True, slots=True)
class LogoutCommand:
    context: RequestContext
    principal: Principal | None = None
    refresh_token: str | None = None
    everywhere: bool = False


class LogOut:
    def __init__(
        self,
        sessions: SessionRepository,
        issuer: SessionIssuer,
        audit: AuditLog,
        uow: UnitOfWork,
        clock: Clock,
    ) -> None:
        self._sessions = sessions
        self._issuer = issuer
        self._audit = audit
        self._uow = uow
        self._clock = clock

    async def _current(self, command: LogoutCommand) -> tuple[str, str]:
        """(user id, session id) from the access token, or else from the refresh token."""
        if command.principal is not None:
            return command.principal.user_id, command.principal.session_id
        if command.refresh_token:
            record = await self._sessions.find_token(hash_token(command.refresh_token))
            session = await self._sessions.get(record.session_id) if record else None
            if session is not None:
                return session.user_id, session.id
        raise Unauthenticated("Sign in first.", code="unauthenticated")

    async def __call__(self, command: LogoutCommand) -> None:
        user_id, session_id = await self._current(command)
        now = self._clock.now()
        if command.everywhere:
            revoked = await self._sessions.revoke_all(user_id, now, "logout_everywhere")
        else:
            revoked = [session_id] if await self._sessions.revoke(session_id, now, "logout") else []
        await self._audit.record(
            AuditEvent(
                action="logout",
                occurred_at=now,
                context=command.context,
                actor_user_id=user_id,
                target_type="session",
                target_id=session_id,
                metadata={"everywhere": command.everywhere, "sessions": len(revoked)},
            )
        )
        await self._uow.commit()
        await self._issuer.revoke_in_cache(revoked)


class ListSessions:
    def __init__(self, sessions: SessionRepository, clock: Clock) -> None:
        self._sessions = sessions
        self._clock = clock

    async def __call__(self, principal: Principal) -> list[Session]:
        return await self._sessions.list_live(principal.user_id, self._clock.now())


class RevokeSession:
    def __init__(
        self,
        sessions: SessionRepository,
        issuer: SessionIssuer,
        audit: AuditLog,
        uow: UnitOfWork,
        clock: Clock,
    ) -> None:
        self._sessions = sessions
        self._issuer = issuer
        self._audit = audit
        self._uow = uow
        self._clock = clock

    async def __call__(
        self, principal: Principal, session_id: str, context: RequestContext
    ) -> None:
        session = await self._sessions.get(session_id)
        now = self._clock.now()
        if session is None or session.user_id != principal.user_id or not session.is_live(now):
            raise NotFound("No such session.", code="session_not_found")
        await self._sessions.revoke(session_id, now, "revoked_by_user")
        await self._audit.record(
            AuditEvent(
                action="session.revoked",
                occurred_at=now,
                context=context,
                actor_user_id=principal.user_id,
                target_type="session",
                target_id=session_id,
            )
        )
        await self._uow.commit()
        await self._issuer.revoke_in_cache([session_id])
