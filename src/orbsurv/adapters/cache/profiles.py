"""Per-worker profile caches: in-memory, and kept coherent across workers through Redis."""

from __future__ import annotations

import logging
import time
from collections import OrderedDict
from collections.abc import Sequence
from dataclasses import replace

from redis.asyncio import Redis

from orbsurv.adapters.cache.follower import ChannelFollower
from orbsurv.adapters.cache.redis import REDIS_FAULTS
from orbsurv.application.faults import describe
from orbsurv.domain.identity import User

logger = logging.getLogger(__name__)

CHANNEL = "orbsurv:users:changed"


class MemoryProfileCache:
    """A bounded LRU with a time to live; every invalidation advances a generation."""

    def __init__(self, *, ttl_seconds: float = 60.0, max_entries: int = 10_000) -> None:
        self._entries: OrderedDict[str, tuple[User, float]] = OrderedDict()
        self._ttl = ttl_seconds
        self._max = max_entries
        self._generation = 0

    def lookup(self, user_id: str) -> tuple[User | None, int]:
        entry = self._entries.get(user_id)
        if entry is None:
            return None, self._generation
        user, expires = entry
        if expires <= time.monotonic():
            del self._entries[user_id]
            return None, self._generation
        self._entries.move_to_end(user_id)
        return user, self._generation  # stored as a private copy; readers do not mutate it

    def store(self, user: User, ticket: int) -> None:
        if ticket != self._generation:
            return  # something changed while it was read
        self._entries[user.id] = (replace(user), time.monotonic() + self._ttl)
        self._entries.move_to_end(user.id)
        while len(self._entries) > self._max:
            self._entries.popitem(last=False)

    def drop(self, user_ids: Sequence[str]) -> None:
        self._generation += 1
        for user_id in user_ids:
            self._entries.pop(user_id, None)

    def clear(self) -> None:
        self._generation += 1
        self._entries.clear()

    async def invalidate(self, user_ids: Sequence[str]) -> None:
        self.drop(user_ids)


class RedisProfileCache:
    """The in-memory cache, trusted only while this worker follows the change channel."""

    def __init__(
        self, redis: Redis, *, ttl_seconds: float = 60.0, resync_delay: float = 0.5
    ) -> None:
        self._redis = redis
        self._local = MemoryProfileCache(ttl_seconds=ttl_seconds)
        self._follower = ChannelFollower(
            redis,
            CHANNEL,
            on_message=lambda data: self._local.drop(data.decode().split()),
            on_synced=self._resynced,
            resync_delay=resync_delay,
        )

    async def _resynced(self) -> None:
        self._local.clear()  # messages may have been missed while away

    def start(self) -> None:
        self._follower.start()

    async def wait_synced(self) -> None:
        await self._follower.wait_synced()

    async def stop(self) -> None:
        await self._follower.stop()

    def lookup(self, user_id: str) -> tuple[User | None, int]:
        user, ticket = self._local.lookup(user_id)
        return (user if self._follower.synced else None), ticket

    def store(self, user: User, ticket: int) -> None:
        if self._follower.synced:
            self._local.store(user, ticket)

    async def invalidate(self, user_ids: Sequence[str]) -> None:
        self._local.drop(user_ids)
        if not user_ids:
            return
        try:
            await self._redis.publish(CHANNEL, " ".join(user_ids))
        except REDIS_FAULTS as exc:
            logger.warning(
                "could not publish a profile change; other workers may serve it for up to %ss (%s)",
                60,
                describe(exc),
            )
