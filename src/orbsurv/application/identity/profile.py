"""GetProfile: the signed-in user's own account, from the worker's cache when it can.

Concurrent misses for one user share one read: when an entry is missing (the first requests
after start-up, or every entry again when its time to live ends) every request in flight for
that user misses at once, and each reading the database on its own turned one read into
dozens queued on the connection pool. A shared read is keyed by the cache ticket, so a request
that looked after an invalidation never takes a read that began before it.
"""

from __future__ import annotations

import asyncio

from orbsurv.application.identity.ports import ProfileCache, UserLookup
from orbsurv.domain.errors import Unauthenticated
from orbsurv.domain.identity import Principal, User


class GetProfile:
    def __init__(self, users: UserLookup, cache: ProfileCache) -> None:
        self._users = users
        self._cache = cache
        self._reads: dict[tuple[str, int], asyncio.Future[User | None]] = {}

    async def __call__(self, principal: Principal) -> User:
        cached, ticket = self._cache.lookup(principal.user_id)
        user = cached if cached is not None else await self._read(principal.user_id, ticket)
        if user is None or not user.is_active:
            raise Unauthenticated("This account no longer exists.", code="unauthenticated")
        return user

    async def _read(self, user_id: str, ticket: int) -> User | None:
        key = (user_id, ticket)
        read = self._reads.get(key)
        if read is None:
            read = asyncio.ensure_future(self._read_and_store(user_id, ticket))
            self._reads[key] = read
            read.add_done_callback(lambda _: self._reads.pop(key, None))
        # Shielded: one caller going away (a client disconnect) does not cancel the others' read.
        return await asyncio.shield(read)

    async def _read_and_store(self, user_id: str, ticket: int) -> User | None:
        user = await self._users.get(user_id)
        if user is not None and user.is_active:
            self._cache.store(user, ticket)
        return user
