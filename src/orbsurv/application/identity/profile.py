"""GetProfile: the signed-in user's own account, from the worker's cache when it can."""

from __future__ import annotations

from orbsurv.application.identity.ports import ProfileCache, UserLookup
from orbsurv.domain.errors import Unauthenticated
from orbsurv.domain.identity import Principal, User


class GetProfile:
    def __init__(self, users: UserLookup, cache: ProfileCache) -> None:
        self._users = users
        self._cache = cache

    async def __call__(self, principal: Principal) -> User:
        cached, ticket = self._cache.lookup(principal.user_id)
        user = cached if cached is not None else await self._users.get(principal.user_id)
        if user is None or not user.is_active:
            raise Unauthenticated("This account no longer exists.", code="unauthenticated")
        if cached is None:
            self._cache.store(user, ticket)
        return user
