"""GetProfile: the signed-in user's own account."""

from __future__ import annotations

from orbsurv.application.identity.ports import UserRepository
from orbsurv.domain.errors import Unauthenticated
from orbsurv.domain.identity import Principal, User


class GetProfile:
    def __init__(self, users: UserRepository) -> None:
        self._users = users

    async def __call__(self, principal: Principal) -> User:
        user = await self._users.get(principal.user_id)
        if user is None or not user.is_active:
            raise Unauthenticated("This account no longer exists.", code="unauthenticated")
        return user
