"""Access tokens: short-lived JWTs signed with HS256 (PyJWT), algorithm allow-listed."""

from __future__ import annotations

import uuid
from collections import OrderedDict
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any

import jwt

from orbsurv.domain.errors import Unauthenticated
from orbsurv.domain.identity import AccessClaims, Role, Scope

ALGORITHM = "HS256"
ISSUER = "orbsurv"
AUDIENCE = "orbsurv-api"
MAX_TOKEN_LENGTH = 4096
REQUIRED_CLAIMS = ["iss", "aud", "sub", "sid", "jti", "iat", "nbf", "exp", "typ", "role", "scope"]
# Clock skew allowed past ``exp`` (and before ``nbf``) between the issuing and the verifying
# process (seconds). The one place it is set: the denylist keeps a revocation for
# ``accepted_for_seconds``, which includes it.
LEEWAY_SECONDS = 5


def _invalid(reason: str = "The access token is invalid or expired.") -> Unauthenticated:
    return Unauthenticated(reason, code="invalid_token")


class JwtTokenCodec:
    """Verification is PyJWT's; tokens it has verified are remembered (bounded LRU keyed by the
    whole signed token) until they expire, so a client's repeated requests with one access token
    cost a dictionary lookup instead of a full decode."""

    def __init__(
        self,
        secret: str,
        ttl_seconds: int,
        *,
        leeway_seconds: int = LEEWAY_SECONDS,
        remember: int = 4096,
    ) -> None:
        self._secret = secret
        self._ttl = ttl_seconds
        self._leeway = leeway_seconds
        self._verified: OrderedDict[str, AccessClaims] = OrderedDict()
        self._remember = remember

    @property
    def access_ttl_seconds(self) -> int:
        return self._ttl

    @property
    def accepted_for_seconds(self) -> int:
        """``exp`` is ``iat + ttl`` and a token is accepted until ``exp + leeway``; ``iat`` is
        the issue time rounded down, so one second more covers every token of a session
        revoked at or after it was issued."""
        return self._ttl + self._leeway + 1

    def issue_access(
        self,
        *,
        user_id: str,
        session_id: str,
        role: Role,
        scope: Scope,
        amr: Sequence[str],
        now: datetime,
        not_after: datetime | None = None,
    ) -> tuple[str, int]:
        issued = int(now.timestamp())
        ttl = self._ttl
        if not_after is not None:
            ttl = max(1, min(ttl, int(not_after.timestamp()) - issued))
        payload: dict[str, Any] = {
            "iss": ISSUER,
            "aud": AUDIENCE,
            "sub": user_id,
            "sid": session_id,
            "jti": uuid.uuid4().hex,
            "iat": issued,
            "nbf": issued,
            "exp": issued + ttl,
            "typ": "access",
            "role": role.value,
            "scope": scope.value,
            "amr": list(amr),
        }
        return jwt.encode(payload, self._secret, algorithm=ALGORITHM), ttl

    def decode_access(self, token: str, now: datetime | None = None) -> AccessClaims:
        known = self._verified.get(token)
        if known is not None:
            moment = now or datetime.now(UTC)
            if moment.timestamp() < known.expires_at.timestamp() + self._leeway:
                self._verified.move_to_end(token)
                return known
            del self._verified[token]
            raise _invalid("The access token has expired.")
        claims = self._decode(token)
        self._verified[token] = claims
        if len(self._verified) > self._remember:
            self._verified.popitem(last=False)
        return claims

    def _decode(self, token: str) -> AccessClaims:
        if not token or len(token) > MAX_TOKEN_LENGTH:
            raise _invalid()
        try:
            claims = jwt.decode(
                token,
                self._secret,
                algorithms=[ALGORITHM],
                audience=AUDIENCE,
                issuer=ISSUER,
                leeway=self._leeway,
                options={"require": REQUIRED_CLAIMS},
            )
        except jwt.ExpiredSignatureError:
            raise _invalid("The access token has expired.") from None
        except jwt.InvalidTokenError:
            raise _invalid() from None
        if claims["typ"] != "access":
            raise _invalid("This is not an access token.")
        try:
            amr = claims.get("amr", [])
            return AccessClaims(
                subject=str(claims["sub"]),
                session_id=str(claims["sid"]),
                role=Role(claims["role"]),
                scope=Scope(claims["scope"]),
                amr=tuple(str(method) for method in amr) if isinstance(amr, list) else (),
                issued_at=datetime.fromtimestamp(claims["iat"], UTC),
                expires_at=datetime.fromtimestamp(claims["exp"], UTC),
                token_id=str(claims["jti"]),
            )
        except (ValueError, TypeError, OverflowError):
            raise _invalid() from None
