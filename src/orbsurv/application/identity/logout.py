"""LogOut, ListSessions, RevokeSession: a user's control over their own sessions."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta

from orbsurv.application.identity.policy import IdentityPolicy
from orbsurv.application.identity.ports import SessionRepository
from orbsurv.application.identity.refresh import INVALID
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


@dataclass(frozen=True, slots=True)
class LogOut:
    """End the caller's session, or every session of its user.

    With an access token, its session. With only a refresh token, the token must still be able
    to act for its session, as ``RotateRefreshToken`` would let it: unused, or the immediate
    parent within the grace window whose child is unused (the same session, which the refresh
    route would hand the caller anyway), and the session live. A spent, revoked or unknown token
    is 401 ``invalid_refresh_token`` and ends nothing: a stolen token that was rotated, or whose
    session a password change ended, cannot sign the user out anywhere. Its own session is ended
    by one conditional update, before ``everywhere`` ends the rest."""

    sessions: SessionRepository
    issuer: SessionIssuer
    audit: AuditLog
    uow: UnitOfWork
    clock: Clock
    policy: IdentityPolicy

    async def _by_refresh_token(self, refresh_token: str, reason: str) -> Session:
        now = self.clock.now()
        grace = timedelta(seconds=self.policy.refresh_reuse_grace_seconds)
        session = await self.sessions.revoke_by_token(
            hash_token(refresh_token), now, reason, used_since=now - grace
        )
        if session is None:
            raise Unauthenticated(INVALID, code="invalid_refresh_token")
        return session

    async def __call__(self, command: LogoutCommand) -> None:
        """Raise ``Unauthenticated``: ``unauthenticated`` with neither token,
        ``invalid_refresh_token`` for a refresh token that cannot act for a live session."""
        reason = "logout_everywhere" if command.everywhere else "logout"
        now = self.clock.now()
        revoked: list[str] = []
        if command.principal is not None:
            user_id, session_id = command.principal.user_id, command.principal.session_id
            if not command.everywhere and await self.sessions.revoke(session_id, now, reason):
                revoked.append(session_id)
        elif command.refresh_token:
            session = await self._by_refresh_token(command.refresh_token, reason)
            user_id, session_id = session.user_id, session.id
            revoked.append(session_id)
        else:
            raise Unauthenticated("Sign in first.", code="unauthenticated")
        if command.everywhere:
            revoked += await self.sessions.revoke_all(user_id, now, reason)
        await self.audit.record(
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
        await self.uow.commit()
        await self.issuer.revoke_in_cache(revoked)


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
