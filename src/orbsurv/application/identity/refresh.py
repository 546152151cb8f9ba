"""RotateRefreshToken: single-use refresh tokens with reuse detection.

The winner of one conditional update gets the child. The immediate parent presented again within
the grace window (a client that lost the answer to a race) gets the same, already-issued child.
Any other reuse means the token leaked: the whole session is revoked, its live access token stops
working at once, and the event is audited and alerted.

Refreshing slides the session's expiry, but never past its absolute lifetime counted from the
sign-in (``SESSION_ABSOLUTE_LIFETIME_HOURS``; ``DEV_SESSION_REAUTH_HOURS`` for a dev-scope
session, whose second factor must be presented again by a new sign-in: OWASP Session Management
Cheat Sheet, "Absolute Timeout" and "Renew the Session ID After Any Privilege Level Change"). A
refresh of a session that ended by age or expiry answers 401 ``session_expired``, and is never
taken for the reuse of a leaked token.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta

from orbsurv.application.identity.policy import IdentityPolicy
from orbsurv.application.identity.ports import SessionRepository, UserRepository
from orbsurv.application.identity.sessions import IssuedTokens, SessionIssuer
from orbsurv.application.identity.tokens import hash_token, new_refresh_token, seal, unseal
from orbsurv.application.ports import AuditLog, Clock, UnitOfWork
from orbsurv.domain.audit import AuditEvent, RequestContext
from orbsurv.domain.errors import Unauthenticated
from orbsurv.domain.identity import Scope, Session

INVALID = "The refresh token is invalid or expired; sign in again."
ENDED = "The session has ended; sign in again."


@dataclass(frozen=True, slots=True)
class RefreshCommand:
    refresh_token: str
    context: RequestContext


class RotateRefreshToken:
    def __init__(
        self,
        sessions: SessionRepository,
        users: UserRepository,
        issuer: SessionIssuer,
        audit: AuditLog,
        uow: UnitOfWork,
        clock: Clock,
        policy: IdentityPolicy,
    ) -> None:
        self._sessions = sessions
        self._users = users
        self._issuer = issuer
        self._audit = audit
        self._uow = uow
        self._clock = clock
        self._policy = policy

    async def __call__(self, command: RefreshCommand) -> IssuedTokens:
        presented = command.refresh_token
        parent_hash = hash_token(presented)
        child = new_refresh_token()
        now = self._clock.now()
        expires_at = now + timedelta(seconds=self._policy.refresh_ttl_seconds)
        policy = self._policy
        won = await self._sessions.rotate(
            parent_hash,
            hash_token(child),
            seal(child, presented),
            now,
            expires_at,
            lifetime=policy.session_lifetime(Scope.USER),
            dev_lifetime=policy.session_lifetime(Scope.DEV),
        )
        if won is not None:
            return await self._issue(won, child)

        record = await self._sessions.find_token(parent_hash)
        if record is None:
            raise Unauthenticated(INVALID, code="invalid_refresh_token")
        session = await self._sessions.get(record.session_id)
        if session is None or session.revoked_at is not None:
            raise Unauthenticated(INVALID, code="invalid_refresh_token")
        if not session.is_live(now) or now - session.created_at >= policy.session_lifetime(
            session.scope
        ):
            raise Unauthenticated(ENDED, code="session_expired")
        grace = timedelta(seconds=self._policy.refresh_reuse_grace_seconds)
        if (
            record.used_at is not None
            and now - record.used_at <= grace
            and record.sealed_child is not None
            and not record.child_used
        ):
            return await self._issue(session, unseal(record.sealed_child, presented))
        await self._reused(session, command.context)
        raise Unauthenticated(
            "This refresh token was already used; the session has been ended.",
            code="refresh_token_reused",
        )

    async def _issue(self, session: Session, refresh_token: str) -> IssuedTokens:
        user = await self._users.get(session.user_id)
        if user is None or not user.is_active:
            await self._sessions.revoke(session.id, self._clock.now(), "account_inactive")
            await self._uow.commit()
            await self._issuer.revoke_in_cache([session.id])
            raise Unauthenticated(INVALID, code="invalid_refresh_token")
        await self._uow.commit()
        return self._issuer.tokens_for(user, session, refresh_token)

    async def _reused(self, session: Session, context: RequestContext) -> None:
        now = self._clock.now()
        await self._sessions.revoke(session.id, now, "refresh_token_reused")
        await self._audit.record(
            AuditEvent(
                action="refresh.reused",
                occurred_at=now,
                context=context,
                actor_user_id=session.user_id,
                target_type="session",
                target_id=session.id,
            )
        )
        await self._uow.commit()
        await self._issuer.revoke_in_cache([session.id])
