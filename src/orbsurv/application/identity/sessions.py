"""Opening sessions and issuing token pairs: shared by registration, login and refresh."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta

from orbsurv.application.identity.policy import IdentityPolicy
from orbsurv.application.identity.ports import SessionRepository, TokenCodec, TokenDenylist
from orbsurv.application.identity.tokens import hash_token, new_refresh_token
from orbsurv.application.ports import Clock
from orbsurv.domain.audit import RequestContext
from orbsurv.domain.identity import Scope, Session, User, new_id


@dataclass(frozen=True, slots=True)
class IssuedTokens:
    access_token: str
    refresh_token: str
    expires_in: int
    session: Session
    user: User


class SessionIssuer:
    def __init__(
        self,
        sessions: SessionRepository,
        codec: TokenCodec,
        denylist: TokenDenylist,
        clock: Clock,
        policy: IdentityPolicy,
    ) -> None:
        self._sessions = sessions
        self._codec = codec
        self._denylist = denylist
        self._clock = clock
        self._policy = policy

    async def open(
        self, user: User, *, scope: Scope, amr: tuple[str, ...], context: RequestContext
    ) -> IssuedTokens:
        now = self._clock.now()
        session = Session(
            id=new_id(),
            user_id=user.id,
            scope=scope,
            amr=amr,
            created_at=now,
            last_used_at=now,
            expires_at=now
            + min(
                timedelta(seconds=self._policy.refresh_ttl_seconds),
                self._policy.session_lifetime(scope),
            ),
            ip=context.ip,
            user_agent=context.user_agent,
        )
        refresh = new_refresh_token()
        await self._sessions.add(session, hash_token(refresh))
        return self.tokens_for(user, session, refresh)

    def tokens_for(self, user: User, session: Session, refresh_token: str) -> IssuedTokens:
        access, expires_in = self._codec.issue_access(
            user_id=user.id,
            session_id=session.id,
            role=user.role,
            scope=session.scope,
            amr=session.amr,
            now=self._clock.now(),
            not_after=session.expires_at,  # no access token outlives its session
        )
        return IssuedTokens(access, refresh_token, expires_in, session, user)

    async def revoke_in_cache(self, session_ids: list[str]) -> None:
        """After the revocation is committed: make live access tokens fail on every worker.

        Remembered for as long as any access token of these sessions could still be accepted
        (``TokenCodec.accepted_for_seconds``: lifetime + leeway), not just the lifetime: a
        token issued a moment before the revocation lives that long after it."""
        if session_ids:
            await self._denylist.revoke_sessions(session_ids, self._codec.accepted_for_seconds)
