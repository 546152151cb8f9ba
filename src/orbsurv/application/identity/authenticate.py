"""Authenticate: an access token in, a Principal out, without touching SQL on the hot path.

The JWT is verified locally; revocation is checked in the denylist, a copy of the sessions
table's recent revocations in this process. When the copy cannot be trusted (not yet read from
the database, or Redis, which keeps it in step across workers, unreachable) the sessions table
answers (correct but slower) -- never "let everything through". When the database cannot answer
either, ``SessionStatus`` raises ``DependencyUnavailable`` (503): the request is refused, not let
through.
"""

from __future__ import annotations

import logging

from orbsurv.application.identity.ports import (
    CacheUnavailable,
    SessionStatus,
    TokenCodec,
    TokenDenylist,
)
from orbsurv.domain.errors import Unauthenticated
from orbsurv.domain.identity import Principal

logger = logging.getLogger(__name__)


class Authenticate:
    def __init__(self, codec: TokenCodec, denylist: TokenDenylist, status: SessionStatus) -> None:
        self._codec = codec
        self._denylist = denylist
        self._status = status

    async def __call__(self, token: str) -> Principal:
        claims = self._codec.decode_access(token)
        try:
            revoked = await self._denylist.is_session_revoked(claims.session_id)
        except CacheUnavailable:
            # The denylist logs its outage once when it starts and once when it ends; a line
            # per request would flood the log for as long as the outage lasts.
            logger.debug("denylist unavailable; checking the session in the database")
            revoked = await self._status.is_revoked(claims.session_id)
        if revoked:
            raise Unauthenticated("This session has ended; sign in again.", code="token_revoked")
        return Principal(
            user_id=claims.subject,
            role=claims.role,
            scope=claims.scope,
            session_id=claims.session_id,
            amr=claims.amr,
        )
